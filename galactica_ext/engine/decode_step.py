"""One decoding step of an OPT model (one new token per row), without transformers' per-call
machinery.

A decoding step is bound by reading the weights, and the products over prepacked weights
(engine/cpu.py) read them at close to the machine's bandwidth; what is left is the work
around them. Through ``model(...)`` each step also builds an attention mask, walks a dozen
decorated ``forward`` methods per layer, fills output dataclasses and checks its arguments.
:class:`DecodeStep` calls the same modules and the same attention function in the same order
on the same tensors, so its logits are identical (tested bit for bit in float32 and
bfloat16), and skips the rest. Measured on galactica-125m bfloat16, 2-core AMD EPYC, one
step in this process: 9.5 -> 7.9 ms at 32 tokens of context (2 threads), 10.1 -> 8.4 ms at
1,000; 12.6 -> 11.8 ms and 15.9 -> 14.8 ms with one thread.

It applies to the pre-norm OPT decoders GALACTICA uses, once :func:`.cpu.fuse_qkv` has made
q/k/v one product (the CPU paths: prepacked or int8 weights), with an attention that takes a
boolean mask (SDPA, or the CPU decoding attention); :meth:`DecodeStep.build` returns None for
anything else, and the engine calls the model as before.

A step of a few sequences goes further where numba works and the products keep plain weights:
each layer is one kernel call (:mod:`.fused_layers`: galactica-125m steps 1.18-1.37x as fast
in float32, 1.12-1.23x in bfloat16, on a 2-core AMD EPYC), its logits equal to the modules' to
rounding rather than bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import bf16_attention
from .fused_layers import FusedLayers


class _Layer(NamedTuple):
    """What a step uses of one decoder layer, looked up once."""

    attn: nn.Module
    first_norm: tuple  # (normalized_shape, weight, bias, eps) of self_attn_layer_norm
    qkv: nn.Module
    out_proj: nn.Module
    second_norm: tuple  # the same of final_layer_norm
    fc1: nn.Module
    activation: nn.Module | None  # None where fuse_gelu moved it into fc1
    fc2: nn.Module
    scaling: float | None  # None where the query scaling is folded into the weights


def _norm(module: nn.Module) -> tuple:
    return (module.normalized_shape, module.weight, module.bias, module.eps)


class DecodeStep:
    """Logits for one new token per row: ``step(tokens [B, 1], positions [B, 1], cache, mask)``
    where ``cache`` is the batch's cache (extended in place) and ``mask`` the 2-D attention
    mask including the new token (None: no padding).

    The layers' modules are called through ``forward`` (``nn.Module.__call__`` checks for
    hooks on every call, and the engine's CPU models have none), their norms as
    ``F.layer_norm`` with the modules' own parameters. Between two weight products the Python
    around them runs with cold caches (each product streams megabytes of weights through
    them), so each line costs several times what it costs in a loop of its own: measured on a
    galactica-125m bfloat16 step, the attention's Python took 0.1-0.15 ms per layer against
    0.02 ms alone. Skipping the per-call machinery made galactica-125m steps 1.00-1.06x as fast
    (median of the per-pair ratios, mostly 1.01-1.05; bfloat16, float32 and int8, 1 and 4
    sequences, 1 and 2 threads, steps in turn on a 2-core AMD EPYC). For the same reason a
    bfloat16 cache is written and attended over by one kernel call per layer
    (:func:`.bf16_attention.write_and_attend`: 1.04-1.07x more). The results are the same
    operations on the same tensors (tested bit for bit)."""

    def __init__(self, model: nn.Module, attention: Any) -> None:
        from .cpu import _decode_attention

        decoder = model.model.decoder
        self.tokens = decoder.embed_tokens
        self.positions = decoder.embed_positions
        self.final_norm = decoder.final_layer_norm
        self.lm_head = model.lm_head
        self.attention = attention
        first = decoder.layers[0].self_attn
        self.heads, self.head_dim, self.width = first.num_heads, first.head_dim, first.embed_dim
        #: the bfloat16 CPU attention: one kernel writes the cache and attends (where it can)
        self.writes_and_attends = attention is _decode_attention
        self.plan = [
            _Layer(
                attn=layer.self_attn,
                first_norm=_norm(layer.self_attn_layer_norm),
                qkv=layer.self_attn.qkv,
                out_proj=layer.self_attn.out_proj,
                second_norm=_norm(layer.final_layer_norm),
                fc1=layer.fc1,
                activation=None
                if isinstance(layer.activation_fn, nn.Identity)
                else layer.activation_fn,
                fc2=layer.fc2,
                scaling=None if layer.self_attn.scaling_folded else layer.self_attn.scaling,
            )
            for layer in decoder.layers
        ]
        #: float32, one or two sequences: each layer one kernel call (None where it does not
        #: apply; :mod:`.fused_layers`)
        self.fused = FusedLayers.build(self.plan, self.heads, self.width)

    @classmethod
    def build(cls, model: nn.Module) -> DecodeStep | None:
        """A step for ``model``, or None where it does not apply (the engine then calls
        ``model(...)``)."""
        try:
            from transformers.models.opt.modeling_opt import ALL_ATTENTION_FUNCTIONS

            from .cpu import DECODE_ATTENTION

            config = model.config
            decoder = model.model.decoder
        except (ImportError, AttributeError):
            return None
        implementation = getattr(config, "_attn_implementation", None)
        if implementation not in ("sdpa", DECODE_ATTENTION):
            return None
        if (
            getattr(config, "model_type", None) != "opt"
            or not config.do_layer_norm_before
            or decoder.project_in is not None
            or decoder.project_out is not None
            or decoder.final_layer_norm is None
            or not all(hasattr(layer.self_attn, "qkv") for layer in decoder.layers)
        ):
            return None
        return cls(model, ALL_ATTENTION_FUNCTIONS.get_interface(implementation, None))

    def __call__(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        rows = tokens.shape[0]
        width, norm, attention = self.width, F.layer_norm, self.attention
        shape = (rows, -1, self.heads, self.head_dim)
        attend = None if mask is None else mask.bool()[:, None, None, :]
        x = self.tokens(tokens) + F.embedding(
            positions + self.positions.offset, self.positions.weight
        )
        if self.fused is not None and self.fused.run(x, cache, attend):
            return self.lm_head(self.final_norm(x))[:, -1]
        fused = self.writes_and_attends
        for layer, cached in zip(self.plan, cache.layers, strict=True):
            qkv = layer.qkv.forward(norm(x, *layer.first_norm))
            out = None
            if fused and layer.scaling is None:
                out = bf16_attention.write_and_attend(qkv, cached, attend, self.heads)
            if out is None:
                query, key, value = qkv.split(width, -1)
                if layer.scaling is not None:
                    query = query * layer.scaling
                query = query.reshape(shape).transpose(1, 2)
                key, value = cached.update(
                    key.reshape(shape).transpose(1, 2), value.reshape(shape).transpose(1, 2)
                )
                out, _ = attention(layer.attn, query, key, value, attend, dropout=0.0, scaling=1.0)
            x = x + layer.out_proj.forward(out.reshape(rows, 1, -1).contiguous())
            hidden = layer.fc1.forward(norm(x, *layer.second_norm))
            if layer.activation is not None:
                hidden = layer.activation(hidden)
            x = x + layer.fc2.forward(hidden)
        return self.lm_head(self.final_norm(x))[:, -1]
