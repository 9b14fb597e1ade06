"""Key/value caches: a left-padded batch of running sequences, and reusable prefixes.

transformers' ``DynamicCache`` holds the tensors while the model runs; these classes decide
which rows it holds (continuous batching) and which finished prompts are kept for reuse
(an editor sends prompts that extend the previous one).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

#: per layer: (keys, values), each ``[batch, heads, tokens, head_dim]``
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


def to_cache(layers: LayerKV) -> DynamicCache:
    """Wrap tensors in a ``DynamicCache`` the model can extend, without copying them."""
    cache = DynamicCache(ddp_cache_data=[(k[..., :0, :], v[..., :0, :]) for k, v in layers])
    for layer, (k, v) in zip(cache.layers, layers, strict=True):
        layer.keys, layer.values = k, v
    return cache


#: tokens of room a growing batch cache keeps ahead (at least; a quarter more when it grows)
HEADROOM = 64


class GrowingLayer(DynamicLayer):
    """A layer's cache preallocated for ``capacity`` tokens and written in place.

    ``DynamicLayer`` concatenates, copying the whole cache at every step; here a step writes
    its token into the buffer and the model reads a view. Searches (beams, contrastive
    candidates) keep one row per hypothesis, all sharing the prompt's tokens: reordering the
    rows moves only the tokens after the prompt (``reorder``).
    """

    def __init__(
        self,
        keys: torch.Tensor | None,
        values: torch.Tensor | None,
        capacity: int,
        grows: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self.grows = grows  # reallocate (with headroom) when full, else refuse
        self.limit = limit  # never more tokens than this (None: no limit)
        self.length = 0
        self._first_room = capacity  # what the first keys get, where none are given yet
        self._bits: tuple[torch.Tensor, np.ndarray, np.ndarray] | None = None
        if keys is not None and values is not None:
            self._allocate(keys, values, capacity)

    @classmethod
    def adopt(cls, keys: torch.Tensor, values: torch.Tensor, length: int) -> GrowingLayer:
        """A growing layer over buffers it takes as they are (``[1, H, capacity, D]``, no
        copy), whose first ``length`` tokens are its cache: the rest is room to write."""
        layer = cls(None, None, keys.shape[-2], grows=True)
        layer.buffers = (keys, values)
        layer.length = length
        layer.device = keys.device
        layer.is_initialized = True
        layer._view()
        return layer

    def _allocate(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        """Buffers for ``capacity`` tokens (at least ``keys``'), holding ``keys``/``values``."""
        rows, heads, length, dim = keys.shape
        capacity = max(capacity, length)
        self.buffers = (
            keys.new_empty((rows, heads, capacity, dim)),
            values.new_empty((rows, heads, capacity, dim)),
        )
        self.buffers[0][:, :, :length] = keys
        self.buffers[1][:, :, :length] = values
        self.length = length
        self.device = keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        self.keys = self.buffers[0][:, :, : self.length]
        self.values = self.buffers[1][:, :, : self.length]

    @property
    def capacity(self) -> int:
        """Tokens the buffers hold before they must grow."""
        return self.buffers[0].shape[-2]

    def bits(self) -> tuple[np.ndarray, np.ndarray]:
        """The key and value buffers (bfloat16) as numpy arrays of their bits, for the numba
        kernels that write and read them in place (:mod:`.bf16_attention`); made once per
        buffer."""
        if self._bits is None or self._bits[0] is not self.buffers[0]:
            keys, values = (b.view(torch.uint16).numpy() for b in self.buffers)
            self._bits = (self.buffers[0], keys, values)
        return self._bits[1], self._bits[2]

    def wrote(self, tokens: int) -> None:
        """``tokens`` more tokens were written into the buffers in place (by a kernel)."""
        self.length += tokens
        self._view()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:  # a prompt's first chunk: room for the whole prompt
            self._allocate(key_states[..., :0, :], value_states[..., :0, :], self._first_room)
        end = self.length + key_states.shape[-2]
        if end > self.buffers[0].shape[-2]:
            if not self.grows or (self.limit is not None and end > self.limit):
                held = self.limit if self.grows else self.buffers[0].shape[-2]
                raise RuntimeError(f"the cache holds {held} tokens, {end} asked")
            room = end + max(HEADROOM, end // 4)
            self._grow(room if self.limit is None else min(room, self.limit))
        self.buffers[0][:, :, self.length : end] = key_states
        self.buffers[1][:, :, self.length : end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def _grow(self, capacity: int) -> None:
        grown = []
        for buffer in self.buffers:
            bigger = buffer.new_empty((*buffer.shape[:2], capacity, buffer.shape[-1]))
            bigger[:, :, : self.length] = buffer[:, :, : self.length]
            grown.append(bigger)
        self.buffers = (grown[0], grown[1])
        self._view()

    def reorder(self, rows: torch.Tensor, start: int) -> None:
        """Row ``i`` takes the tokens from ``start`` on of row ``rows[i]`` (the tokens before
        ``start`` are the same in every row)."""
        for buffer in self.buffers:
            segment = buffer[:, :, start : self.length]
            segment.copy_(segment.index_select(0, rows))


def growing_cache(layers: LayerKV, rows: int, limit: int) -> DynamicCache:
    """A cache of ``rows`` copies of one sequence's ``layers`` (``[1, H, L, D]`` each),
    written in place, growing as needed up to ``limit`` tokens (room is taken a little at a
    time: a search usually ends long before its ``max_tokens``)."""
    length = kv_length(layers)
    room = min(limit, length + HEADROOM)
    return _in_place(
        [
            GrowingLayer(
                k.expand(rows, -1, -1, -1),
                v.expand(rows, -1, -1, -1),
                room,
                grows=True,
                limit=limit,
            )
            for k, v in layers
        ]
    )


def _in_place(layers: list[GrowingLayer]) -> DynamicCache:
    """A ``DynamicCache`` the model extends through ``layers`` (each holding its tokens)."""
    cache = to_cache([(layer.keys[..., :0, :], layer.values[..., :0, :]) for layer in layers])
    cache.layers = layers
    return cache


def prompt_cache(cached: LayerKV | None, capacity: int, taken: bool = False) -> DynamicCache:
    """A one-row cache for a prompt, written in place: a copy of ``cached`` (a reused prefix;
    None: a cold prompt) with room for ``capacity`` tokens in all (the prompt and the first of
    its completion). The prompt's chunks write into it rather than each copying the whole cache,
    and an empty batch takes it as it is (``BatchKV.add``): at galactica-1.3b a 1,000-token
    prompt's cache is 200 MB, and the chunks' copies, the batch's copy and the prefix cache's
    copy were each held beside it. ``taken``: ``cached`` was taken out of the prefix cache
    (:meth:`PrefixCache.longest`), so nothing else reads its buffers: they are written on
    in place where they are whole buffers (:func:`buffers_of`), not copied."""
    if cached:
        whole = [buffers_of(k, v) for k, v in cached] if taken else []
        if whole and all(b is not None for b in whole):
            length = kv_length(cached)
            return _in_place([GrowingLayer.adopt(*b, length) for b in whole if b is not None])
        return _in_place([GrowingLayer(k, v, capacity, grows=True) for k, v in cached])
    cache = DynamicCache()  # its layers are made at the first chunk, one per model layer
    cache.layer_class_to_replicate = lambda: GrowingLayer(None, None, capacity, grows=True)
    return cache


def buffers_of(
    keys: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The buffers ``keys``/``values`` are the first tokens of (one-row ``[1, H, capacity,
    D]`` buffers filling their storage, as a ``GrowingLayer``'s handed to the prefix cache),
    or None where they are not such views. Read from the storage: under ``inference_mode`` a
    view does not record its base."""
    whole = []
    for view in (keys, values):
        _, heads, length, dim = view.shape
        stride = view.stride()
        capacity = stride[1] // dim if dim else 0
        if (
            view.shape[0] != 1
            or view.storage_offset() != 0
            or stride[1:] != (capacity * dim, dim, 1)
            or capacity < length
            or view.untyped_storage().nbytes() != heads * capacity * dim * view.element_size()
        ):
            return None
        whole.append(
            view.as_strided((1, heads, capacity, dim), (heads * capacity * dim, *stride[1:]))
        )
    return whole[0], whole[1]


def room_for(length: int, wanted: int) -> int:
    """The tokens a cache of ``length`` tokens is given room for when ``wanted`` more may
    follow: ``wanted`` but at most :data:`HEADROOM` or a quarter more (it grows by as much
    again when full; a completion often ends long before its ``max_tokens``)."""
    return length + min(wanted, max(HEADROOM, length // 4))


def reorder(cache: DynamicCache, rows: list[int], start: int) -> None:
    """Reorder the rows of a ``growing_cache`` from token ``start`` on."""
    index = torch.tensor(rows, device=cache.layers[0].keys.device)
    for layer in cache.layers:
        layer.reorder(index, start)


def from_cache(cache: DynamicCache) -> LayerKV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def kv_length(layers: LayerKV) -> int:
    return layers[0][0].shape[-2] if layers else 0


def kv_bytes(layers: LayerKV) -> int:
    return sum(k.numel() * k.element_size() * 2 for k, _ in layers)


def held_bytes(layers: LayerKV) -> int:
    """The bytes of the buffers ``layers`` keep alive: more than :func:`kv_bytes` where they
    are views of buffers with room to grow (a batch's, handed to the prefix cache)."""
    return sum(k.untyped_storage().nbytes() + v.untyped_storage().nbytes() for k, v in layers)


def _left_pad(t: torch.Tensor, extra: int) -> torch.Tensor:
    if extra == 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], extra, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class BatchKV:
    """The running sequences' caches, left-padded to one length, with an attention mask."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)

    @property
    def layers(self) -> LayerKV:
        return from_cache(self.cache) if self.cache is not None else []

    def _set(self, layers: LayerKV) -> None:
        """Hold ``layers`` in a cache written in place, with room to grow (a decoding step
        then writes one token per row instead of copying the whole batch's cache)."""
        if not layers:
            self.cache = None
            return
        length = kv_length(layers)
        capacity = length + max(HEADROOM, length // 4)
        self.cache = _in_place([GrowingLayer(k, v, capacity, grows=True) for k, v in layers])

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    @property
    def padded(self) -> bool:
        return bool(self.size) and not bool(self.mask.all())

    def add(self, seq: LayerKV | DynamicCache) -> None:
        """Append one sequence (``[1, H, L, D]`` per layer) as the last row. A ``prompt_cache``
        becomes an empty batch's cache as it is (its buffers are the batch's from then on)."""
        if isinstance(seq, DynamicCache):
            if self.cache is None and all(isinstance(x, GrowingLayer) for x in seq.layers):
                self.cache = seq
                self.mask = torch.ones(
                    (1, seq.get_seq_length()), dtype=torch.long, device=seq.layers[0].device
                )
                return
            seq = from_cache(seq)
        length = kv_length(seq)
        if self.cache is None:
            self._set(list(seq))
            self.mask = torch.ones((1, length), dtype=torch.long, device=seq[0][0].device)
            return
        width = self.mask.shape[1]
        grow = max(0, length - width)
        self._set(
            [
                (
                    torch.cat([_left_pad(k, grow), _left_pad(sk, width + grow - length)]),
                    torch.cat([_left_pad(v, grow), _left_pad(sv, width + grow - length)]),
                )
                for (k, v), (sk, sv) in zip(self.layers, seq, strict=True)
            ]
        )
        old = torch.cat([self.mask.new_zeros((self.size, grow)), self.mask], dim=1)
        row = self.mask.new_zeros((1, width + grow))
        row[0, width + grow - length :] = 1
        self.mask = torch.cat([old, row])

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, and drop columns that are padding in every row left."""
        if not rows:
            self._set([])
            self.mask = self.mask[:0, :0]
            return
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        first = int(mask.any(dim=0).long().argmax())
        self.mask = mask[:, first:]
        self._set(
            [
                (k.index_select(0, index)[:, :, first:], v.index_select(0, index)[:, :, first:])
                for k, v in self.layers
            ]
        )

    def row(self, i: int, length: int | None = None) -> LayerKV:
        """The unpadded cache of row ``i`` (its first ``length`` tokens if given)."""
        start = self.mask.shape[1] - int(self.mask[i].sum())
        end = self.mask.shape[1] if length is None else start + length
        return [(k[i : i + 1, :, start:end], v[i : i + 1, :, start:end]) for k, v in self.layers]

    def grew(self) -> None:
        """Record the step that fed one token per row (the model extended ``cache`` itself)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.size, 1))], dim=1)


@dataclass
class PrefixHit:
    length: int
    layers: LayerKV
    #: the entry was taken out of the cache (``longest(take=True)``): its buffers are the
    #: caller's to write on; it goes back when the caller puts the longer sequence
    taken: bool = False


#: a finished sequence's buffers go to the prefix cache as they are (no copy) where their unused
#: room is at most this share of what they hold (a prompt's own cache has room for its
#: completion, at most a quarter more: ``room_for``)
KEPT_ROOM = 1 / 4


class PrefixCache:
    """The caches of recently finished sequences, reused for prompts that share a prefix."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, ...], LayerKV] = OrderedDict()
        self.hits = 0
        self.reused_tokens = 0

    @property
    def bytes(self) -> int:
        """Bytes of the caches held now (at most ``max_bytes``)."""
        # a snapshot: /health reads this from another thread while the engine puts entries
        return sum(held_bytes(layers) for layers in list(self._entries.values()))

    @property
    def entries(self) -> int:
        """How many prompts' caches are held (one that a newer prompt extends is dropped)."""
        return len(self._entries)

    def put(self, ids: list[int], layers: LayerKV, own: bool = False) -> None:
        """Keep ``layers``, the cache of ``ids``: unless an entry extends it already; in place
        of the entries it makes useless or supersedes (:func:`supersedes`). ``own``: nothing
        else will write or read the buffers they are views of (a finished batch's last row):
        kept as they are where their room to grow is at most :data:`KEPT_ROOM` of them, not
        copied (the copy was made while the batch still held them)."""
        key, size, held = tuple(ids[: kv_length(layers)]), kv_bytes(layers), held_bytes(layers)
        own = own and held <= size * (1 + KEPT_ROOM)
        held = held if own else size
        if not key or held > self.max_bytes:
            return
        for old in list(self._entries):
            common = _common_prefix(old, key)
            if common == len(key) < len(old):  # a prefix of an entry: nothing to add
                return
            if supersedes(common, len(old)):
                del self._entries[old]
        # the least recently used go before the copy is made: the budget is never exceeded,
        # not even for a moment (at galactica-1.3b a 1,000-token entry is 200 MB)
        self.make_room(held)
        self._entries[key] = list(layers) if own else [(k.clone(), v.clone()) for k, v in layers]

    def make_room(self, nbytes: int) -> None:
        """Drop the least recently used entries until ``nbytes`` more fit: a cold prompt's
        cache, made room for before it is computed rather than when it is put (at galactica-1.3b
        a 1,000-token document is 200 MB, which was held beside a full cache until then)."""
        if nbytes > self.max_bytes:  # it will not be kept: nothing to make room for
            return
        while self._entries and self.bytes + nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    def longest(
        self,
        ids: list[int],
        candidates: list[tuple[list[int], LayerKV]] = (),
        min_length: int = 1,
        take: bool = False,
    ) -> PrefixHit | None:
        """The longest cached prefix of ``ids`` (of at least ``min_length`` tokens), leaving
        at least one token to compute. ``take``: an entry that ``ids`` supersedes (the same
        document a little further on, :func:`supersedes`) leaves the cache with the hit, its
        buffers the caller's to extend in place (the caller puts the longer sequence back,
        which would have dropped the entry anyway); a copy is saved at every editor pause."""
        best: PrefixHit | None = None
        best_key: tuple[int, ...] | None = None
        limit = len(ids) - 1
        pool = [(k, v) for k, v in self._entries.items()] + [(tuple(k), v) for k, v in candidates]
        for key, layers in pool:
            n = min(_common_prefix(key, ids), limit, kv_length(layers))
            if n >= max(1, min_length) and (best is None or n > best.length):
                best, best_key = PrefixHit(n, layers), key
        if best is None:
            return None
        if best_key in self._entries and self._entries[best_key] is best.layers:
            if take and supersedes(best.length, len(best_key)):
                del self._entries[best_key]
                best.taken = True
            else:  # mark as recently used
                self._entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best.length
        best.layers = [(k[:, :, : best.length], v[:, :, : best.length]) for k, v in best.layers]
        return best

    def clear(self) -> None:
        self._entries.clear()


#: a newer prompt that shares all of an entry's tokens but at most this share of them (at its
#: end) is the same document a little further on (an editor's next prompt: a few characters
#: more, the last token tokenized anew, the earlier completion not taken) and replaces it
SUPERSEDED_TAIL = 1 / 8


def supersedes(common: int, old_length: int) -> bool:
    """Whether a prompt sharing its first ``common`` tokens with an entry of ``old_length``
    tokens replaces that entry: the entry's own tokens past the shared ones (what only it
    could still give) are at most :data:`SUPERSEDED_TAIL` of it. Without this, each pause of
    an editor kept another copy of the same document (four of one document filled the budget
    on the benchmark's editor trace)."""
    return old_length - common <= old_length * SUPERSEDED_TAIL


def _common_prefix(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
