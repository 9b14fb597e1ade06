"""Key/value caches: the left-padded running batch and the prefix cache, alone and on the model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import DynamicCache

from galactica_ext.engine.kvcache import (
    BatchKV,
    PrefixCache,
    buffers_of,
    from_cache,
    growing_cache,
    held_bytes,
    kv_bytes,
    kv_length,
    prompt_cache,
    reorder,
    room_for,
    to_cache,
)

LAYERS, HEADS, DIM = 2, 3, 4


def seq_kv(length: int, fill: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One sequence's cache, ``[1, H, L, D]`` per layer: position p of layer l is fill+l+p/100."""
    out = []
    for layer in range(LAYERS):
        pos = torch.arange(length, dtype=torch.float32).view(1, 1, length, 1) / 100
        k = (fill + layer + pos).expand(1, HEADS, length, DIM).clone()
        out.append((k, -k))
    return out


def same(
    a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]
) -> bool:
    return len(a) == len(b) and all(
        torch.equal(ka, kb) and torch.equal(va, vb) for (ka, va), (kb, vb) in zip(a, b, strict=True)
    )


# ---- wrapping transformers' cache -----------------------------------------------------------


def test_to_cache_wraps_without_copying() -> None:
    layers = seq_kv(5, 1.0)
    cache = to_cache(layers)
    assert isinstance(cache, DynamicCache)
    assert cache.get_seq_length() == 5
    back = from_cache(cache)
    assert all(k is ka and v is va for (k, v), (ka, va) in zip(back, layers, strict=True))
    assert kv_length(layers) == 5 and kv_length([]) == 0
    assert kv_bytes(layers) == LAYERS * 2 * HEADS * 5 * DIM * 4


# ---- the running batch ----------------------------------------------------------------------


def test_batch_left_pads_rows_of_different_lengths() -> None:
    batch = BatchKV()
    assert batch.size == 0 and not batch.padded and batch.layers == []
    a, b, c = seq_kv(3, 10.0), seq_kv(5, 20.0), seq_kv(2, 30.0)
    batch.add(a)
    assert not batch.padded
    batch.add(b)  # longer: the existing row is padded on the left
    batch.add(c)  # shorter: the new row is padded
    assert batch.size == 3 and batch.padded
    assert batch.mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert batch.layers[0][0].shape == (3, HEADS, 5, DIM)
    assert same(batch.row(0), a) and same(batch.row(1), b) and same(batch.row(2), c)
    assert same(batch.row(1, 2), [(k[..., :2, :], v[..., :2, :]) for k, v in b])
    assert torch.count_nonzero(batch.layers[0][0][2, :, :3]) == 0  # padding is zeros


def test_batch_grows_and_keeps_rows() -> None:
    batch = BatchKV()
    a, b, c = seq_kv(3, 10.0), seq_kv(6, 20.0), seq_kv(2, 30.0)
    for seq in (a, b, c):
        batch.add(seq)
    # one decoding step: the model appended a column to every row of the cache itself
    cache = batch.cache
    assert cache is not None
    for layer in cache.layers:
        layer.keys = torch.cat([layer.keys, torch.full_like(layer.keys[..., :1, :], 7.0)], dim=-2)
        layer.values = torch.cat(
            [layer.values, torch.full_like(layer.values[..., :1, :], 7.0)], dim=-2
        )
    batch.grew()
    assert batch.mask.shape == (3, 7) and batch.mask[:, -1].tolist() == [1, 1, 1]
    assert kv_length(batch.row(0)) == 4 and kv_length(batch.row(2)) == 3
    batch.keep([0, 2])  # the long row finished: the columns only it used go away
    assert batch.mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    assert same(batch.row(0, 3), a) and same(batch.row(1, 2), c)
    assert batch.row(1)[0][0][0, 0, -1, 0].item() == 7.0
    batch.keep([1])
    assert not batch.padded and batch.size == 1
    batch.keep([])
    assert batch.size == 0 and batch.cache is None


# ---- the prefix cache -----------------------------------------------------------------------


