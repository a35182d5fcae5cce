"""Vectorisable float32 tanh, sigmoid and softplus for the kernels' loops (scalar libm calls would not vectorise).

``tanh_approx`` is the clamped [13/6] odd rational approximation Eigen uses for float tanh (a few ulp
over the whole range); ``sigmoid_approx(x) = 0.5 + 0.5 * tanh(x / 2)`` reuses it, which is exact algebra.
``softplus_approx(x) = max(x, 0) + log1p(exp(-|x|))`` with Cephes' expf reduction and polynomial and the
atanh series for log1p on [0, 1] (absolute error about 1e-7 over the float32 range; libm: one call each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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


@intrinsic
def _float32_from_bits_intrinsic(typingctx: Any, bits: Any) -> Any:
    """The float32 whose IEEE bits are the low 32 bits of the integer ``bits`` (an LLVM bitcast: vectorises)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        low = builder.trunc(args[0], ir.IntType(32)) if args[0].type.width > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


_float32_from_bits: Any = _float32_from_bits_intrinsic


_EXP_MIN = np.float32(-104.0)  # exp(-104) = 6.8e-46 rounds to 0 in float32 (denormals start below 1.2e-38)
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E0 = np.float32(1.9875691500e-4)
_E1 = np.float32(1.3981999507e-3)
_E2 = np.float32(8.3334519073e-3)
_E3 = np.float32(4.1665795894e-2)
_E4 = np.float32(1.6666665459e-1)
_E5 = np.float32(5.0000001201e-1)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_ZERO = np.float32(0.0)
# log1p(u) = 2 atanh(s), s = u / (2 + u) <= 1/3: 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15), truncation < 2e-8
_L1 = np.float32(1.0 / 3.0)
_L2 = np.float32(1.0 / 5.0)
_L3 = np.float32(1.0 / 7.0)
_L4 = np.float32(1.0 / 9.0)
_L5 = np.float32(1.0 / 11.0)
_L6 = np.float32(1.0 / 13.0)
_L7 = np.float32(1.0 / 15.0)


@jit_inline
def exp_nonpositive(x: np.float32) -> np.float32:
    """exp(x) for float32 x <= 0 (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-5 polynomial, then 2^n as
    two factors built from their exponent bits, so denormal results come out right too)."""
    xc = max(min(x, _ZERO), _EXP_MIN)
    n = np.float32(np.floor(xc * _LOG2E + _HALF))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = _E0 * r + _E1
    p = p * r + _E2
    p = p * r + _E3
    p = p * r + _E4
    p = p * r + _E5
    y = p * r * r + r + _ONE
    n_half = np.int32(n * _HALF)  # truncates towards 0: both halves >= -75, so each 2^k is a normal float32
    n_rest = np.int32(n) - n_half
    y = y * _float32_from_bits((n_half + np.int32(127)) << np.int32(23))
    return y * _float32_from_bits((n_rest + np.int32(127)) << np.int32(23))


@jit_inline
def log1p_unit(u: np.float32) -> np.float32:
    """log(1 + u) for float32 u in [0, 1], via the atanh series (no cancellation near 0)."""
    s = u / (_TWO + u)
    s2 = s * s
    q = _L7 * s2 + _L6
    q = q * s2 + _L5
    q = q * s2 + _L4
    q = q * s2 + _L3
    q = q * s2 + _L2
    q = q * s2 + _L1
    q = q * s2 + _ONE
    return _TWO * s * q


@jit_inline
def softplus_approx(x: np.float32) -> np.float32:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|) for float32 x, vectorisable."""
    return max(x, _ZERO) + log1p_unit(exp_nonpositive(-abs(x)))
