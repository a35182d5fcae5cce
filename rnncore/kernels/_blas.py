"""Pin scipy's OpenBLAS (the BLAS behind ``np.dot`` inside ``@njit``) to one thread.

The kernels call small matrix products (~256 x 64 x 192) per tile; OpenBLAS would otherwise wake a
thread pool for each, which costs more than it gains and competes with the service's other work.
Only scipy's bundled library is touched; numpy's own BLAS keeps its settings.
"""

from __future__ import annotations

import ctypes
import glob
import os

import scipy


def pin_scipy_blas_to_one_thread() -> bool:
    """Set scipy's bundled OpenBLAS to one thread; returns False when no such library is found."""
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in glob.glob(os.path.join(libs_dir, "*openblas*.so*")):
        try:
            lib = ctypes.CDLL(path)
            setter = lib.scipy_openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter(1)
        return True
    return False
