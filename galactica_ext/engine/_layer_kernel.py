"""The numba kernel behind :mod:`.fused_layers` (imported only where numba works)."""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload

from ._attention_kernel import write_and_attend
from ._bf16_bits import narrow, widen
from ._product_kernel import few_row_product, rows_bf16, rows_int8
from .numba_kernels import FAST


@njit(fastmath=FAST, cache=True, nogil=True)
def _layer_norm(x, weight, bias, eps, out):
    """``out`` = each row of ``x`` (``[M, W]``) normalized (biased variance, as torch's
    ``layer_norm``), times ``weight``, plus ``bias``; float32."""
    rows, width = x.shape
    for m in range(rows):
        mean = np.float32(0.0)
        for k in range(width):
            mean += x[m, k]
        mean /= np.float32(width)
        variance = np.float32(0.0)
        for k in range(width):
            centred = x[m, k] - mean
            variance += centred * centred
        scale = np.float32(1.0) / np.sqrt(variance / np.float32(width) + eps)
        for k in range(width):
            out[m, k] = (x[m, k] - mean) * scale * weight[k] + bias[k]


def _product_f32(x, linear, gelu, out):
    """A product of float32 rows: ``linear`` is ``(weight, bias)`` (:func:`few_row_product`)
    or ``(int8 weight, scales, bias)`` (:func:`rows_int8`); numba picks which by the tuple's
    length when it compiles."""
    raise NotImplementedError("compiled by numba only")


@overload(_product_f32, inline="always")
def _product_f32_kinds(x, linear, gelu, out):
    if len(linear) == 3:

        def int8(x, linear, gelu, out):
            rows_int8(x, linear[0], linear[1], linear[2], gelu, out)

        return int8

    def float32(x, linear, gelu, out):
        few_row_product(x, linear[0], linear[1], gelu, out)

    return float32


# nogil: the agent's HTTP thread streams tokens while a step runs
@njit(fastmath=FAST, cache=True, nogil=True)
def decoder_layer(
    x, first_norm, qkv, keys, values, length, scale, mask, out_proj, second_norm, fc1, fc2
):
    """One pre-norm OPT decoder layer for one new token per row, float32, ``x`` (``[M, W]``,
    the residual stream) updated in place: the first norm, the fused q/k/v product, the new key
    and value written at token ``length`` of ``keys``/``values`` (``[M, H, capacity, D]``) and
    the attention over the ``length + 1`` tokens (queries times ``scale``; ``mask``
    ``[M, length + 1]`` or empty), the output projection added to ``x``, the second norm, fc1
    with the exact GELU, fc2 added to ``x``. Each norm is ``(weight, bias, eps)``, each product
    ``(weight [N, K], bias [N])``, or ``(int8 weight, scales, bias)`` (an int8 model:
    :func:`rows_int8`); the products run in parallel (:func:`few_row_product`)."""
    rows, width = x.shape
    heads, dim = keys.shape[1], keys.shape[3]
    normed = np.empty_like(x)
    _layer_norm(x, first_norm[0], first_norm[1], first_norm[2], normed)
    projected = np.empty((rows, qkv[0].shape[0]), np.float32)
    _product_f32(normed, qkv, False, projected)
    attended = np.empty((rows, heads, dim), np.float32)
    write_and_attend(
        projected.reshape(rows, 3, heads, dim), keys, values, length, scale, mask, attended
    )
    added = np.empty_like(x)
    _product_f32(attended.reshape(rows, width), out_proj, False, added)
    x += added
    _layer_norm(x, second_norm[0], second_norm[1], second_norm[2], normed)
    hidden = np.empty((rows, fc1[0].shape[0]), np.float32)
    _product_f32(normed, fc1, True, hidden)
    _product_f32(hidden, fc2, False, added)
    x += added


