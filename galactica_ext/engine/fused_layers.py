"""A decoding step of a few sequences as one numba call per decoder layer.

A float32 step of galactica-125m streams 494 MB of weights, and the numba product kernels
(:mod:`.few_rows`) read them at about the machine's bandwidth. What was left around them on a
2-core AMD EPYC (Zen 1, AVX2), 2 threads, was 12-13 ms of a 38 ms step: each of the 49
products cost 40-90 µs of Python and torch around its kernel (the output tensor, numpy views,
the call), and each layer's norms, residual adds, cache write and attention were a dozen
small torch operations, each tens of µs with the caches emptied by the products around it.
Here :func:`._layer_kernel.decoder_layer` does a whole layer in one call: the same
operations, the products by the same kernels, the cache written in place and attended by the
kernel of :mod:`.bf16_attention` (float32 or bfloat16 values). Measured with
``benchmarks/fused_layers.py`` on that machine, galactica-125m, 1 and 2 threads, 32 and 1,000
tokens of context, steps in turn: float32 steps of one or two sequences 1.18-1.37x as fast,
bfloat16 steps of one to four 1.12-1.23x. On a Zen 4 EPYC (AVX-512 BF16): float32 1.10-1.25x,
bfloat16 (one or two sequences: what its kernel takes there) 1.09-1.21x.

- **float32**: the logits agree with the modules' to float32 rounding (sums in another order:
  about 1e-6), greedy tokens the same (tested).
- **bfloat16** (:func:`._layer_kernel.decoder_layer_bf16`): rounded to bfloat16 wherever the
  modules round (each norm, product, attention output and residual addition), so the logits
  are mostly the modules' bits (all of them in the tests here; a sum computed in another
  order may land a rounding step away).

It applies where every product keeps its plain weight for a few-row kernel (float32 where
:func:`.few_rows.keeps_plain` allows; bfloat16 with a plain copy, or widened on CPUs without
bfloat16 arithmetic, :mod:`.widened`; int8 weights of a bfloat16 model with their plain copy,
:class:`.few_rows.Int8Rows`: galactica-125m steps 1.4-1.6x as fast as the modules' with
torch's dynamic int8 product, 2 threads) and fc1 applies the GELU (:func:`.cpu.fuse_gelu`), for
as many sequences as those kernels take, over a :class:`.kvcache.GrowingLayer` cache with room
for the step; in bfloat16 only where the query scaling is folded into the weights. Anywhere
else :meth:`FusedLayers.run` returns False and the step runs the modules.
``$GALACTICA_FUSED_LAYERS=torch`` turns it off, and so does ``$GALACTICA_DECODE_ATTENTION=torch``
(its attention is that kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from . import bf16_attention, few_rows, numba_kernels

#: ``$GALACTICA_FUSED_LAYERS``: "auto" (the kernel where numba works) or "torch"
FUSED_ENV = "GALACTICA_FUSED_LAYERS"


class Kernels(NamedTuple):
    """The compiled kernels (:mod:`._layer_kernel`), one per dtype of the model."""

    float32: Callable  # decoder_layer
    bfloat16: Callable  # decoder_layer_bf16


def _as_int8(product: tuple) -> tuple:
    """A ``(weight, bias)`` of zeros as an int8 model's ``(int8 weight, scales, bias)``."""
    weight, bias = product
    return np.zeros(weight.shape, np.int8), np.ones(len(bias), np.float32), bias


