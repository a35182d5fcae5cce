"""Numba compilation flags for every kernel in this package, kept in one place.

``error_model="numpy"`` drops the zero-division branch that blocks vectorisation; the fastmath flags
allow reassociation and contraction (FMA) but NOT ``nnan``/``ninf``: the kernels must still see NaN and
infinity in their inputs to reject those events.
"""

from __future__ import annotations

from typing import Any

from numba import njit

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_FLAGS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": set(FASTMATH_FLAGS)}


def jit(function_or_signature: Any = None) -> Any:
    """Decorator for the kernels (cached on disk so CI compiles once); ``@jit("sig")`` compiles eagerly for
    exactly that signature, so calls with other dtypes or layouts fail fast with a TypeError."""
    if callable(function_or_signature):
        return njit(**_FLAGS)(function_or_signature)
    if function_or_signature is None:
        return njit(**_FLAGS)
    return njit(function_or_signature, **_FLAGS)


jit_inline = njit(inline="always", **_FLAGS)
"""Decorator for the small scalar helpers that must inline into the kernels' vector loops."""

jit_leaf = njit(**_FLAGS, _nrt=False)  # type: ignore[call-overload]  # _nrt: a documented target option
"""Decorator for helpers that take arrays but neither allocate nor return one: compiled without reference
counting. Numba otherwise increments and decrements each array argument's count (atomic operations) on
every call that its pruning pass cannot pair up, which cost ~70 ns per event when the per-event helpers
took nine arrays each."""
