"""Errors raised by the step kernels' public wrappers and the normaliser."""

from __future__ import annotations

from rnncore.errors import RnnCoreError


class KernelInputError(RnnCoreError, ValueError):
    """Arrays handed to a kernel or the normaliser have the wrong shape, dtype, layout or values, or a row is
    outside the state table; the message names the array."""