def test_prefix_cache_finds_the_longest_prefix_and_leaves_a_token() -> None:
    cache = PrefixCache(max_bytes=10**9)
    cache.put([1, 2, 3, 4], seq_kv(4, 1.0))
    cache.put([7, 8], seq_kv(2, 2.0))
    assert cache.longest([9, 9]) is None
    assert (cache.hits, cache.reused_tokens) == (0, 0)
    hit = cache.longest([1, 2, 3, 4, 5, 6])
    assert hit is not None and hit.length == 4
    assert same(hit.layers, seq_kv(4, 1.0))
    exact = cache.longest([1, 2, 3, 4])  # the last token must still be computed for its logits
    assert exact is not None and exact.length == 3
    assert kv_length(exact.layers) == 3
    assert (cache.hits, cache.reused_tokens) == (2, 7)


def test_prefix_cache_keeps_only_the_longest_of_a_chain() -> None:
    cache = PrefixCache(max_bytes=10**9)
    cache.put([1, 2], seq_kv(2, 1.0))
    cache.put([1, 2, 3], seq_kv(3, 1.0))
    assert len(cache._entries) == 1
    cache.put([1], seq_kv(1, 1.0))  # a prefix of what is kept: nothing to add
    assert list(cache._entries) == [(1, 2, 3)]
    cache.put([], [])
    assert list(cache._entries) == [(1, 2, 3)]


def test_a_newer_version_of_a_document_replaces_the_older() -> None:
    """An editor's next prompt: the same document a little further on, whose last token was
    tokenized anew and whose earlier completion was not taken. One copy is kept, not one per
    pause; a document that shares only its beginning stays."""
    cache = PrefixCache(max_bytes=10**9)
    document = list(range(100, 180))  # 80 tokens
    cache.put([*document, 7, 7], seq_kv(82, 1.0))  # the prompt and two generated tokens
    newer = [*document[:-1], 5, 6, 9]  # its last token tokenized anew, two more
    cache.put(newer, seq_kv(82, 2.0))
    assert list(cache._entries) == [tuple(newer)]
    hit = cache.longest([*newer, 4])
    assert hit is not None and hit.length == 82 and same(hit.layers, seq_kv(82, 2.0))
    # another cell of the same notebook: its first 40 tokens in common, the rest its own
    other = document[:40] + list(range(300, 340))
    cache.put(other, seq_kv(80, 3.0))
    assert len(cache._entries) == 2
    # what is left of an entry after the shared part decides (an eighth), not the new length
    cache.put(other[:69] + [1] * 40, seq_kv(109, 4.0))  # 11 of the 80 its own: kept
    assert len(cache._entries) == 3
    # ``other`` keeps 9 of its 80 tokens to itself: replaced; the one before keeps 40 of 109
    cache.put(other[:71] + [2] * 40, seq_kv(111, 5.0))
    assert len(cache._entries) == 3 and tuple(other) not in cache._entries


def test_prefix_cache_stored_copies_do_not_alias() -> None:
    cache = PrefixCache(max_bytes=10**9)
    layers = seq_kv(3, 1.0)
    cache.put([1, 2, 3], layers)
    layers[0][0].zero_()
    hit = cache.longest([1, 2, 3, 4])
    assert hit is not None and hit.layers[0][0].abs().sum() > 0


def test_prefix_cache_evicts_the_least_recently_used() -> None:
    one = kv_bytes(seq_kv(4, 0.0))
    cache = PrefixCache(max_bytes=2 * one)
    cache.put([1, 1, 1, 1], seq_kv(4, 1.0))
    cache.put([2, 2, 2, 2], seq_kv(4, 2.0))
    assert cache.longest([1, 1, 1, 1, 9]) is not None  # touches the first entry
    cache.put([3, 3, 3, 3], seq_kv(4, 3.0))
    assert cache.bytes <= 2 * one
    assert cache.longest([2, 2, 2, 2, 9]) is None
    assert cache.longest([1, 1, 1, 1, 9]) is not None
    cache.clear()
    assert cache.bytes == 0


