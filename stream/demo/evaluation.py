"""Precision and recall of the service's anomaly flags against the anomalies injected into a synthetic fleet.

Two views, because they answer different questions:

* **anomaly recall** (what an operator cares about): an injected anomaly counts as found when at least one
  event of its stream is flagged inside its window, extended by ``grace`` events after its end (a level shift
  or a frozen sensor becomes visible only after a few events).
* **flag precision**: the share of flagged events that fall inside an (extended) anomaly window.
* event-level precision/recall over every labelled event, for completeness (long anomalies such as drift
  are not flagged at every event, so event recall is naturally lower than anomaly recall).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.data.synthetic import SyntheticStream
from stream.evaluation.fleet.metrics import precision, recall

DEFAULT_GRACE_EVENTS = 10


@dataclass(frozen=True)
class StreamFlags:
    """One stream's scored events: their indices into the synthetic stream and whether each was flagged."""

    stream: SyntheticStream
    indices: np.ndarray  # int64 indices of the scored events
    flagged: np.ndarray  # bool, same length


@dataclass
class Evaluation:
    """Counts behind precision and recall, overall and per anomaly kind."""

    scored_events: int = 0
    flagged_events: int = 0
    flags_in_windows: int = 0
    labelled_events: int = 0
    labelled_flagged: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)
    anomalies_found: Counter[str] = field(default_factory=Counter)

    @property
    def flag_precision(self) -> float:
        """Share of flags that fall inside an injected anomaly's (extended) window."""
        return self.flags_in_windows / self.flagged_events if self.flagged_events else float("nan")

    @property
    def anomaly_recall(self) -> float:
        """Share of injected anomalies with at least one flag in their (extended) window."""
        total = sum(self.anomalies.values())
        return sum(self.anomalies_found.values()) / total if total else float("nan")

    @property
    def event_precision(self) -> float:
        """Share of flagged events that are labelled anomalous (no grace)."""
        return precision(self.labelled_flagged, self.flagged_events - self.labelled_flagged)

    @property
    def event_recall(self) -> float:
        """Share of labelled anomalous events that were flagged."""
        return recall(self.labelled_flagged, self.labelled_events - self.labelled_flagged)

    def table(self) -> str:
        """A small text table: overall numbers, then anomaly recall per injected kind."""
        lines = [
            f"scored events {self.scored_events}, flagged {self.flagged_events}",
            f"anomaly recall  {self.anomaly_recall:6.1%}  ({sum(self.anomalies_found.values())} of "
            f"{sum(self.anomalies.values())} injected anomalies flagged at least once)",
            f"flag precision  {self.flag_precision:6.1%}  ({self.flags_in_windows} of {self.flagged_events} flags "
            "inside an anomaly window)",
            f"event precision {self.event_precision:6.1%}   event recall {self.event_recall:6.1%}",
            "recall by kind: "
            + ", ".join(f"{kind} {self.anomalies_found[kind]}/{n}" for kind, n in sorted(self.anomalies.items())),
        ]
        return "\n".join(lines)


def evaluate(flags: Sequence[StreamFlags], grace: int = DEFAULT_GRACE_EVENTS) -> Evaluation:
    """Compare each stream's flags with its injected anomalies; only scored events count."""
    result = Evaluation()
    for item in flags:
        stream, indices, flagged = item.stream, np.asarray(item.indices), np.asarray(item.flagged, dtype=bool)
        in_window = np.zeros(len(stream.labels), dtype=bool)
        for anomaly in stream.anomalies:
            in_window[anomaly.start : min(anomaly.end + grace, len(in_window))] = True
        flagged_indices = indices[flagged]
        result.scored_events += len(indices)
        result.flagged_events += len(flagged_indices)
        result.flags_in_windows += int(in_window[flagged_indices].sum())
        labelled = stream.labels[indices] != 0
        result.labelled_events += int(labelled.sum())
        result.labelled_flagged += int((labelled & flagged).sum())
        flagged_set = set(flagged_indices.tolist())
        scored_set = set(indices.tolist())
        for anomaly in stream.anomalies:
            window = range(anomaly.start, min(anomaly.end + grace, len(stream.labels)))
            if not scored_set.intersection(window):
                continue  # never reached (the demo stopped early): neither found nor missed
            result.anomalies[anomaly.kind] += 1
            if flagged_set.intersection(window):
                result.anomalies_found[anomaly.kind] += 1
    return result


def flags_from_scores(
    streams: Mapping[str, SyntheticStream],
    sent: Mapping[str, Sequence[tuple[float, int]]],
    scores: Mapping[tuple[str, float], bool],
) -> list[StreamFlags]:
    """Join what was sent ((time, index) per key) with the anomaly flag read back per (key, time)."""
    result = []
    for key, events in sent.items():
        found = [(index, scores[(key, t)]) for t, index in events if (key, t) in scores]
        if not found:
            continue
        indices = np.array([i for i, _ in found], dtype=np.int64)
        flagged = np.array([f for _, f in found], dtype=bool)
        result.append(StreamFlags(streams[key], indices, flagged))
    return result
