"""Prompts through the model: one prompt after a cached prefix, or several cold prompts in
one left-padded forward (their weights read once instead of once per prompt)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from transformers import DynamicCache

from .kvcache import LayerKV, from_cache, to_cache

T = TypeVar("T")

#: the most tokens (prompts x the longest, padding included) one batched prefill computes
PREFILL_TOKENS = 4096


def prefill(
    model: Any,
    device: torch.device,
    ids: list[int],
    cached: LayerKV | DynamicCache | None,
    start: int,
) -> tuple[torch.Tensor, LayerKV]:
    """Run ``ids`` after ``start`` cached tokens: the last position's logits and the cache.
    ``cached``: a cache to extend (a ``DynamicCache``: in place, ``kvcache.prompt_cache``),
    or the tensors of one (copied as the model extends them), or None."""
    if isinstance(cached, DynamicCache):
        cache = cached
    else:
        cache = to_cache(cached) if cached else DynamicCache()
    input_ids = torch.tensor([ids], device=device)
    positions = torch.arange(start, start + len(ids), device=device).unsqueeze(0)
    out = model(
        input_ids=input_ids,
        position_ids=positions,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[0, -1], from_cache(cache)


def prefill_many(
    model: Any, device: torch.device, pad: int, prompts: list[list[int]]
) -> list[tuple[torch.Tensor, LayerKV]]:
    """Several whole prompts in one left-padded forward: each one's last logits and cache
    (views of the batch's, without its padding)."""
    width = max(len(p) for p in prompts)
    ids = [[pad] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    positions = [[0] * (width - len(p)) + list(range(len(p))) for p in prompts]
    cache = DynamicCache()
    out = model(
        input_ids=torch.tensor(ids, device=device),
        attention_mask=torch.tensor(mask, device=device),
        position_ids=torch.tensor(positions, device=device),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    layers = from_cache(cache)
    return [
        (
            out.logits[i, -1],
            [
                (k[i : i + 1, :, width - len(p) :], v[i : i + 1, :, width - len(p) :])
                for k, v in layers
            ],
        )
        for i, p in enumerate(prompts)
    ]


def packed(
    items: list[T], length: Callable[[T], int], budget: int = PREFILL_TOKENS
) -> list[list[T]]:
    """Items in groups whose padded size (count x longest) stays within ``budget``, longest
    first so that similar lengths share a group."""
    groups: list[list[T]] = []
    for item in sorted(items, key=lambda x: -length(x)):
        group = groups[-1] if groups else None
        if group is not None and length(group[0]) * (len(group) + 1) <= budget:
            group.append(item)
        else:
            groups.append([item])
    return groups