def test_prefix_cache_of_size_zero_keeps_nothing_but_sees_running_rows() -> None:
    cache = PrefixCache(max_bytes=0)
    cache.put([1, 2, 3], seq_kv(3, 1.0))
    assert cache.bytes == 0 and cache.longest([1, 2, 3, 4]) is None
    hit = cache.longest([1, 2, 5], [([1, 2, 3], seq_kv(3, 1.0))])
    assert hit is not None and hit.length == 2


# ---- on the real model ----------------------------------------------------------------------


def _logits(
    model: Any, ids: list[int], cache: DynamicCache | None, start: int, mask=None
) -> torch.Tensor:
    positions = torch.arange(start, start + len(ids)).unsqueeze(0)
    out = model(
        input_ids=torch.tensor([ids]),
        position_ids=positions,
        cache=cache,
        use_cache=True,
        attention_mask=mask,
    )
    return out.logits[0, -1]


def test_a_prefix_from_the_cache_gives_the_same_logits(tiny_model: Any) -> None:
    model = tiny_model.loaded.model
    ids = tiny_model.engine.encode("Proteins fold into three dimensional structures because of")
    with torch.inference_mode():
        full = _logits(model, ids, DynamicCache(), 0)
        first = DynamicCache()
        _logits(model, ids[:6], first, 0)
        cache = PrefixCache(max_bytes=10**9)
        cache.put(ids[:6], from_cache(first))
        hit = cache.longest(ids)
        assert hit is not None and hit.length == 6
        resumed = _logits(model, ids[6:], to_cache(hit.layers), 6)
    torch.testing.assert_close(resumed, full, atol=1e-4, rtol=1e-4)


def test_a_padded_batch_step_matches_each_sequence_alone(tiny_model: Any) -> None:
    """Left padding, the mask and absolute positions: one step for rows of different lengths
    gives each row the logits it gets alone."""
    model = tiny_model.loaded.model
    prompts = ["Hello", "The Transformer architecture is", "x"]
    seqs = [tiny_model.engine.encode(p) for p in prompts]
    nxt = [11, 500, 2000]
    with torch.inference_mode():
        alone = []
        batch = BatchKV()
        for ids, token in zip(seqs, nxt, strict=True):
            cache = DynamicCache()
            _logits(model, ids, cache, 0)
            batch.add(from_cache(cache))
            alone.append(_logits(model, [token], cache, len(ids)))
        mask = torch.cat([batch.mask, batch.mask.new_ones((batch.size, 1))], dim=1)
        out = model(
            input_ids=torch.tensor([[t] for t in nxt]),
            position_ids=torch.tensor([[len(ids)] for ids in seqs]),
            attention_mask=mask,
            cache=batch.cache,
            use_cache=True,
        )
        batch.grew()
    for i, expected in enumerate(alone):
        torch.testing.assert_close(out.logits[i, -1], expected, atol=1e-4, rtol=1e-4)
    assert kv_length(batch.row(1)) == len(seqs[1]) + 1


def test_kv_bytes_per_token_matches_the_model(tiny_model: Any) -> None:
    model = tiny_model.loaded.model
    with torch.inference_mode():
        cache = DynamicCache()
        _logits(model, [5, 6, 7], cache, 0)
    assert kv_bytes(from_cache(cache)) == 3 * tiny_model.engine._kv_bytes_per_token()


def test_a_growing_cache_writes_in_place_and_reorders_after_the_prompt() -> None:
    prompt = seq_kv(5, 0.0)
    cache = growing_cache(prompt, rows=3, limit=8)
    layer = cache.layers[0]
    buffer = layer.buffers[0]
    assert layer.keys.shape == (3, HEADS, 5, DIM) and cache.get_seq_length() == 5
    assert torch.equal(layer.keys[2], prompt[0][0][0])
    step = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, HEADS, 1, DIM)
    for index, layer in enumerate(cache.layers):
        keys, _values = layer.update(step + 10 * index, -step)
        assert keys.shape == (3, HEADS, 6, DIM)
    assert cache.layers[0].buffers[0] is buffer  # no new tensor: written in place
    reorder(cache, [2, 2, 0], start=5)
    keys = cache.layers[0].keys
    assert keys[:, 0, 5, 0].tolist() == [2.0, 2.0, 0.0]
    assert torch.equal(keys[:, :, :5], prompt[0][0].expand(3, -1, -1, -1))  # the prompt is kept
    for layer in cache.layers:
        layer.update(step, step)
        layer.update(step, step)
    with pytest.raises(RuntimeError, match="holds 8 tokens"):
        cache.layers[0].update(step, step)


