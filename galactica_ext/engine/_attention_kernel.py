"""The numba kernels behind :mod:`.bf16_attention` (imported only where numba works): over a
bfloat16 cache (its bits), or a float32 one (:mod:`.fused_layers`)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ._bf16_bits import narrow, widen
from .numba_kernels import FAST


def as_float32(value):
    """A cached value as float32: a float32 as it is, a bfloat16 (its bits) widened."""


@overload(as_float32, inline="always")
def _as_float32(value):
    if isinstance(value, types.Float):
        return lambda value: np.float32(value)
    return lambda value: widen(value)


def stored(value, array):
    """A float32 ``value`` as ``array`` holds it: float32 as it is, bfloat16 rounded (bits)."""


@overload(stored, inline="always")
def _stored(value, array):
    if isinstance(array.dtype, types.Float):
        return lambda value, array: np.float32(value)
    return lambda value, array: narrow(value)


@njit(inline="always", fastmath=FAST)
def _attend(query, keys, values, b, h, tokens, scale, mask, out):
    """softmax(scale q·k) · v of sequence ``b``'s head ``h`` over its first ``tokens`` keys
    and values, into ``out[b, h]``: what each kernel below computes per (sequence, head)."""
    dim = keys.shape[3]
    masked = mask.shape[0] > 0
    q = np.empty(dim, np.float32)
    for d in range(dim):
        q[d] = as_float32(query[d]) * scale
    scores = np.empty(tokens, np.float32)
    top = np.float32(-3.0e38)
    for t in range(tokens):
        acc = np.float32(0.0)
        for d in range(dim):
            acc += q[d] * as_float32(keys[b, h, t, d])
        scores[t] = acc
        if (not masked or mask[b, t]) and acc > top:
            top = acc
    total = np.float32(0.0)
    for t in range(tokens):
        if masked and not mask[b, t]:
            scores[t] = np.float32(0.0)
        else:
            weight = np.exp(scores[t] - top)
            scores[t] = weight
            total += weight
    acc_out = np.zeros(dim, np.float32)
    for t in range(tokens):
        weight = scores[t]
        if weight != 0.0:
            for d in range(dim):
                acc_out[d] += weight * as_float32(values[b, h, t, d])
    inverse = np.float32(1.0) / total
    for d in range(dim):
        out[b, h, d] = stored(acc_out[d] * inverse, out)


# nogil: the agent's HTTP thread streams tokens while a step runs
@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def decode_attention(query, keys, values, tokens, scale, mask, out):
    """softmax(scale q·k) · v for one query per (sequence, head), over the first ``tokens`` of
    ``keys``/``values`` (``[B, H, capacity, D]``); ``query`` and ``out`` are ``[B, H, D]``;
    all bfloat16, as their bits (uint16); ``mask`` is boolean ``[B, tokens]`` (True: attend)
    or empty (attend to all). Products, softmax and sums in float32."""
    rows, heads = keys.shape[0], keys.shape[1]
    for item in prange(rows * heads):
        b = item // heads
        h = item - b * heads
        _attend(query[b, h], keys, values, b, h, tokens, scale, mask, out)


@njit(parallel=True, fastmath=FAST, cache=True, nogil=True)
def write_and_attend(qkv, keys, values, length, scale, mask, out):
    """A decoding step's new key and value written into the cache, then its attention:
    ``qkv`` (``[B, 3, H, D]``: the fused q/k/v product of one token per sequence, the query
    already scaled) gives each (sequence, head) its key and value at token ``length`` of
    ``keys``/``values`` (``[B, H, capacity, D]``), and its query (times ``scale``: 1 where the
    scaling is folded into the weights) attends over the ``length + 1`` tokens, as
    :func:`decode_attention` computes; ``mask`` is ``[B, length + 1]`` or empty; ``out`` is
    ``[B, H, D]``. All bfloat16 (their bits), or all float32."""
    rows, heads, _, dim = keys.shape
    for item in prange(rows * heads):
        b = item // heads
        h = item - b * heads
        for d in range(dim):
            keys[b, h, length, d] = qkv[b, 1, h, d]
            values[b, h, length, d] = qkv[b, 2, h, d]
        _attend(qkv[b, 0, h], keys, values, b, h, length + 1, scale, mask, out)
