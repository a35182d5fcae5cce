"""`rnnwatch evaluate`'s picture: the worst files' features, labelled rows, flagged rows and the score.

matplotlib comes with the ``demo`` extra (``pip install rnnwatch[demo]``); without it the picture is skipped
and the command says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.evaluation.user_report import Scored


def have_matplotlib() -> bool:
    """Whether the optional plotting dependency is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_files(path: Path, files: Sequence[tuple[Scored, np.ndarray, float]], features: Sequence[str]) -> Path:
    """Write a PNG: per (scored file, its test values, its pointwise F1), the features standardised and stacked
    with labelled rows shaded orange and flagged rows marked red; below, the score over the default threshold
    (the flag line at 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2 * len(files), 1, figsize=(13, 3.4 * len(files)), gridspec_kw={"height_ratios": [3, 1] * len(files)}
    )
    axes = np.atleast_1d(axes)
    for n, (s, values, f1) in enumerate(files):
        top, bottom = axes[2 * n], axes[2 * n + 1]
        idx = np.arange(s.labels.shape[0])
        z = (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-12)
        for j in range(z.shape[1]):
            top.plot(idx, z[:, j] - 4 * j, lw=0.6, label=features[j] if j < len(features) else f"v{j}")
        flag = s.score >= 1.0
        for ax in (top, bottom):
            for _, start, end in s.events:
                ax.axvspan(start, end, color="orange", alpha=0.25, lw=0)
        top.scatter(idx[flag], np.full(int(flag.sum()), 2.5), s=3, color="red", marker="|", label="flagged")
        top.set_title(f"{s.name}: pointwise F1 {f1:.2f} (orange = labelled, red = flagged at the default threshold)")
        top.set_yticks([])
        top.legend(loc="upper right", fontsize=6, ncol=min(9, z.shape[1] + 1))
        bottom.plot(idx, s.score, lw=0.6, color="tab:purple")
        bottom.axhline(1.0, color="red", lw=0.8, ls="--")
        bottom.set_ylim(0, max(1.05, float(s.score.max()) * 1.02))
        bottom.set_ylabel("score / thr", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
