"""The numba kernel behind :mod:`.few_rows` (imported only where numba works)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_kernels import FAST

#: output features per parallel chunk (each thread streams whole chunks of the weight)
CHUNK = 64


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
