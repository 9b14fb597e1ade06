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
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class DecodeStep:
    """Logits for one new token per row: ``step(tokens [B, 1], positions [B, 1], cache, mask)``
    where ``cache`` is the batch's cache (extended in place) and ``mask`` the 2-D attention
    mask including the new token (None: no padding)."""

    def __init__(self, model: nn.Module, attention: Any) -> None:
        decoder = model.model.decoder
        self.tokens = decoder.embed_tokens
        self.positions = decoder.embed_positions
        self.final_norm = decoder.final_layer_norm
        self.lm_head = model.lm_head
        self.layers = list(decoder.layers)
        self.attention = attention
        first = self.layers[0].self_attn
        self.heads, self.head_dim, self.width = first.num_heads, first.head_dim, first.embed_dim

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
        heads, dim, width = self.heads, self.head_dim, self.width
        attend = None if mask is None else mask.bool()[:, None, None, :]
        x = self.tokens(tokens) + F.embedding(
            positions + self.positions.offset, self.positions.weight
        )
        for index, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            query, key, value = attn.qkv(h).split(width, dim=-1)
            if not attn.scaling_folded:
                query = query * attn.scaling
            shape = (rows, -1, heads, dim)
            query = query.reshape(shape).transpose(1, 2)
            key = key.reshape(shape).transpose(1, 2)
            value = value.reshape(shape).transpose(1, 2)
            key, value = cache.layers[index].update(key, value)
            out, _ = self.attention(attn, query, key, value, attend, dropout=0.0, scaling=1.0)
            x = x + attn.out_proj(out.reshape(rows, 1, -1).contiguous())
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        return self.lm_head(self.final_norm(x))[:, -1]
