"""The demo's picture: a few streams with their values, forecast band, injected anomalies, flags and scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stream.data.synthetic import SyntheticStream
from stream.demo.scores import ScorePoint


def pick_streams(streams: Sequence[SyntheticStream], count: int = 4) -> list[SyntheticStream]:
    """Up to ``count`` streams, covering as many different injected anomaly kinds as possible."""
    chosen: list[SyntheticStream] = []
    seen: set[str] = set()
    for stream in streams:
        kinds = {a.kind for a in stream.anomalies}
        if kinds - seen:
            chosen.append(stream)
            seen |= kinds
        if len(chosen) == count:
            return chosen
    rest = [s for s in streams if s not in chosen]
    return chosen + rest[: count - len(chosen)]


def plot_streams(
    path: str | Path,
    streams: Sequence[SyntheticStream],
    sent: Mapping[str, Sequence[tuple[float, int]]],
    points: Mapping[tuple[str, float], ScorePoint],
    threshold: float,
    warmup_events: int = 0,
) -> Path:
    """Write a PNG: per stream, values with the forecast band (mean +- 2 scale of the previous event's
    forecast), injected anomaly windows shaded, flagged events in red; below, the anomaly score (zero during
    the first ``warmup_events`` events of a stream, while its calibration learns the error distribution)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2 * len(streams),
        1,
        figsize=(12, 3.2 * len(streams)),
        sharex=False,
        gridspec_kw={"height_ratios": [3, 1] * len(streams)},
        squeeze=False,
    )
    for n, stream in enumerate(streams):
        top, bottom = axes[2 * n][0], axes[2 * n + 1][0]
        events = [(i, points.get((stream.key, t))) for t, i in sent.get(stream.key, [])]
        idx = np.array([i for i, p in events if p is not None], dtype=np.int64)
        got = [p for _, p in events if p is not None]
        values = stream.values[idx, 0] if idx.size else np.empty(0)
        top.plot(idx, values, lw=0.8, color="tab:blue", label="value")
        if len(got) > 1:
            mean = np.array([np.nan if p.mean is None else p.mean for p in got[:-1]])
            scale = np.array([np.nan if p.scale is None else p.scale for p in got[:-1]])
            top.fill_between(
                idx[1:], mean - 2 * scale, mean + 2 * scale, color="tab:green", alpha=0.2, label="forecast ±2σ"
            )
        if warmup_events and idx.size:  # from the first served event (the events before it are training history)
            bottom.axvspan(idx[0], idx[0] + warmup_events, color="grey", alpha=0.15)
            bottom.annotate("warm-up", (idx[0] + 2, 0.5), fontsize=7, color="dimgrey", va="center")
        for anomaly in stream.anomalies:
            for ax in (top, bottom):
                ax.axvspan(anomaly.start, anomaly.end, color="orange", alpha=0.25)
            top.annotate(
                anomaly.kind,
                (anomaly.start, 1.0),
                xycoords=("data", "axes fraction"),
                va="top",
                fontsize=8,
                color="darkorange",
            )
        flagged = np.array([p.anomaly for p in got], dtype=bool)
        top.scatter(idx[flagged], values[flagged], color="red", s=12, zorder=3, label="flagged")
        top.set_title(f"{stream.key} ({stream.family})", fontsize=10, loc="left")
        top.legend(loc="upper right", fontsize=7)
        bottom.plot(idx, [p.score for p in got], lw=0.8, color="black")
        bottom.axhline(threshold, color="red", lw=0.6, ls="--")
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_ylabel("score", fontsize=8)
    axes[-1][0].set_xlabel("event index in stream")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
