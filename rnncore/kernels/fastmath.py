"""Vectorisable float32 tanh and sigmoid for the gate loops (scalar libm calls would not vectorise).

``tanh_approx`` is the clamped [13/6] odd rational approximation Eigen uses for float tanh (a few ulp
over the whole range); ``sigmoid_approx(x) = 0.5 + 0.5 * tanh(x / 2)`` reuses it, which is exact algebra.
"""

from __future__ import annotations

import numpy as np

from rnncore.kernels._numba import jit_inline

_CLAMP = np.float32(7.90531110763549805)
_TINY = np.float32(0.0004)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)


@jit_inline
def tanh_approx(x: np.float32) -> np.float32:
    """tanh(x) for float32 x: clamp to +-7.905, then p(x)/q(x^2); |x| < 4e-4 returns x (Eigen's ptanh)."""
    xc = min(max(x, -_CLAMP), _CLAMP)
    x2 = xc * xc
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = xc * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    r = p / q
    return xc if abs(xc) < _TINY else r


@jit_inline
def sigmoid_approx(x: np.float32) -> np.float32:
    """Logistic sigmoid via tanh: 0.5 + 0.5 * tanh(0.5 * x)."""
    return _HALF + _HALF * tanh_approx(_HALF * x)
