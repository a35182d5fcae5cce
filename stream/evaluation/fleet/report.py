"""Pool per-unit scores of one detector over a fleet and report them at its default and its best threshold.

Scores are divided by the unit's default threshold first, so that every detector's default cut is 1.0 and one
label-chosen cut can be searched over the pooled fleet (T² thresholds differ by feature count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.evaluation.fleet.generator import KINDS, FleetUnit
from stream.evaluation.fleet.metrics import best_threshold, eventwise, pointwise


@dataclass
class Pooled:
    """One detector's normalised scores, labels and events concatenated over units (events shifted)."""

    name: str
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    events: list[tuple[str, int, int]] = field(default_factory=list)
    offset: int = 0

    def add(self, unit: FleetUnit, score: np.ndarray, default_threshold: float) -> None:
        """Append one unit's test scores (scaled so ``default_threshold`` becomes 1.0)."""
        self.scores.append(np.asarray(score, dtype=np.float64) / default_threshold)
        self.labels.append(unit.labels)
        self.events += [(k, s + self.offset, e + self.offset) for k, s, e in unit.events]
        self.offset += unit.labels.shape[0]

    def measure(self, cut: float | None = None) -> dict[str, float]:
        """Pointwise and event-wise metrics with flags ``score >= cut`` (default 1.0: the detector's default)."""
        score, labels = np.concatenate(self.scores), np.concatenate(self.labels)
        cut = best_threshold(score, labels) if cut is None else cut
        flag = score >= cut
        return {**pointwise(flag, labels), **eventwise(flag, self.events, labels), "cut": cut}


COLUMNS = ("event_f1", "event_precision", "event_recall", "alarm_f1", "alarm_precision", "f1", "false_alarm", "missed",
           "delay_median")  # fmt: skip


def format_table(results: Sequence[tuple[str, str, dict[str, float]]]) -> str:
    """Rows (detector, threshold name, metrics): headline metrics, then recall per anomaly kind."""
    head = f"{'detector':<22}{'threshold':<10}" + "".join(f"{c[:11]:>12}" for c in COLUMNS)
    lines = [head]
    for name, which, m in results:
        lines.append(f"{name:<22}{which:<10}" + "".join(f"{m.get(c, float('nan')):>12.3f}" for c in COLUMNS))
    lines.append("")
    lines.append(f"{'recall per kind':<32}" + "".join(f"{k[:11]:>12}" for k in KINDS))
    for name, which, m in results:
        lines.append(
            f"{name + ' @' + which:<32}" + "".join(f"{m.get('recall_' + k, float('nan')):>12.2f}" for k in KINDS)
        )
    return "\n".join(lines)
