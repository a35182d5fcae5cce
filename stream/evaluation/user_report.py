"""`rnnwatch evaluate`'s numbers: per file and pooled, at the default threshold, with the label-chosen cut beside it.

Metrics are :mod:`stream.evaluation.fleet.metrics` (never point-adjusted): pointwise F1, false-alarm rate
(flagged normal rows / normal rows), missed rate, event-wise precision / recall / F1 over the runs of label 1,
the median detection delay (rows and seconds from an event's first row to its first flagged row), the
false-alarm runs per hour of normal rows (how often an operator is called for nothing), and the false-alarm rate
split into normal rows before a file's first labelled row and normal rows after one (``false_alarm_before`` /
``false_alarm_after``: a machine recovering from a fault, e.g. still hot, is labelled normal but is not yet back
to its normal state, so the two tell a detector that floods apart from one that is slow to let go). The
label-chosen best cut is an upper bound only: a user never gets it by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream.evaluation.fleet.metrics import best_threshold, eventwise, pointwise


def label_events(labels: np.ndarray, kind: str = "anomaly") -> list[tuple[str, int, int]]:
    """The runs of label 1 as ``(kind, start, end)`` with ``end`` exclusive."""
    edges = np.diff(np.concatenate([[0], (labels > 0).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(kind, int(s), int(e)) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def delay_seconds(flag: np.ndarray, times: np.ndarray, events: Sequence[tuple[str, int, int]]) -> float:
    """Median seconds from an event's first row to its first flagged row, over the events that were flagged."""
    delays = [times[s + int(np.argmax(flag[s:e]))] - times[s] for _, s, e in events if flag[s:e].any()]
    return float(np.median(delays)) if delays else float("nan")


def row_gaps(times: np.ndarray) -> np.ndarray:
    """Seconds each row stands for: the gap to the next row (the last row and any non-positive gap: the median)."""
    if times.shape[0] < 2:
        return np.zeros(times.shape[0])
    gaps = np.diff(times)
    typical = float(np.median(gaps[gaps > 0])) if np.any(gaps > 0) else 0.0
    gaps = np.where(gaps > 0, gaps, typical)
    return np.append(gaps, typical)


def false_runs_per_hour(flag: np.ndarray, labels: np.ndarray, gaps: np.ndarray) -> float:
    """Flagged runs that start on a normal row, per hour of normal rows: how often an operator would be called
    for nothing."""
    starts = np.flatnonzero(np.diff(np.concatenate([[0], flag.astype(np.int8)])) == 1)
    hours = float(np.sum(gaps[labels == 0])) / 3600.0
    return int(np.sum(labels[starts] == 0)) / hours if hours > 0 else float("nan")


@dataclass(frozen=True)
class Scored:
    """One file's test rows with the product's scores (already divided by the default threshold, so 1.0 flags)."""

    name: str
    times: np.ndarray
    labels: np.ndarray
    score: np.ndarray
    events: list[tuple[str, int, int]]
    gaps: np.ndarray  # seconds per row (:func:`row_gaps`), so that a pool of files keeps each file's sampling
    after: np.ndarray  # bool per row: a labelled row came earlier in the same file (:func:`after_first_label`)


def after_first_label(labels: np.ndarray) -> np.ndarray:
    """True for every row after a file's first labelled row."""
    seen = np.cumsum(labels > 0) > 0
    return np.concatenate([[False], seen[:-1]]) if labels.shape[0] else seen


def scored(name: str, times: np.ndarray, labels: np.ndarray, score: np.ndarray, threshold: float) -> Scored:
    """A :class:`Scored` with events from the labels and the score in units of the default threshold."""
    score = np.asarray(score, dtype=np.float64) / threshold
    return Scored(name, times, labels, score, label_events(labels), row_gaps(times), after_first_label(labels))


def measure(s: Scored, cut: float = 1.0) -> dict[str, float]:
    """Every metric of one file (or a pool) at ``score >= cut``, plus ``best_f1``, the label-chosen upper bound."""
    flag = s.score >= cut
    out = {**pointwise(flag, s.labels), **eventwise(flag, s.events, s.labels)}
    out["delay_seconds"] = delay_seconds(flag, s.times, s.events)
    out["false_runs_per_hour"] = false_runs_per_hour(flag, s.labels, s.gaps)
    best = best_threshold(s.score, s.labels) if s.labels.any() and not s.labels.all() else cut
    out["best_f1"] = pointwise(s.score >= best, s.labels)["f1"]
    normal = s.labels == 0
    for name, part in (("false_alarm_before", normal & ~s.after), ("false_alarm_after", normal & s.after)):
        out[name] = float(np.mean(flag[part])) if part.any() else float("nan")
    out["rows"] = float(s.labels.shape[0])
    out["anomalous"] = float(np.sum(s.labels > 0))
    out["events"] = float(len(s.events))
    return out


def pool(files: Sequence[Scored], name: str = "pooled") -> Scored:
    """All files as one: rows concatenated, events shifted (delays never span two files)."""
    events, offset = [], 0
    for f in files:
        events += [(k, s + offset, e + offset) for k, s, e in f.events]
        offset += f.labels.shape[0]
    cat = np.concatenate
    times, labels, score = (cat([getattr(f, a) for f in files]) for a in ("times", "labels", "score"))
    return Scored(name, times, labels, score, events, cat([f.gaps for f in files]), cat([f.after for f in files]))


COLUMNS = (
    ("rows", "rows", "{:>8.0f}"),
    ("anomalous", "anom", "{:>7.0f}"),
    ("events", "events", "{:>7.0f}"),
    ("f1", "point_f1", "{:>9.3f}"),
    ("false_alarm", "false_al", "{:>9.3f}"),
    ("false_alarm_before", "fa_before", "{:>10.3f}"),
    ("false_alarm_after", "fa_after", "{:>9.3f}"),
    ("missed", "missed", "{:>8.3f}"),
    ("event_precision", "ev_prec", "{:>8.3f}"),
    ("event_recall", "ev_rec", "{:>8.3f}"),
    ("event_f1", "ev_f1", "{:>7.3f}"),
    ("alarm_precision", "al_prec", "{:>8.3f}"),
    ("delay_median", "delay_rows", "{:>11.1f}"),
    ("delay_seconds", "delay_s", "{:>9.1f}"),
    ("false_runs_per_hour", "false_runs/h", "{:>13.2f}"),
    ("best_f1", "best_cut_f1", "{:>12.3f}"),
)


def format_rows(rows: Sequence[tuple[str, dict[str, float]]], name_width: int = 24) -> str:
    """A fixed-width table: one row per (name, metrics)."""
    widths = [len(fmt.format(0.0)) for _, _, fmt in COLUMNS]
    head = f"{'file':<{name_width}}" + "".join(f"{h:>{w}}" for (_, h, _), w in zip(COLUMNS, widths, strict=True))
    lines = [head]
    for name, m in rows:
        cells = "".join(fmt.format(m.get(key, float("nan"))) for key, _, fmt in COLUMNS)
        lines.append(f"{name[: name_width - 1]:<{name_width}}{cells}")
    return "\n".join(lines)
