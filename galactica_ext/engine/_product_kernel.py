"""The numba kernels behind :mod:`.few_rows` (imported only where numba works)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ._bf16_bits import narrow, widen
from .numba_kernels import FAST

#: output features per parallel chunk (each thread streams whole chunks of the weight)
CHUNK = 64

_SQRT_HALF = np.float32(math.sqrt(0.5))


@njit(inline="always")
def _gelu(acc):
    """The exact (erf) GELU of a float32, as oneDNN's post-op computes it."""
    return np.float32(0.5) * acc * (np.float32(1.0) + math.erf(acc * _SQRT_HALF))


# nogil: the agent's HTTP thread streams tokens while a step runs
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def few_row_product(x, weight, bias, gelu, out):
    """``out = x · weightᵀ + bias`` in float32 for a few rows ``x`` (``[M, K]``) and a
    C-contiguous ``weight`` (``[N, K]``, as ``nn.Linear`` holds it), reading the weight once:
    each weight row is multiplied by every row of ``x`` while it is in cache. ``bias`` is
    ``[N]`` or empty (none); ``gelu``: the exact GELU applied to each sum; ``out`` is
    ``[M, N]``."""
    rows, size = x.shape
    features = weight.shape[0]
    with_bias = bias.shape[0] > 0
    for chunk in prange((features + CHUNK - 1) // CHUNK):
        for n in range(chunk * CHUNK, min(features, chunk * CHUNK + CHUNK)):
            for m in range(rows):
                acc = np.float32(0.0)
                for k in range(size):
                    acc += x[m, k] * weight[n, k]
                if with_bias:
                    acc += bias[n]
                out[m, n] = _gelu(acc) if gelu else acc


@njit(inline="always")
def _rounded(acc, bias, n, with_bias, gelu):
    """A float32 sum with its bias and (``gelu``) the exact GELU, rounded to bfloat16 bits."""
    if with_bias:
        acc += widen(bias[n])
    return narrow(_gelu(acc) if gelu else acc)


# a few rows over bfloat16 weights, on any CPU (.widened: up to 32 rows where it has no
# bfloat16 arithmetic): each weight row is read once from memory; rows go in blocks of four
# (then two, then one) that share each widened weight (measured on AVX2, 4-12 rows: 1.6-2.1x
# a loop over single rows). The rows come as bfloat16 bits, widened where they are read: half
# the bytes of float32 rows through the load ports. On an AMD EPYC, galactica-125m's layer
# matrices, 1 and 2 threads: 1 row 1.2-1.3x, 2 rows 1.5-1.6x, 3-8 rows 1.0-1.2x (AVX-512 code;
# BENCHMARKS.md, eleventh round: its "AVX2 code" figures were AVX-512 code too, twelfth round)
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def rows_bf16(x, weight, bias, gelu, out):
    """``out = x · weightᵀ + bias`` for bfloat16 rows ``x`` (``[M, K]``) and a C-contiguous
    bfloat16 ``weight`` (``[N, K]``), all as their bits (uint16), summed in float32 and rounded
    once to ``out`` (``[M, N]``, bits). ``bias``: ``[N]`` bits or empty (none). ``gelu``: the
    exact (erf) GELU in float32 before rounding."""
    rows, size = x.shape
    features = weight.shape[0]
    with_bias = bias.shape[0] > 0
    for chunk in prange((features + CHUNK - 1) // CHUNK):
        for n in range(chunk * CHUNK, min(features, chunk * CHUNK + CHUNK)):
            m = 0
            while m + 4 <= rows:
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for k in range(size):
                    w = widen(weight[n, k])
                    a0 += widen(x[m, k]) * w
                    a1 += widen(x[m + 1, k]) * w
                    a2 += widen(x[m + 2, k]) * w
                    a3 += widen(x[m + 3, k]) * w
                out[m, n] = _rounded(a0, bias, n, with_bias, gelu)
                out[m + 1, n] = _rounded(a1, bias, n, with_bias, gelu)
                out[m + 2, n] = _rounded(a2, bias, n, with_bias, gelu)
                out[m + 3, n] = _rounded(a3, bias, n, with_bias, gelu)
                m += 4
            if m + 2 <= rows:
                a0 = a1 = np.float32(0.0)
                for k in range(size):
                    w = widen(weight[n, k])
                    a0 += widen(x[m, k]) * w
                    a1 += widen(x[m + 1, k]) * w
                out[m, n] = _rounded(a0, bias, n, with_bias, gelu)
                out[m + 1, n] = _rounded(a1, bias, n, with_bias, gelu)
                m += 2
            if m < rows:
                a0 = np.float32(0.0)
                for k in range(size):
                    a0 += widen(x[m, k]) * widen(weight[n, k])
                out[m, n] = _rounded(a0, bias, n, with_bias, gelu)


def _finished(value, bias, n, gelu, out):
    """``value`` (a float32 sum) plus ``bias[n]`` (none where empty) and (``gelu``) the exact
    GELU, in ``out``'s kind: rounded to bfloat16 bits for a uint16 ``out``, as it is for a
    float32 one; numba picks which from the arrays' types when it compiles."""
    raise NotImplementedError("compiled by numba only")


@overload(_finished)
def _finished_kinds(value, bias, n, gelu, out):
    if out.dtype == types.uint16:

        def bfloat16(value, bias, n, gelu, out):
            return _rounded(value, bias, n, bias.shape[0] > 0, gelu)

        return bfloat16

    def float32(value, bias, n, gelu, out):
        if bias.shape[0] > 0:
            value += bias[n]
        return _gelu(value) if gelu else value

    return float32


# a few rows over int8 weights (int8.Int8Linear's plain copy): weight-only int8, as gpt-fast's
# kernel computes it, each weight read once from memory at one byte. The rows come widened to
# float32 (a few kB) so that the loop converts only the weight (measured within noise of
# widening the rows in the loop). Compute-bound: about 16 G weights/s per core on a Zen 4, where
# the same loop over bfloat16 weights streams 10-20 G weights/s from memory
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def rows_int8(x, weight, scale, bias, gelu, out):
    """``out = (x · weightᵀ) * scale + bias`` for float32 rows ``x`` (``[M, K]``: a float32
    model's, or bfloat16 rows widened) and a C-contiguous int8 ``weight`` (``[N, K]``) with one
    float32 ``scale`` per row (``[N]``): float32 sums of the exact products, scaled, the bias
    (``[N]``, or empty) added and (``gelu``) the exact GELU applied, into ``out`` (``[M, N]``):
    a bfloat16 model's (``bias`` and ``out`` bfloat16 bits: rounded once) or a float32 one's.
    Only the weights are rounded (torch's dynamic kernel rounds each input row to 8 bits too).
    Rows in pairs that share each weight."""
    rows, size = x.shape
    features = weight.shape[0]
    for chunk in prange((features + CHUNK - 1) // CHUNK):
        for n in range(chunk * CHUNK, min(features, chunk * CHUNK + CHUNK)):
            m = 0
            while m + 2 <= rows:
                a0 = a1 = np.float32(0.0)
                for k in range(size):
                    w = np.float32(weight[n, k])
                    a0 += x[m, k] * w
                    a1 += x[m + 1, k] * w
                out[m, n] = _finished(a0 * scale[n], bias, n, gelu, out)
                out[m + 1, n] = _finished(a1 * scale[n], bias, n, gelu, out)
                m += 2
            if m < rows:
                a0 = np.float32(0.0)
                for k in range(size):
                    a0 += x[m, k] * np.float32(weight[n, k])
                out[m, n] = _finished(a0 * scale[n], bias, n, gelu, out)
