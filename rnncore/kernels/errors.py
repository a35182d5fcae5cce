"""Errors raised by the step kernels' public wrappers."""

from __future__ import annotations

from rnncore.errors import RnnCoreError


class KernelError(RnnCoreError):
    """Root of the kernels' own errors."""


class KernelInputError(KernelError, ValueError):
    """Arrays passed to a kernel have the wrong shape, dtype or layout, or a row is outside the state table."""
