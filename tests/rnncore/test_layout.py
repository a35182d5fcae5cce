"""The architecture as tests: rnncore is numerics (no stream, Kafka, Prometheus or file I/O beyond the model
artifact), no module-level import cycle anywhere, a front door that stays light, and a README example that runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rnncore

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_RNNCORE = ("stream", "aiokafka", "prometheus_client", "kafka", "socket", "requests")
FILE_CALLS = {"open", "write_text", "write_bytes", "read_text", "read_bytes", "mkdir", "unlink", "rename"}
ARTIFACT_IO = {ROOT / "rnncore" / "model" / name for name in ("artifact.py", "envelope_file.py", "store.py")}


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(tree: ast.Module, module_level_only: bool) -> set[str]:
    """Dotted names imported by a module (module level only: what runs when the module is imported)."""
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if module_level_only else [node]:
            if isinstance(inner, ast.Import):
                names |= {alias.name for alias in inner.names}
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                names.add(inner.module)
                names |= {f"{inner.module}.{alias.name}" for alias in inner.names}
    return names


def test_rnncore_imports_no_service_kafka_or_metrics_code() -> None:
    offenders = []
    for name, path in _modules("rnncore").items():
        for imported in _imports(ast.parse(path.read_text()), module_level_only=False):
            if imported.split(".")[0] in FORBIDDEN_IN_RNNCORE:
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_rnncore_touches_no_files_except_the_model_artifact() -> None:
    offenders = []
    for name, path in _modules("rnncore").items():
        if path in ARTIFACT_IO:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if called in FILE_CALLS:
                    offenders.append(f"{name}:{node.lineno} calls {called}")
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_level_import_cycle() -> None:
    modules = {**_modules("rnncore"), **_modules("stream")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(ast.parse(path.read_text()), module_level_only=True):
            parts = imported.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # a.b.c imports a and a.b too
        # a package being imported is already initialising when its own submodule imports it
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    assert _cycles(graph) == []


def test_the_front_door_exports_resolve_and_stay_light() -> None:
    for name in rnncore.__all__:
        assert getattr(rnncore, name) is not None
    light = "import sys, rnncore.model.config, rnncore.contract; assert 'numba' not in sys.modules, 'numba loaded'"
    subprocess.run([sys.executable, "-c", light], check=True, cwd=ROOT)


def test_the_readme_library_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"### As a library.*?```python\n(.*?)```", readme, re.S)
    assert match, "README has no library example"
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    result = namespace["result"]
    assert len(result) == 2 and (result.status == 0).all()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["EventStatus", "StepResult", "StreamScorer", "EventRecord"])
def test_the_contract_types_live_in_the_contract(name: str) -> None:
    assert getattr(rnncore, name).__module__ == "rnncore.contract"
