"""Which machine a benchmark number came from: ``lscpu``'s model line (BENCHMARKS.md records it with each number)."""

from __future__ import annotations

import subprocess


def cpu_model() -> str:
    """``lscpu``'s "Model name" line, or why it is unknown."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"
