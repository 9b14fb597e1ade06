"""The numba kernels behind :mod:`.few_rows` (imported only where numba works)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._bf16_bits import narrow, widen
from .numba_kernels import FAST

#: output features per parallel chunk (each thread streams whole chunks of the weight)
CHUNK = 64

_SQRT_HALF = np.float32(math.sqrt(0.5))


# nogil: the agent's HTTP thread streams tokens while a step runs
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def few_row_product(x, weight, bias, out):
    """``out = x · weightᵀ + bias`` in float32 for a few rows ``x`` (``[M, K]``) and a
    C-contiguous ``weight`` (``[N, K]``, as ``nn.Linear`` holds it), reading the weight once:
    each weight row is multiplied by every row of ``x`` while it is in cache. ``bias`` is
    ``[N]`` or empty (none); ``out`` is ``[M, N]``."""
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
                out[m, n] = acc


# one row, each chunk of output features on one thread: measured faster than the row loop of
# few_row_product for bfloat16 (that loop is no faster than oneDNN at one row)
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def one_row_bf16(x, weight, bias, gelu, out):
    """``out = x · weightᵀ + bias`` for one bfloat16 row ``x`` (``[K]``) and a C-contiguous
    bfloat16 ``weight`` (``[N, K]``), all as their bits (uint16), summed in float32 and rounded
    once to ``out`` (``[N]``), as oneDNN's bfloat16 product does. ``bias``: ``[N]`` or empty
    (none). ``gelu``: apply the exact (erf) GELU in float32 before rounding, as oneDNN's
    post-op does."""
    features, size = weight.shape
    with_bias = bias.shape[0] > 0
    for chunk in prange((features + CHUNK - 1) // CHUNK):
        for n in range(chunk * CHUNK, min(features, chunk * CHUNK + CHUNK)):
            acc = np.float32(0.0)
            for k in range(size):
                acc += widen(x[k]) * widen(weight[n, k])
            if with_bias:
                acc += widen(bias[n])
            if gelu:
                acc = np.float32(0.5) * acc * (np.float32(1.0) + math.erf(acc * _SQRT_HALF))
            out[n] = narrow(acc)


# several rows over bfloat16 weights, for CPUs without bfloat16 arithmetic (.widened): each
# weight row is read once from memory and widened from cache for every row of x
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def rows_bf16(x, weight, bias, gelu, out):
    """``out = x · weightᵀ + bias`` for float32 rows ``x`` (``[M, K]``: bfloat16 values,
    widened) and a C-contiguous bfloat16 ``weight`` (``[N, K]``, its bits), summed in float32
    and rounded once to ``out`` (``[M, N]``, bfloat16 bits). ``bias``: ``[N]`` bits or empty.
    ``gelu``: the exact (erf) GELU in float32 before rounding."""
    rows, size = x.shape
    features = weight.shape[0]
    with_bias = bias.shape[0] > 0
    for chunk in prange((features + CHUNK - 1) // CHUNK):
        for n in range(chunk * CHUNK, min(features, chunk * CHUNK + CHUNK)):
            for m in range(rows):
                acc = np.float32(0.0)
                for k in range(size):
                    acc += x[m, k] * widen(weight[n, k])
                if with_bias:
                    acc += widen(bias[n])
                if gelu:
                    acc = np.float32(0.5) * acc * (np.float32(1.0) + math.erf(acc * _SQRT_HALF))
                out[m, n] = narrow(acc)