def test_a_growing_cache_takes_room_as_it_needs_it() -> None:
    prompt = seq_kv(5, 0.0)
    cache = growing_cache(prompt, rows=2, limit=1000)
    layer = cache.layers[0]
    first = layer.buffers[0]
    assert first.shape[-2] < 1000  # not all of it at once
    token = torch.ones(2, HEADS, 1, DIM)
    for i in range(first.shape[-2] - 5 + 1):
        layer.update(token * i, token * i)
    assert layer.buffers[0] is not first and layer.buffers[0].shape[-2] <= 1000
    assert torch.equal(layer.keys[:, :, :5], prompt[0][0].expand(2, -1, -1, -1))
    assert layer.keys[0, 0, 5:, 0].tolist() == [float(i) for i in range(layer.length - 5)]


# ---- a prompt's own cache: written in place, handed on without copies ----------------------


def test_a_prompt_cache_is_written_in_place_and_becomes_an_empty_batch() -> None:
    """Chunks of a cold prompt write into buffers made at the first chunk with room for all of
    it; an empty batch takes those buffers as they are, a second row is copied in beside."""
    cache = prompt_cache(None, capacity=10)
    for layer in range(LAYERS):  # a first chunk of 4 tokens, as the model writes it
        cache.update(*seq_kv(4, float(layer))[layer], layer)
    buffer = cache.layers[0].buffers[0]
    assert buffer.shape[-2] == 10 and cache.get_seq_length() == 4
    for layer in range(LAYERS):  # the next chunk: no new buffer
        cache.update(*[t[..., :3, :] for t in seq_kv(3, 9.0)[layer]], layer)
    assert cache.layers[0].buffers[0] is buffer and cache.get_seq_length() == 7
    batch = BatchKV()
    batch.add(cache)
    assert batch.cache is cache and batch.mask.tolist() == [[1] * 7]
    batch.add(seq_kv(5, 2.0))  # a second sequence: both copied into a batch of two rows
    assert batch.size == 2 and batch.cache.layers[0].buffers[0] is not buffer
    assert torch.equal(batch.row(0)[0][0], cache.layers[0].keys)
    assert same(batch.row(1), seq_kv(5, 2.0))


def test_a_prompt_cache_after_a_prefix_copies_it() -> None:
    prefix = seq_kv(6, 1.0)
    cache = prompt_cache(prefix, capacity=room_for(6, 2))
    assert cache.layers[0].capacity == 8
    assert same(from_cache(cache), prefix)
    prefix[0][0].zero_()  # the prefix cache's entry is not the prompt's buffer
    assert cache.layers[0].keys.abs().sum() > 0


def test_room_for_a_completion() -> None:
    assert room_for(1000, 16) == 1016  # what the completion may need, no more
    assert room_for(1000, 2000) == 1250  # a quarter more at most (it grows later)
    assert room_for(10, 2000) == 10 + 64


def test_a_finished_rows_buffers_are_kept_uncopied_where_little_room_is_unused() -> None:
    cache = PrefixCache(max_bytes=10**9)
    tight = prompt_cache(seq_kv(9, 1.0), capacity=10)
    rows = from_cache(tight)
    cache.put(list(range(9)), rows, own=True)
    kept = cache._entries[tuple(range(9))]
    assert kept[0][0].data_ptr() == tight.layers[0].buffers[0].data_ptr()  # not copied
    assert cache.bytes == held_bytes(rows) > kv_bytes(rows)  # the room is counted
    roomy = prompt_cache(seq_kv(4, 2.0), capacity=10)  # 6 of 10 tokens unused: copied
    cache.put([7] * 4, from_cache(roomy), own=True)
    copy = cache._entries[(7,) * 4]
    assert copy[0][0].data_ptr() != roomy.layers[0].buffers[0].data_ptr()
    assert held_bytes(copy) == kv_bytes(copy)
    shared = prompt_cache(seq_kv(5, 3.0), capacity=5)  # not own: always copied
    cache.put([8] * 5, from_cache(shared))
    assert cache._entries[(8,) * 5][0][0].data_ptr() != shared.layers[0].buffers[0].data_ptr()


