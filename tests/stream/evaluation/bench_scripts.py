"""The bench/ scripts as the tests run them: imported from their file (bench/ is scripts, not a package), and
the one RESULT line each prints read back as fields."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_bench_script(name: str) -> ModuleType:
    """bench/``name``.py as a module ``bench_<name>``, to call its ``main(argv)`` in this process."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result_fields(out: str) -> dict[str, str]:
    """The ``name=value`` fields of the one ``RESULT`` line in ``out`` (a bench script's output); fails unless
    there is exactly one."""
    result = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1, result
    return dict(item.split("=") for item in result[0].split()[1:])
