"""Tiny labelled CSV files in `rnnwatch evaluate`'s format, for its tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_labelled(
    path: Path, n: int = 1500, fault: tuple[int, int] | None = (1000, 1100), seed: int = 0, features: int = 2
) -> Path:
    """Sensors sharing a slow cycle with their own phase and noise (time, s0, s1[, ...], fault); the rows in
    ``fault`` have s0 shifted by 8 of its standard deviations."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    x = np.stack([np.sin(2 * np.pi * t / 80 + j) + rng.normal(0, 0.3, n) for j in range(features)], axis=1)
    labels = np.zeros(n, dtype=np.int64)
    if fault is not None:
        x[fault[0] : fault[1], 0] += 8 * x[:, 0].std()
        labels[fault[0] : fault[1]] = 1
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["time", *(f"s{j}" for j in range(features)), "fault"])
        for i in range(n):
            table.writerow([repr(float(1.7e9 + t[i])), *(f"{v:.5f}" for v in x[i]), int(labels[i])])
    return path