# ---- an editor's next prompt takes the entry it supersedes -------------------------------


def test_a_prompt_that_supersedes_an_entry_takes_it_and_writes_on_its_buffers() -> None:
    """The document a little further on takes the entry out of the cache (the request puts
    its longer cache back) and extends the entry's own buffers: no copy of the prefix."""
    cache = PrefixCache(max_bytes=10**9)
    tight = prompt_cache(seq_kv(9, 1.0), capacity=10)
    cache.put(list(range(9)), from_cache(tight), own=True)
    buffer = tight.layers[0].buffers[0]
    # the last token tokenized anew: 8 tokens shared, then 3 new ones
    hit = cache.longest([*range(8), 50, 51, 52], take=True)
    assert hit is not None and hit.length == 8 and hit.taken
    assert cache.entries == 0
    extended = prompt_cache(hit.layers, capacity=room_for(11, 0), taken=True)
    assert extended.layers[0].buffers[0].data_ptr() == buffer.data_ptr()
    assert extended.layers[0].capacity == 10 and extended.get_seq_length() == 8
    assert same(from_cache(extended), [(k[..., :8, :], v[..., :8, :]) for k, v in seq_kv(9, 1.0)])
    for layer in range(LAYERS):  # the new tokens: 2 fit in the buffer's room, then it grows
        extended.update(*[t[..., :3, :] for t in seq_kv(3, 7.0)[layer]], layer)
    assert extended.get_seq_length() == 11
    assert extended.layers[0].buffers[0].data_ptr() != buffer.data_ptr()
    assert torch.equal(extended.layers[0].keys[..., 8:, :], seq_kv(3, 7.0)[0][0])


def test_an_entry_is_only_taken_where_the_prompt_supersedes_it() -> None:
    cache = PrefixCache(max_bytes=10**9)
    cache.put(list(range(40)), seq_kv(40, 1.0))  # a copy: no buffers to adopt
    # a prompt that leaves half of the entry behind (an edit in the middle): shared
    hit = cache.longest(list(range(20)) + [99] * 5, take=True)
    assert hit is not None and hit.length == 20 and not hit.taken and cache.entries == 1
    # without take (a search's prompt): shared
    hit = cache.longest([*range(40), 99], take=False)
    assert hit is not None and not hit.taken and cache.entries == 1
    # superseded: taken, its buffers (a copy without room) written on until they grow
    hit = cache.longest([*range(40), 99], take=True)
    assert hit is not None and hit.taken and cache.entries == 0
    adopted = prompt_cache(hit.layers, capacity=45, taken=True)
    assert adopted.layers[0].buffers[0].data_ptr() == hit.layers[0][0].data_ptr()
    assert same(from_cache(adopted), seq_kv(40, 1.0))
    # a view that is not a whole one-row buffer's start is copied
    rows = [(k.expand(2, -1, -1, -1).contiguous(), v) for k, v in seq_kv(40, 1.0)]
    second = [(k[1:2], v) for k, v in rows]
    assert buffers_of(*second[0]) is None
    copied = prompt_cache(second, capacity=45, taken=True)
    assert copied.layers[0].buffers[0].data_ptr() != second[0][0].data_ptr()
    assert same(from_cache(copied), seq_kv(40, 1.0))


def test_room_is_made_for_a_cold_prompt_before_it_is_computed() -> None:
    size = kv_bytes(seq_kv(10, 0.0))
    cache = PrefixCache(max_bytes=3 * size)
    for fill in range(3):
        cache.put([fill] * 10, seq_kv(10, float(fill)))
    cache.longest([0] * 10 + [5])  # the first document was used again: the second is oldest
    cache.make_room(size)
    assert sorted(key[0] for key in cache._entries) == [0, 2]
    cache.make_room(2 * size)
    assert [key[0] for key in cache._entries] == [0]
    cache.make_room(4 * size)  # more than the budget: never kept, so nothing is dropped for it
    assert cache.entries == 1
