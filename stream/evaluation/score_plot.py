"""`rnnwatch score --plot`, `evaluate --plot` and `bench nab --plot`: the streams to look at, where incident review
looks first.

Per stream: its values (features standardised and stacked when there are several) with the forecast band of a
single-feature stream (mean +- 2 scale of the forecast made before each event) and the flagged events; below,
the score with the threshold; a title with the stream, its counts and the model version. With labels (evaluate,
NAB) the labelled windows are shaded and a flag inside one is a true flag (green), outside a false one (red).
Labelled runs re-score their few streams (``stream.evaluation.rescore``: score's own loop and defaults, a
stream's scores depend on its events only) to get the forecast, which score's output does not hold. matplotlib comes
with the ``demo`` extra.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
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


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end] index ranges where ``mask`` is true."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def plot_scored(
    path: Path,
    recorder: ScoreRecorder,
    keys: Sequence[str],
    threshold: float,
    model: str,
    labelled: Mapping[str, np.ndarray] | None = None,
    notes: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the PNG for ``keys`` (see the module docstring); returns its path. ``labelled``: per key a bool per
    recorded event (time order), true inside a labelled window; ``notes``: per key, numbers for its title;
    ``title``: one line over the whole figure."""
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
        window = None if labelled is None or key not in labelled else np.asarray(labelled[key], dtype=bool)
        if window is not None and window.shape != flags.shape:
            raise ValueError(f"{key}: {window.size} labels for {flags.size} scored events")
        kinds = [("flagged", flags, "red")] if window is None else [
            (f"true flag ({int((flags & window).sum())})", flags & window, "green"),
            (f"false flag ({int((flags & ~window).sum())})", flags & ~window, "red"),
        ]  # fmt: skip
        for number, (start, end) in enumerate(_runs(window) if window is not None else []):
            for ax in (top, bottom):
                ax.axvspan(start - 0.5, end + 0.5, color="orange", alpha=0.25, lw=0,
                           label="labelled window" if number == 0 and ax is top else None)  # fmt: skip
        if x.shape[1] == 1:
            top.plot(t, x[:, 0], lw=0.8, color="tab:blue", label="value")
            mean, scale = np.asarray(s.means, dtype=float), np.asarray(s.scales, dtype=float)
            top.fill_between(t[1:], (mean - 2 * scale)[:-1], (mean + 2 * scale)[:-1], color="tab:green", alpha=0.2,
                             label="forecast ±2σ")  # fmt: skip
            for label, mask, colour in kinds:
                top.scatter(t[mask], x[mask, 0], color=colour, s=10, zorder=3, label=label)
        else:
            z = (x - np.nanmean(x, axis=0)) / (np.nanstd(x, axis=0) + 1e-12)
            for j in range(z.shape[1]):
                top.plot(t, z[:, j] + 4 * j, lw=0.6, label=f"feature {j}" if j < 8 else None)
            for label, mask, colour in kinds:
                for number, i in enumerate(np.flatnonzero(mask)):
                    top.axvline(i, color=colour, alpha=0.3, lw=0.8, label=label if number == 0 else None)
        note = f"; {notes[key]}" if notes and key in notes else ""
        top.set_title(f"{key}: {len(t)} events, {int(flags.sum())} flagged ({flags.mean():.1%}){note}; model {model}",
                      fontsize=9, loc="left")  # fmt: skip
        top.legend(loc="upper right", fontsize=7)
        bottom.plot(t, s.scores, lw=0.8, color="black")
        bottom.axhline(threshold, color="red", lw=0.6, ls="--", label=f"threshold {threshold:g}")
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_ylabel("score", fontsize=8)
        bottom.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("event index in stream (time order)")
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
