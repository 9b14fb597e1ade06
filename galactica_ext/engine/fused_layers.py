"""A float32 decoding step of one or two sequences as one numba call per decoder layer.

A float32 step of galactica-125m streams 494 MB of weights, and the numba product kernels
(:mod:`.few_rows`) read them at about the machine's bandwidth. What was left around them on a
2-core AMD EPYC (Zen 1, AVX2), 2 threads, was 12-13 ms of a 38 ms step: each of the 49
products cost 40-90 µs of Python and torch around its kernel (the output tensor, numpy views,
the call), and each layer's norms, residual adds, cache write and SDPA attention were a dozen
small torch operations, each tens of µs with the caches emptied by the products around it.
Here :func:`._layer_kernel.decoder_layer` does a whole layer in one call: the same
operations in float32, the products by the same kernel, the cache written in place and
attended by the kernel the bfloat16 cache uses (:mod:`.bf16_attention`, here on float32
values). The logits agree with the modules' to float32 rounding (sums in another order: about
1e-6), and greedy tokens are the same (tested).

It applies to float32 models whose products keep their plain weights for the few-row kernel
(:func:`.few_rows.keeps_plain`), whose fc1 applies the GELU (:func:`.cpu.fuse_gelu`), for up
to :data:`.few_rows.MAX_ROWS` sequences over a :class:`.kvcache.GrowingLayer` cache with room
for the step. Anywhere else :meth:`FusedLayers.run` returns False and the step runs the
modules. ``$GALACTICA_FUSED_LAYERS=torch`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import bf16_attention, few_rows, numba_kernels

#: ``$GALACTICA_FUSED_LAYERS``: "auto" (the kernel where numba works) or "torch"
FUSED_ENV = "GALACTICA_FUSED_LAYERS"


def _build() -> Callable:
    from ._layer_kernel import decoder_layer

    width, heads = 8, 2
    norm = (np.ones(width, np.float32), np.zeros(width, np.float32), np.float32(1e-5))
    square = (np.zeros((width, width), np.float32), np.zeros(width, np.float32))
    cache = np.zeros((1, heads, 4, width // heads), np.float32)
    decoder_layer(
        np.ones((1, width), np.float32),
        norm,
        (np.zeros((3 * width, width), np.float32), np.zeros(3 * width, np.float32)),
        cache,
        cache.copy(),
        0,
        np.float32(1.0),
        bf16_attention._NO_MASK,
        square,
        norm,
        square,
        square,
    )
    return decoder_layer


#: the kernel, or None (``numba_kernels.loader``); asked when a step is built
kernel = numba_kernels.loader(FUSED_ENV, "fused float32 decoder layers", "torch modules", _build)


def _norm(norm: tuple) -> tuple | None:
    """A ``(shape, weight, bias, eps)`` layer norm as the kernel's ``(weight, bias, eps)``."""
    _, weight, bias, eps = norm
    if weight is None or bias is None or weight.dtype != torch.float32:
        return None
    return (weight.detach().numpy(), bias.detach().numpy(), np.float32(eps))


def _product(module: Any) -> few_rows.FewRows | None:
    """The float32 few-row kernel of a packed product, or None (none, or another dtype)."""
    kernel_of = getattr(module, "few_rows", None)
    if kernel_of is None or kernel_of.run is None or kernel_of.dtype != torch.float32:
        return None
    return kernel_of


class FusedLayers:
    """A :class:`.decode_step.DecodeStep`'s layers as :func:`._layer_kernel.decoder_layer`
    calls: :meth:`build` returns None where they do not apply to the model."""

    def __init__(self, run: Callable, layers: list[tuple], heads: int, width: int) -> None:
        self.kernel, self.layers, self.heads, self.width = run, layers, heads, width

    @classmethod
    def build(cls, plan: list, heads: int, width: int) -> FusedLayers | None:
        """From a step's plan (``DecodeStep.plan``), or None: no kernel, or a layer that is
        not float32 with kept plain weights and the GELU inside fc1."""
        run = kernel()
        if run is None:
            return None
        layers = []
        for layer in plan:
            products = [_product(m) for m in (layer.qkv, layer.out_proj, layer.fc1, layer.fc2)]
            norms = [_norm(layer.first_norm), _norm(layer.second_norm)]
            if (
                None in products
                or None in norms
                or layer.activation is not None
                or getattr(layer.fc1, "activation", None) != "gelu"
            ):
                return None
            scale = np.float32(1.0 if layer.scaling is None else layer.scaling)
            layers.append((norms, products, scale))
        return cls(run, layers, heads, width)

    def run(self, x: torch.Tensor, cache: Any, mask: torch.Tensor | None) -> bool:
        """Every layer over ``x`` (``[B, 1, W]`` float32, updated in place) and ``cache``
        (the new token's keys and values written into it); False, with nothing changed, where
        the step is not one this takes (more rows, a cache without room, another layout or
        dtype, gradients wanted)."""
        rows = x.shape[0]
        cached = getattr(cache, "layers", ())
        if (
            rows > few_rows.MAX_ROWS
            or x.dtype != torch.float32
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
        stream = x.detach().numpy().reshape(rows, self.width)
        with numba_kernels.LOCK:
            numba_kernels.match_threads()
            for (norms, products, scale), layer, (keys, values) in zip(
                self.layers, cached, buffers, strict=True
            ):
                qkv, out_proj, fc1, fc2 = (p._arrays() for p in products)
                self.kernel(
                    stream, norms[0], qkv, keys, values, layer.length, scale, attend_to,
                    out_proj, norms[1], fc1, fc2,
                )  # fmt: skip
                layer.wrote(1)
        return True

    def _buffers(self, layer: Any, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A layer cache's float32 key and value buffers as numpy, where it has room for the
        step and the kernel's layout (``[B, H, capacity, D]``, contiguous); else None."""
        buffers = getattr(layer, "buffers", None)
        if buffers is None or layer.length >= layer.capacity:
            return None
        keys, values = buffers
        dim = self.width // self.heads
        if (
            keys.dtype != torch.float32
            or keys.shape[:2] != (rows, self.heads)
            or keys.shape[-1] != dim
            or values.shape != keys.shape
            or values.dtype != keys.dtype
            or not (keys.is_contiguous() and values.is_contiguous())
        ):
            return None
        return keys.numpy(), values.numpy()
