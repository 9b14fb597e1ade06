"""Decoding attention that reads a bfloat16 KV cache once: a numba kernel.

A decoding step attends one new query per sequence to every cached key and value. In
bfloat16, torch has no product that does this at the speed of memory: its fused SDPA kernel
and oneDNN's bfloat16 batched products run at 3-9 GB/s for these shapes, and converting the
cache to float32 first (:func:`.cpu._decode_attention`'s torch path) writes and reads it again
twice over. This kernel reads each bfloat16 key and value once, widens it to float32 in
registers (a bfloat16 is the top half of a float32), and computes the scores, a float32
softmax and the weighted sum of values in one pass per (sequence, head), the heads spread over
the threads. The arithmetic is the torch path's (float32 products of the exact float32 values
of the cache), so the results agree to float32 rounding (tested).

Measured on a 2-core AMD EPYC, 2 threads, µs per layer, kernel vs the torch path, interleaved
(``benchmarks/attention.py``): galactica-125m shape, one sequence at 32 tokens 41 vs 59, at
1,000 tokens 160 vs 295, four at 1,000 549 vs 1,526; galactica-1.3b shape, one at 1,000 372 vs
824, four at 1,000 1,418 vs 7,070. In the engine's step (``benchmarks/run.py`` section 7,
galactica-125m): the attention of one sequence at 1,000 tokens 3.5 vs 7.2 ms per step.

The engine's decoding step calls :func:`write_and_attend`: one kernel call per layer writes
the step's key and value into the cache (a :class:`.kvcache.GrowingLayer` with room) and
attends, from the fused q/k/v product as it comes, where the cache update, the split into
heads and the attention were a dozen small torch operations and two kernel calls. Between two
weight products each small operation runs with cold caches (tens of µs each): galactica-125m
bfloat16 steps were 1.04-1.07x as fast (1 and 4 sequences, 32 and 1,000 tokens, 1 and 2
threads, steps in turn), with the same logits (tested).

numba compiles the kernel once per machine (about 1-2 s, cached on disk) and needs no C
compiler. It costs memory: numba and its LLVM add about 140 MiB to the process (galactica-1.3b
bfloat16: peak RSS 1.30 -> 1.34 times the weights). Where numba is missing or fails, or
``$GALACTICA_DECODE_ATTENTION=torch``, the torch path runs instead (:func:`kernel` says why,
once, in the log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from . import numba_kernels

#: ``$GALACTICA_DECODE_ATTENTION``: "auto" (the kernel where numba works) or "torch"
ATTENTION_ENV = "GALACTICA_DECODE_ATTENTION"
_NO_MASK = np.zeros((0, 0), dtype=np.bool_)


class Kernels(NamedTuple):
    """The compiled kernels (:mod:`._attention_kernel`)."""

    attend: Callable  # decode_attention: over the cache as it is
    write_and_attend: Callable  # the step's key and value written first


def _build() -> Kernels:
    from ._attention_kernel import decode_attention, write_and_attend

    cache = np.zeros((1, 1, 4, 8), dtype=np.uint16)
    query, out = np.zeros((1, 1, 8), np.uint16), np.empty((1, 1, 8), np.uint16)
    decode_attention(query, cache, cache, 4, np.float32(1.0), _NO_MASK, out)
    write_and_attend(
        np.zeros((1, 3, 1, 8), np.uint16), cache, cache.copy(), 2, np.float32(1.0), _NO_MASK, out
    )
    return Kernels(decode_attention, write_and_attend)


#: the kernels, or None (``numba_kernels.loader``); the engine asks at model load
kernel = numba_kernels.loader(ATTENTION_ENV, "decoding attention", "torch", _build)


def _full_buffer(cache: torch.Tensor) -> torch.Tensor | None:
    """``cache`` (``[B, H, T, D]``, a view of the first T tokens of a ``[B, H, capacity, D]``
    buffer, or contiguous) as the whole buffer, C-contiguous; None for any other layout."""
    rows, heads, tokens, dim = cache.shape
    stride = cache.stride()
    if stride[3] != 1 or stride[2] != dim or stride[1] % dim:
        return None
    capacity = stride[1] // dim
    if capacity < tokens or (rows > 1 and stride[0] != heads * stride[1]):
        return None
    needed = cache.storage_offset() + rows * heads * capacity * dim
    if cache.untyped_storage().nbytes() < needed * cache.element_size():
        return None
    full_stride = (heads * capacity * dim, capacity * dim, dim, 1)
    return cache.as_strided((rows, heads, capacity, dim), full_stride)


def _row_mask(mask: torch.Tensor | None, rows: int, tokens: int) -> np.ndarray | None:
    """A boolean ``[B, 1, 1, T]`` mask (or None) as the kernel's ``[B, T]`` array; None where
    it is not one (the caller then keeps the torch path). An empty ``[0, 0]`` means no mask."""
    if mask is None:
        return _NO_MASK
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1:3] != (1, 1):
        return None
    if mask.shape[-1] != tokens or mask.shape[0] not in (1, rows):
        return None
    return mask[:, 0, 0, :].expand(rows, tokens).contiguous().numpy()


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor | None:
    """Attention of one query per sequence (``[B, H, 1, D]``) over a bfloat16 CPU cache, as
    ``[B, 1, H, D]`` in bfloat16 (float32 arithmetic, rounded once at the end); None where the
    kernel does not apply (no numba, another dtype or device, several queries, a cache layout
    or mask it does not take)."""
    kernels = kernel()
    if (
        kernels is None
        or query.shape[-2] != 1
        or not query.dtype == key.dtype == value.dtype == torch.bfloat16
        or key.device.type != "cpu"
        or key.shape != value.shape
        or query.shape[:2] != key.shape[:2]
        or query.shape[-1] != key.shape[-1]
    ):
        return None
    rows, heads, tokens, dim = key.shape
    keys, values = _full_buffer(key), _full_buffer(value)
    attend_to = _row_mask(mask, rows, tokens)
    if keys is None or values is None or attend_to is None or tokens == 0:
        return None
    q = query.reshape(rows, heads, dim).contiguous()
    out = torch.empty((rows, 1, heads, dim), dtype=torch.bfloat16)
    with numba_kernels.LOCK:
        numba_kernels.match_threads()
        kernels.attend(
            q.view(torch.uint16).numpy(),
            keys.view(torch.uint16).numpy(),
            values.view(torch.uint16).numpy(),
            tokens,
            np.float32(scale),
            attend_to,
            out.view(torch.uint16).numpy()[:, 0],
        )
    return out


def write_and_attend(
    qkv: torch.Tensor, layer: Any, mask: torch.Tensor | None, heads: int
) -> torch.Tensor | None:
    """A decoding step's attention from its fused q/k/v product (``[B, 1, 3W]``, bfloat16,
    the query scaling folded into it): the new key and value written into ``layer`` (a
    :class:`.kvcache.GrowingLayer` with room for them), then the query's attention over the
    cache, all in one kernel call. Returns ``[B, 1, W]``, the same values as
    ``layer.update`` and :func:`attend` give; None where it does not apply (no room, another
    dtype or layout, a mask it does not take, no numba): the caller then does those two."""
    kernels = kernel()
    rows, width = qkv.shape[0], qkv.shape[-1] // 3
    buffers = getattr(layer, "buffers", None)
    if (
        kernels is None
        or buffers is None
        or qkv.dtype != torch.bfloat16
        or qkv.shape[1:] != (1, 3 * width)
        or not qkv.is_contiguous()
        or layer.length >= layer.capacity
    ):
        return None
    keys = buffers[0]
    dim = width // heads
    if (
        keys.dtype != torch.bfloat16
        or keys.shape[:2] != (rows, heads)
        or keys.shape[-1] != dim
        or not (keys.is_contiguous() and buffers[1].is_contiguous())
        or buffers[1].shape != keys.shape
    ):
        return None
    attend_to = _row_mask(mask, rows, layer.length + 1)
    if attend_to is None:
        return None
    key_bits, value_bits = layer.bits()
    out = torch.empty((rows, 1, width), dtype=torch.bfloat16)
    with numba_kernels.LOCK:
        numba_kernels.match_threads()
        kernels.write_and_attend(
            qkv.view(torch.uint16).numpy().reshape(rows, 3, heads, dim),
            key_bits,
            value_bits,
            layer.length,
            np.float32(1.0),
            attend_to,
            out.view(torch.uint16).numpy().reshape(rows, heads, dim),
        )
    layer.wrote(1)
    return out
