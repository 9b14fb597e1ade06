"""bfloat16 values as their 16 bits, for the numba kernels (imported only where numba works):
numba has no bfloat16, so the kernels read and write uint16 and compute in float32."""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import intrinsic


def _bitcast(source, target):
    """An intrinsic reading a ``source`` value's bits as a ``target`` (same width)."""

    @intrinsic
    def cast(typingctx, value):
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return cast


_bits_as_float32 = _bitcast(types.uint32, types.float32)
_float32_bits = _bitcast(types.float32, types.uint32)


@njit(inline="always")
def widen(bf16_bits):
    """A bfloat16 (its 16 bits) as the float32 it is exactly."""
    return _bits_as_float32(np.uint32(bf16_bits) << np.uint32(16))


@njit(inline="always")
def narrow(value):
    """A float32 rounded to the nearest bfloat16 (ties to even), as its 16 bits; NaN stays NaN."""
    bits = _float32_bits(value)
    if value != value:
        return np.uint16(0x7FC0)
    bits += np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return np.uint16(bits >> np.uint32(16))
