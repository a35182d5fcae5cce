"""AVX-512 register-blocked matrix products for the tile: gate pre-activations with their biases in one pass.

``block_product`` (an LLVM intrinsic, so the accumulators live in vector registers) computes a block of
``E`` rows x ``16 C`` columns of ``P = bias + A1 @ W1 + A2 @ W2``; ``gate_product`` covers ``n`` rows and
``width`` columns with it. Why not BLAS: the OpenBLAS behind Numba's ``np.dot`` runs its AVX2 kernel here
(``OPENBLAS_CORETYPE=Haswell`` on this machine, and older OpenBLAS builds do not know Zen 5), about 120
GFLOP/s; these blocks run at 240-280 GFLOP/s on the 64 x 64 x 192 tile product, and they fold the input
term and both biases into the same accumulators. LLVM lowers the 16-wide vectors to whatever the host has
(two 256-bit halves on an AVX2 machine), so the code is portable; it is only fastest with AVX-512.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnncore.kernels._numba import jit_leaf

LANES = 16  # float32 per 512-bit vector: columns per vector, the unit every product width is padded to
ROWS = 6  # E: rows per register block (6 x 4 vectors = 24 accumulators of the 32 registers)
VECTORS = 4  # C: column vectors per register block (64 columns)

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, LANES)
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _make_block(E: int, C: int) -> Any:
    """An intrinsic for one E x (16 C) block of ``P = bias + A1 @ W1 + A2 @ W2`` (flat float32 offsets)."""

    @intrinsic
    def block(
        typingctx: Any,
        P: Any, p_off: Any, ldp: Any,
        bias: Any, b_off: Any,
        A1: Any, a1_off: Any, lda1: Any, W1: Any, w1_off: Any, K1: Any,
        A2: Any, a2_off: Any, lda2: Any, W2: Any, w2_off: Any, K2: Any,
        ldw: Any,
    ) -> Any:  # fmt: skip
        args = (P, p_off, ldp, bias, b_off, A1, a1_off, lda1, W1, w1_off, K1, A2, a2_off, lda2, W2, w2_off, K2, ldw)
        arrays = (0, 3, 5, 8, 11, 14)
        for position in arrays:
            if not isinstance(args[position], types.Array) or args[position].dtype != types.float32:
                return None
        sig = types.void(*args)

        def codegen(context: Any, builder: Any, signature: Any, llargs: Any) -> Any:
            def data(i: int) -> Any:
                return context.make_array(signature.args[i])(context, builder, llargs[i]).data

            def integer(i: int) -> Any:
                return context.cast(builder, llargs[i], signature.args[i], types.int64)

            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_V16, [_V16, _V16, _V16]), "llvm.fma.v16f32"
            )
            undef = ir.Constant(_V16, None)
            splat = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)

            def vector_at(base: Any, offset: Any) -> Any:
                return builder.bitcast(builder.gep(base, [offset]), _V16.as_pointer())

            def const(value: int) -> Any:
                return ir.Constant(_I64, value)

            P_ptr, bias_ptr = data(0), data(3)
            p_off, ldp, b_off, ldw = integer(1), integer(2), integer(4), integer(17)
            b = [builder.load(vector_at(bias_ptr, builder.add(b_off, const(LANES * c))), align=4) for c in range(C)]
            acc = [[b[c] for c in range(C)] for _ in range(E)]
            for A_i, a_off_i, lda_i, W_i, w_off_i, K_i in ((5, 6, 7, 8, 9, 10), (11, 12, 13, 14, 15, 16)):
                A_ptr, W_ptr = data(A_i), data(W_i)
                a_off, lda, w_off, K = integer(a_off_i), integer(lda_i), integer(w_off_i), integer(K_i)
                entry = builder.block
                loop = builder.append_basic_block("k_loop")
                done = builder.append_basic_block("k_done")
                builder.cbranch(builder.icmp_signed(">", K, const(0)), loop, done)
                builder.position_at_end(loop)
                k = builder.phi(_I64)
                k.add_incoming(const(0), entry)
                phis = [[builder.phi(_V16) for _ in range(C)] for _ in range(E)]
                for r in range(E):
                    for c in range(C):
                        phis[r][c].add_incoming(acc[r][c], entry)
                w_row = builder.add(w_off, builder.mul(k, ldw))
                w = [builder.load(vector_at(W_ptr, builder.add(w_row, const(LANES * c))), align=4) for c in range(C)]
                new = [[undef] * C for _ in range(E)]
                for r in range(E):
                    a_at = builder.add(builder.add(a_off, builder.mul(const(r), lda)), k)
                    a = builder.load(builder.gep(A_ptr, [a_at]))
                    a_vec = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(_I32, 0)), undef, splat)
                    for c in range(C):
                        new[r][c] = builder.call(fma, [a_vec, w[c], phis[r][c]])
                k_next = builder.add(k, const(1))
                k.add_incoming(k_next, loop)
                for r in range(E):
                    for c in range(C):
                        phis[r][c].add_incoming(new[r][c], loop)
                builder.cbranch(builder.icmp_signed("<", k_next, K), loop, done)
                builder.position_at_end(done)
                merged = [[builder.phi(_V16) for _ in range(C)] for _ in range(E)]
                for r in range(E):
                    for c in range(C):
                        merged[r][c].add_incoming(acc[r][c], entry)
                        merged[r][c].add_incoming(new[r][c], loop)
                acc = merged
            for r in range(E):
                p_row = builder.add(p_off, builder.mul(const(r), ldp))
                for c in range(C):
                    builder.store(acc[r][c], vector_at(P_ptr, builder.add(p_row, const(LANES * c))), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return block


_block_full = _make_block(ROWS, VECTORS)
_block_narrow = _make_block(ROWS, 1)
_row_full = _make_block(1, VECTORS)
_row_narrow = _make_block(1, 1)


@jit_leaf
def gate_product(
    n: int,
    P: np.ndarray,
    col: int,
    width: int,
    weights: np.ndarray,
    b_off: int,
    A1: np.ndarray,
    w1_off: int,
    K1: int,
    A2: np.ndarray,
    w2_off: int,
    K2: int,
    ldw: int,
) -> None:
    """P[:n, col:col+width] = bias + A1[:n, :K1] @ W1 + A2[:n, :K2] @ W2, where W1, W2 [K, ldw] and bias [ldw]
    sit in ``weights`` at w1_off, w2_off, b_off (column ``col`` onwards); ``width`` is a multiple of 16.

    With n >= 6, rows past n up to the next multiple of 6 are computed too (P, A1, A2 need those rows; their
    values are never read), so a tile never falls back to the slower one-row blocks."""
    ldp = P.shape[1]
    lda1 = A1.shape[1]
    lda2 = A2.shape[1]
    rows_end = (n + ROWS - 1) // ROWS * ROWS if n >= ROWS else 0
    c = col
    end = col + width
    while c < end:
        wide = end - c >= LANES * VECTORS
        for e in range(0, rows_end, ROWS):
            if wide:
                _block_full(
                    P, e * ldp + c, ldp, weights, b_off + c,
                    A1, e * lda1, lda1, weights, w1_off + c, K1,
                    A2, e * lda2, lda2, weights, w2_off + c, K2, ldw,
                )  # fmt: skip
            else:
                _block_narrow(
                    P, e * ldp + c, ldp, weights, b_off + c,
                    A1, e * lda1, lda1, weights, w1_off + c, K1,
                    A2, e * lda2, lda2, weights, w2_off + c, K2, ldw,
                )  # fmt: skip
        for e in range(rows_end, n):
            if wide:
                _row_full(
                    P, e * ldp + c, ldp, weights, b_off + c,
                    A1, e * lda1, lda1, weights, w1_off + c, K1,
                    A2, e * lda2, lda2, weights, w2_off + c, K2, ldw,
                )  # fmt: skip
            else:
                _row_narrow(
                    P, e * ldp + c, ldp, weights, b_off + c,
                    A1, e * lda1, lda1, weights, w1_off + c, K1,
                    A2, e * lda2, lda2, weights, w2_off + c, K2, ldw,
                )  # fmt: skip
        c += LANES * VECTORS if wide else LANES