@njit(fastmath=FAST, cache=True, nogil=True)
def _layer_norm_bf16(x, weight, bias, eps, out):
    """:func:`_layer_norm` of bfloat16 rows (bits, as are ``weight``, ``bias`` and ``out``) in
    float32, each result rounded once to bfloat16, as torch's bfloat16 ``layer_norm`` gives
    it."""
    rows, width = x.shape
    for m in range(rows):
        mean = np.float32(0.0)
        for k in range(width):
            mean += widen(x[m, k])
        mean /= np.float32(width)
        variance = np.float32(0.0)
        for k in range(width):
            centred = widen(x[m, k]) - mean
            variance += centred * centred
        scale = np.float32(1.0) / np.sqrt(variance / np.float32(width) + eps)
        for k in range(width):
            out[m, k] = narrow((widen(x[m, k]) - mean) * scale * widen(weight[k]) + widen(bias[k]))


@njit(fastmath=FAST, cache=True, nogil=True)
def _add_bf16(x, added):
    """``x += added``, both bfloat16 bits, the float32 sum rounded once (torch's addition)."""
    rows, width = x.shape
    for m in range(rows):
        for k in range(width):
            x[m, k] = narrow(widen(x[m, k]) + widen(added[m, k]))


def _product_bf16(x, linear, gelu, out):
    """A product of bfloat16 rows: ``linear`` is ``(weight, bias)`` in bfloat16 bits
    (:func:`rows_bf16`) or ``(int8 weight, scales, bias)`` (:func:`rows_int8`); numba picks
    which by the tuple's length when it compiles."""
    raise NotImplementedError("compiled by numba only")


@overload(_product_bf16, inline="always")
def _product_bf16_kinds(x, linear, gelu, out):
    if len(linear) == 3:

        def int8(x, linear, gelu, out):
            rows, size = x.shape
            widened = np.empty((rows, size), np.float32)
            for m in range(rows):
                for k in range(size):
                    widened[m, k] = widen(x[m, k])
            rows_int8(widened, linear[0], linear[1], linear[2], gelu, out)

        return int8

    def bfloat16(x, linear, gelu, out):
        rows_bf16(x, linear[0], linear[1], gelu, out)

    return bfloat16


# nogil: the agent's HTTP thread streams tokens while a step runs
@njit(fastmath=FAST, cache=True, nogil=True)
def decoder_layer_bf16(
    x, first_norm, qkv, keys, values, length, mask, out_proj, second_norm, fc1, fc2
):
    """:func:`decoder_layer` for bfloat16 (every array its bits, uint16; the query scaling
    folded into the q/k/v weights), rounding to bfloat16 where the modules do: each norm, each
    product (float32 sums rounded once, fc1's GELU before rounding: :func:`rows_bf16`), the
    attention's output and each residual addition. Each product's ``(weight, bias)`` may be
    ``(int8 weight, scales, bias)`` instead (an int8 model: :func:`rows_int8`)."""
    rows, width = x.shape
    heads, dim = keys.shape[1], keys.shape[3]
    normed = np.empty((rows, width), np.uint16)
    _layer_norm_bf16(x, first_norm[0], first_norm[1], first_norm[2], normed)
    projected = np.empty((rows, qkv[0].shape[0]), np.uint16)
    _product_bf16(normed, qkv, False, projected)
    attended = np.empty((rows, heads, dim), np.uint16)
    write_and_attend(
        projected.reshape(rows, 3, heads, dim), keys, values, length, np.float32(1.0), mask,
        attended,
    )  # fmt: skip
    added = np.empty((rows, width), np.uint16)
    _product_bf16(attended.reshape(rows, width), out_proj, False, added)
    _add_bf16(x, added)
    _layer_norm_bf16(x, second_norm[0], second_norm[1], second_norm[2], normed)
    hidden = np.empty((rows, fc1[0].shape[0]), np.uint16)
    _product_bf16(normed, fc1, True, hidden)
    _product_bf16(hidden, fc2, False, added)
    _add_bf16(x, added)
