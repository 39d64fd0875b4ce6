"""A software prefetch for compiled loops that walk down a column of a row-major array.

Such a loop strides by a whole row per element (the half-select pass down the pulsing
columns of the FC network's first tile: 785 float64 weights, 6,280 bytes), farther than
the hardware prefetchers follow on Intel cores (their stride prefetcher stops at 2 KiB),
so every element waits for its cache line. :func:`prefetch_for_write` asks for the line of
an element a few rows ahead (LLVM's ``llvm.prefetch``: a hint, never a fault, even past the
array's end, though the callers stay inside it).
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir  # type: ignore[import-untyped]
from numba.core import cgutils, types
from numba.extending import intrinsic

_WRITE = 1  # llvm.prefetch's rw argument: the line will be written
_LOCALITY = 3  # keep it in every cache level (x86: prefetchw, or prefetcht0 without it)
_DATA = 1  # the data cache


def _prefetch_typer(typingctx: Any, arr: Any, i: Any, j: Any) -> Any:
    """Typing and code of :data:`prefetch_for_write` for a 2-D array and two integers."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    if not (isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None
    sig = types.void(arr, i, j)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        cg: Any = cgutils  # untyped
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        pairs = zip(args[1:], signature.args[1:], strict=True)
        idx = [context.cast(builder, v, t, types.intp) for v, t in pairs]
        ptr = cg.get_item_pointer(context, builder, aty, ary, idx, wraparound=False)
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cg.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, ir.Constant(i32, _WRITE), ir.Constant(i32, _LOCALITY),
                          ir.Constant(i32, _DATA)])  # fmt: skip
        return context.get_dummy_value()

    return sig, codegen


prefetch_for_write: Any = intrinsic(_prefetch_typer)
"""``prefetch_for_write(a, i, j)`` in compiled code: prefetch the cache line of ``a[i, j]``
(a 2-D array, integer indices, no bounds check) for writing, into every cache level."""
