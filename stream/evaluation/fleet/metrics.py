"""Pointwise and event-wise metrics; never point-adjusted."""

from __future__ import annotations

import numpy as np

from stream.evaluation.fleet.generator import CODES


def precision(tp: float, fp: float) -> float:
    """Share of flagged rows that are anomalous; NaN when nothing was flagged (the one implementation, also
    behind ``stream.demo.evaluation``)."""
    return tp / (tp + fp) if tp + fp else float("nan")


def recall(tp: float, fn: float) -> float:
    """Share of anomalous rows that were flagged; NaN when there are none."""
    return tp / (tp + fn) if tp + fn else float("nan")


def pointwise(flag: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """F1 (0 when undefined), false-alarm rate (flagged normal / normal), missed rate (unflagged anomalous /
    anomalous)."""
    a = labels > 0
    tp = float(np.sum(flag & a))
    fp = float(np.sum(flag & ~a))
    fn = float(np.sum(~flag & a))
    prec = np.nan_to_num(precision(tp, fp))
    rec = np.nan_to_num(recall(tp, fn))
    return {
        "f1": 2 * prec * rec / max(prec + rec, 1e-12),
        "false_alarm": fp / max(float(np.sum(~a)), 1.0),
        "missed": fn / max(float(np.sum(a)), 1.0),
    }


def best_threshold(score: np.ndarray, labels: np.ndarray, candidates: int = 200) -> float:
    """The cut (among score quantiles) with the highest pointwise F1: the label-chosen upper bound, never a
    default a user gets."""
    cuts = np.unique(np.quantile(score, np.linspace(0.5, 0.9995, candidates)))
    f1 = [pointwise(score >= c, labels)["f1"] for c in cuts]
    return float(cuts[int(np.argmax(f1))])


def eventwise(flag: np.ndarray, events: list[tuple[str, int, int]], labels: np.ndarray) -> dict[str, float]:
    """Recall per kind (any kind name), detection delay (events from onset), precision over flagged runs outside
    any event.

    Two precisions: ``event_precision`` counts every flagged run that starts in an event as a true alarm (a
    detection that flickers inside one fault counts many times), ``alarm_precision`` counts each detected event
    once against the false runs (Hundman et al. 2018's event-wise precision): a detector that flags a fault in one
    run instead of ten loses the first, not the second. ``alarm_f1`` pairs it with the event recall."""
    out: dict[str, float] = {}
    hit: dict[str, list[int]] = {k: [] for k in CODES}  # fleet kinds first, in order; other kinds as they come
    delays = []
    for kind, s, e in events:
        idx = np.flatnonzero(flag[s:e])
        hit.setdefault(kind, []).append(int(idx.size > 0))
        if idx.size:
            delays.append(int(idx[0]))
    for k, v in hit.items():
        if v:
            out[f"recall_{k}"] = float(np.mean(v))
    runs = np.flatnonzero(np.diff(np.concatenate([[0], flag.astype(np.int8)])) == 1)
    true_runs = sum(1 for r in runs if labels[r] > 0 or (r + 1 < labels.size and labels[r + 1] > 0))
    out["event_precision"] = true_runs / max(len(runs), 1)
    out["event_recall"] = float(np.mean([h for v in hit.values() for h in v])) if events else 0.0
    detected = sum(h for v in hit.values() for h in v)
    out["alarm_precision"] = detected / max(detected + len(runs) - true_runs, 1)
    ap = out["alarm_precision"]
    out["alarm_f1"] = 2 * ap * out["event_recall"] / (ap + out["event_recall"]) if ap + out["event_recall"] else 0.0
    out["delay_median"] = float(np.median(delays)) if delays else float("nan")
    p, r = out["event_precision"], out["event_recall"]
    out["event_f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out
