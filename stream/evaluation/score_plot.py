"""`rnnwatch score --plot`: a picture of the streams with the most flags, where incident review looks first.

Per stream: its values (features standardised and stacked when there are several) with the forecast band of a
single-feature stream (mean +- 2 scale of the forecast made before each event) and the flagged events in red;
below, the score with the threshold; a title with the stream, its counts and the model version. matplotlib
comes with the ``demo`` extra.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ScoredStream:
    """What one stream was scored with: times, values [T, F], scores, flags and the forecast (F = 1)."""

    times: list[float] = field(default_factory=list)
    values: list[Sequence[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    flags: list[bool] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)


class ScoreRecorder:
    """Collects every scored event per stream for :func:`plot_scored` (``rnnwatch score``'s ``observe`` hook)."""

    def __init__(self) -> None:
        self.streams: dict[str, ScoredStream] = defaultdict(ScoredStream)

    def __call__(self, key: str, t: float, values: Sequence[float], score: float, flagged: bool, mean: float,
                 scale: float) -> None:  # fmt: skip
        s = self.streams[key]
        s.times.append(t)
        s.values.append(values)
        s.scores.append(score)
        s.flags.append(flagged)
        s.means.append(mean)
        s.scales.append(scale)

    def most_flagged(self, count: int) -> list[str]:
        """The ``count`` streams with the most flags (then by key), the ones to look at first."""
        return sorted(self.streams, key=lambda k: (-sum(self.streams[k].flags), k))[:count]


def plot_scored(path: Path, recorder: ScoreRecorder, keys: Sequence[str], threshold: float, model: str) -> Path:
    """Write the PNG for ``keys`` (see the module docstring); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2 * len(keys), 1, figsize=(13, 3.2 * len(keys)), gridspec_kw={"height_ratios": [3, 1] * len(keys)}
    )
    axes = np.atleast_1d(axes)
    for n, key in enumerate(keys):
        s = recorder.streams[key]
        top, bottom = axes[2 * n], axes[2 * n + 1]
        t = np.arange(len(s.times))
        x = np.asarray(s.values, dtype=np.float64).reshape(len(s.times), -1)
        flags = np.asarray(s.flags, dtype=bool)
        if x.shape[1] == 1:
            top.plot(t, x[:, 0], lw=0.8, color="tab:blue", label="value")
            mean, scale = np.asarray(s.means, dtype=float), np.asarray(s.scales, dtype=float)
            top.fill_between(t[1:], (mean - 2 * scale)[:-1], (mean + 2 * scale)[:-1], color="tab:green", alpha=0.2,
                             label="forecast ±2σ")  # fmt: skip
            top.scatter(t[flags], x[flags, 0], color="red", s=10, zorder=3, label="flagged")
        else:
            z = (x - np.nanmean(x, axis=0)) / (np.nanstd(x, axis=0) + 1e-12)
            for j in range(z.shape[1]):
                top.plot(t, z[:, j] + 4 * j, lw=0.6, label=f"feature {j}" if j < 8 else None)
            for i in np.flatnonzero(flags):
                top.axvline(i, color="red", alpha=0.15, lw=0.8)
        top.set_title(f"{key}: {len(t)} events, {int(flags.sum())} flagged ({flags.mean():.1%}); model {model}",
                      fontsize=9, loc="left")  # fmt: skip
        top.legend(loc="upper right", fontsize=7)
        bottom.plot(t, s.scores, lw=0.8, color="black")
        bottom.axhline(threshold, color="red", lw=0.6, ls="--", label=f"threshold {threshold:g}")
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_ylabel("score", fontsize=8)
        bottom.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("event index in stream (time order)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
