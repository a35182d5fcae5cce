"""A software-prefetch intrinsic for Numba kernels (LLVM ``llvm.prefetch``), to overlap random row misses.

``prefetch(array, flat_index)`` hints the CPU to load the cache line holding element ``flat_index`` of a
C-contiguous array; it never faults and has no effect on results.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def _prefetch_intrinsic(typingctx: Any, array: Any, flat_index: Any) -> Any:
    """Prefetch (for reading and writing soon, keep in all cache levels) the line of ``array.flat[flat_index]``."""
    if not isinstance(array, types.Array) or not isinstance(flat_index, types.Integer):
        return None
    signature = types.void(array, flat_index)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> None:
        array_struct = context.make_array(sig.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        address = builder.bitcast(builder.gep(array_struct.data, [index]), cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [address, i32(1), i32(3), i32(1)])  # write, high locality, data cache

    return signature, codegen


prefetch: Any = _prefetch_intrinsic
"""``prefetch(array, flat_index)`` inside ``@njit`` code (typed as Any: the intrinsic adds the typing context)."""
