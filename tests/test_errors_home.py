"""Errors callers branch on have one home: an exception class that any other module catches by name (``except``
or ``pytest.raises``) is defined in its package's ``errors.py``, with a docstring saying when and what to do."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rnncore", "stream")
CALLERS = (*PACKAGES, "tests", "bench")
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def _trees(folders: tuple[str, ...]) -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))}


def _name(node: ast.expr) -> str | None:
    """``X`` for ``X`` and for ``module.X``."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def exception_classes(trees: dict[Path, ast.Module]) -> dict[str, set[Path]]:
    """Class name -> the modules defining it, for every class deriving (transitively) from an exception."""
    classes = [(path, node) for path, tree in trees.items() for node in ast.walk(tree)]
    classes = [(path, node) for path, node in classes if isinstance(node, ast.ClassDef)]
    known = set(BUILTIN_EXCEPTIONS)
    found: dict[str, set[Path]] = {}
    grew = True
    while grew:
        grew = False
        for path, node in classes:
            if path not in found.get(node.name, set()) and any(_name(base) in known for base in node.bases):
                found.setdefault(node.name, set()).add(path)
                known.add(node.name)
                grew = True
    return found


def caught_names(tree: ast.Module) -> set[str]:
    """Names of exceptions a module catches: ``except X``, ``except (X, Y)``, ``pytest.raises(X)``."""
    caught: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught.append(node.type)
        elif isinstance(node, ast.Call) and _name(node.func) == "raises":
            caught.extend(node.args[:1])
            caught.extend(k.value for k in node.keywords if k.arg == "expected_exception")
    names: set[str] = set()
    for expr in caught:
        for part in expr.elts if isinstance(expr, ast.Tuple) else [expr]:
            if (name := _name(part)) is not None:
                names.add(name)
    return names


def test_exceptions_caught_elsewhere_live_in_an_errors_module() -> None:
    defined = exception_classes(_trees(PACKAGES))
    offenders = []
    for path, tree in _trees(CALLERS).items():
        for name in caught_names(tree) & defined.keys():
            for home in defined[name]:
                if home.name != "errors.py" and home != path:
                    offenders.append(f"{path.relative_to(ROOT)} catches {name}, defined in {home.relative_to(ROOT)}")
    assert offenders == [], "move these classes to their package's errors.py"


def test_every_error_in_an_errors_module_says_when_and_what_to_do() -> None:
    for path, tree in _trees(PACKAGES).items():
        if path.name != "errors.py":
            continue
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        assert classes, f"{path.relative_to(ROOT)} defines no error"
        for node in classes:
            assert ast.get_docstring(node), f"{path.relative_to(ROOT)}: {node.name} has no docstring"


def test_the_rule_sees_a_misplaced_class() -> None:
    """The check above can fail: a class outside errors.py caught in another module is found."""
    here = ast.parse("class LocalError(ValueError):\n    pass\n")
    there = ast.parse("try:\n    pass\nexcept (KeyError, mod.LocalError):\n    pass\n")
    defined = exception_classes({ROOT / "rnncore" / "x.py": here})
    assert "LocalError" in defined and "LocalError" in caught_names(there)