def _build() -> Kernels:
    from ._layer_kernel import decoder_layer, decoder_layer_bf16

    width, heads = 8, 2
    for kind in (np.float32, np.uint16):
        norm = (np.ones(width, kind), np.zeros(width, kind), np.float32(1e-5))
        square = (np.zeros((width, width), kind), np.zeros(width, kind))
        qkv = (np.zeros((3 * width, width), kind), np.zeros(3 * width, kind))
        cache = np.zeros((1, heads, 4, width // heads), kind)
        x, mask, scale = np.ones((1, width), kind), bf16_attention._NO_MASK, np.float32(1.0)
        # the model's own weights, then an int8 model's (int8 weight, scales, bias)
        for q, s in ((qkv, square), (_as_int8(qkv), _as_int8(square))):
            if kind is np.float32:
                decoder_layer(x, norm, q, cache, cache.copy(), 0, scale, mask, s, norm, s, s)
            else:
                decoder_layer_bf16(x, norm, q, cache, cache.copy(), 0, mask, s, norm, s, s)
    return Kernels(decoder_layer, decoder_layer_bf16)


#: the kernel, or None (``numba_kernels.loader``); asked when a step is built
kernel = numba_kernels.loader(FUSED_ENV, "fused decoder layers", "the layers' modules", _build)


def _norm(norm: tuple, dtype: torch.dtype) -> tuple | None:
    """A ``(shape, weight, bias, eps)`` layer norm as the kernel's ``(weight, bias, eps)``
    (bfloat16 as bits), or None where it is not one of ``dtype`` with weight and bias."""
    _, weight, bias, eps = norm
    if weight is None or bias is None or not weight.dtype == bias.dtype == dtype:
        return None
    return (few_rows._array(weight), few_rows._array(bias), np.float32(eps))


def _product(module: Any) -> few_rows.FewRows | few_rows.Int8Rows | None:
    """The few-row kernel of a product (its plain weight, float32, bfloat16 or int8), or
    None."""
    kernel_of = getattr(module, "few_rows", None)
    if kernel_of is None or kernel_of.run is None:
        return None
    return kernel_of


class FusedLayers:
    """A :class:`.decode_step.DecodeStep`'s layers as :func:`._layer_kernel.decoder_layer` (or
    ``decoder_layer_bf16``) calls: :meth:`build` returns None where they do not apply."""

    def __init__(
        self, run: Callable, layers: list[tuple], heads: int, width: int, rows: int
    ) -> None:
        self.kernel, self.layers, self.heads, self.width = run, layers, heads, width
        #: the most sequences a step may have: what every product's kernel takes
        self.rows = rows
        self.dtype = layers[0][1][0].dtype

    @classmethod
    def build(cls, plan: list, heads: int, width: int) -> FusedLayers | None:
        """From a step's plan (``DecodeStep.plan``), or None where any of these holds:
        no kernel here, or no decoding attention kernel (:mod:`.bf16_attention`); a product
        without a few-row kernel (no plain weight kept); products not all float32 or all
        bfloat16; an fc1 without the GELU inside; in bfloat16, a query scaling not folded."""
        kernels = kernel()
        # they attend by the decoding attention's kernel: off where it is (or cannot run)
        if kernels is None or not plan or bf16_attention.kernel() is None:
            return None
        layers, rows = [], []
        dtype = getattr(_product(plan[0].qkv), "dtype", None)
        for layer in plan:
            products = [_product(m) for m in (layer.qkv, layer.out_proj, layer.fc1, layer.fc2)]
            norms = [_norm(layer.first_norm, dtype), _norm(layer.second_norm, dtype)]
            if (
                None in products
                or None in norms
                or any(p.dtype != dtype for p in products)
                or layer.activation is not None
                or getattr(layer.fc1, "activation", None) != "gelu"
                or (dtype == torch.bfloat16 and layer.scaling is not None)
            ):
                return None
            scale = np.float32(1.0 if layer.scaling is None else layer.scaling)
            layers.append((norms, products, scale))
            rows += [p.max_rows for p in products]
        run = {torch.float32: kernels.float32, torch.bfloat16: kernels.bfloat16}.get(dtype)
        if run is None:
            return None
        return cls(run, layers, heads, width, min(rows))

    def run(self, x: torch.Tensor, cache: Any, mask: torch.Tensor | None) -> bool:
        """Every layer over ``x`` (``[B, 1, W]`` in the model's dtype, updated in place) and
        ``cache`` (the new token's keys and values written into it); False, with nothing
        changed, where the step is not one this takes (more rows, a cache without room,
        another layout or dtype, gradients wanted)."""
        rows = x.shape[0]
        cached = getattr(cache, "layers", ())
        if (
            rows > self.rows
            or x.dtype != self.dtype
            or x.shape[1:] != (1, self.width)
            or not x.is_contiguous()
            or len(cached) != len(self.layers)
            or (torch.is_grad_enabled() and x.requires_grad)
        ):
            return False
        buffers = [self._buffers(layer, rows) for layer in cached]
        if any(b is None for b in buffers):
            return False
        attend_to = bf16_attention._row_mask(mask, rows, cached[0].length + 1)
        if attend_to is None:
            return False
        stream = few_rows._array(x).reshape(rows, self.width)  # x's memory, written in place
        bfloat16 = self.dtype == torch.bfloat16
        with numba_kernels.LOCK:
            numba_kernels.match_threads()
            for (norms, products, scale), layer, (keys, values) in zip(
                self.layers, cached, buffers, strict=True
            ):
                qkv, out_proj, fc1, fc2 = (p._arrays() for p in products)
                if bfloat16:
                    self.kernel(
                        stream, norms[0], qkv, keys, values, layer.length, attend_to,
                        out_proj, norms[1], fc1, fc2,
                    )  # fmt: skip
                else:
                    self.kernel(
                        stream, norms[0], qkv, keys, values, layer.length, scale, attend_to,
                        out_proj, norms[1], fc1, fc2,
                    )  # fmt: skip
                layer.wrote(1)
        return True

    def _buffers(self, layer: Any, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A layer cache's key and value buffers as numpy (bfloat16 as bits), where it has
        room for the step and the kernel's layout (``[B, H, capacity, D]``, contiguous, the
        model's dtype); else None."""
        buffers = getattr(layer, "buffers", None)
        if buffers is None or layer.length >= layer.capacity:
            return None
        keys, values = buffers
        dim = self.width // self.heads
        if (
            keys.dtype != self.dtype
            or keys.shape[:2] != (rows, self.heads)
            or keys.shape[-1] != dim
            or values.shape != keys.shape
            or values.dtype != keys.dtype
            or not (keys.is_contiguous() and values.is_contiguous())
        ):
            return None
        if self.dtype == torch.bfloat16:
            return layer.bits()
        return keys.numpy(), values.numpy()
