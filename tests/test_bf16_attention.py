"""The decoding attention's numba kernel (engine/bf16_attention.py): the torch path's float32
arithmetic over a bfloat16 cache, on the layouts the engine's caches have, and the torch path
wherever it does not apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from galactica_ext.engine import bf16_attention


def reference(q, k, v, mask, scale):
    """The torch path (engine/cpu.py): float32 products and softmax, ``[B, 1, H, D]``."""
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.matmul(torch.softmax(scores, dim=-1), v.float())
    return out.transpose(1, 2)


def cache_views(rows: int, heads: int, tokens: int, dim: int, capacity: int):
    """Keys and values as the engine's growing cache holds them: the first ``tokens`` of a
    ``capacity``-token buffer whose tail is garbage (here: huge values, never attended)."""
    buffers = [torch.randn(rows, heads, capacity, dim).bfloat16() for _ in range(2)]
    for buffer in buffers:
        buffer[:, :, tokens:] = 3.0e38
    return [b[:, :, :tokens] for b in buffers]


def test_the_kernel_runs_in_this_environment() -> None:
    """numba is a dependency: the suite must exercise the kernel, not its fallback."""
    assert bf16_attention.kernel() is not None


@pytest.mark.parametrize(("rows", "heads", "tokens", "dim"), [(1, 12, 37, 64), (3, 4, 200, 16)])
def test_the_kernel_gives_the_float32_paths_numbers(rows, heads, tokens, dim) -> None:
    torch.manual_seed(0)
    k, v = cache_views(rows, heads, tokens, dim, capacity=tokens + 50)
    q = torch.randn(rows, heads, 1, dim).bfloat16()
    padded = torch.ones(rows, 1, 1, tokens, dtype=torch.bool)
    padded[-1, ..., : tokens // 3] = False  # the last row left-padded
    for mask in (None, padded):
        for scale in (1.0, 0.125):
            want = reference(q, k, v, mask, scale)
            got = bf16_attention.attend(q, k, v, mask, scale)
            assert got is not None and got.dtype == torch.bfloat16
            assert got.shape == (rows, 1, heads, dim)
            # float32 arithmetic rounded once to bfloat16: within half a bfloat16 step of the
            # float32 result, and the same bfloat16 as torch's rounding almost everywhere
            assert ((got.float() - want).abs() <= want.abs() * 2**-8 + 1e-6).all()
            assert (got == want.bfloat16()).float().mean() >= 0.99


def test_a_contiguous_cache_and_a_mask_for_all_rows() -> None:
    """transformers' own caches are contiguous; a ``[1, 1, 1, T]`` mask covers every row."""
    torch.manual_seed(1)
    q = torch.randn(2, 4, 1, 32).bfloat16()
    k, v = (torch.randn(2, 4, 50, 32).bfloat16() for _ in range(2))
    mask = torch.ones(1, 1, 1, 50, dtype=torch.bool)
    mask[..., :5] = False
    got = bf16_attention.attend(q, k, v, mask, 1.0)
    want = reference(q, k, v, mask.expand(2, 1, 1, 50), 1.0)
    assert got is not None
    assert torch.allclose(got.float(), want, atol=1e-2, rtol=1e-2)


def test_nan_in_the_cache_reaches_the_output() -> None:
    """The engine reports NaN logits; the kernel must not hide them."""
    k, v = cache_views(1, 2, 10, 16, capacity=16)
    v[0, 1, 3, 0] = float("nan")
    got = bf16_attention.attend(torch.ones(1, 2, 1, 16).bfloat16(), k, v, None, 1.0)
    assert got is not None
    assert torch.isnan(got[0, 0, 1]).any() and not torch.isnan(got[0, 0, 0]).any()


def test_where_the_kernel_does_not_apply_the_torch_path_runs() -> None:
    q = torch.randn(1, 2, 1, 16).bfloat16()
    k, v = (torch.randn(1, 2, 8, 16).bfloat16() for _ in range(2))
    additive = torch.zeros(1, 1, 1, 8)
    several = torch.randn(1, 2, 3, 16).bfloat16()
    key_major = torch.randn(1, 8, 2, 16).bfloat16().transpose(1, 2)  # [B, T, H, D] storage
    assert bf16_attention.attend(q, k.float(), v.float(), None, 1.0) is None
    assert bf16_attention.attend(q, k, v, additive, 1.0) is None
    assert bf16_attention.attend(several, k, v, None, 1.0) is None
    assert bf16_attention.attend(q, key_major, v, None, 1.0) is None
    fewer_heads = torch.randn(1, 1, 8, 16).bfloat16()  # grouped keys: not OPT's attention
    assert bf16_attention.attend(q, fewer_heads, fewer_heads, None, 1.0) is None
    assert bf16_attention.attend(q, k, v, None, 1.0) is not None


def test_the_kernel_uses_torchs_thread_count() -> None:
    import numba

    before = torch.get_num_threads()
    k, v = cache_views(1, 4, 20, 16, capacity=20)
    try:
        torch.set_num_threads(1)
        bf16_attention.attend(torch.randn(1, 4, 1, 16).bfloat16(), k, v, None, 1.0)
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def decode_padded(model, step, prompts: list[list[int]], fed: torch.Tensor) -> list[torch.Tensor]:
    """The engine's ``step`` over a left-padded batch of ``prompts`` (prefilled one by one),
    fed the rows of ``fed`` (``[steps, 2]`` tokens): each step's logits."""
    from galactica_ext.engine.kvcache import BatchKV
    from galactica_ext.engine.prefill import prefill

    with torch.inference_mode():
        batch = BatchKV()
        for ids in prompts:
            batch.add(prefill(model, torch.device("cpu"), ids, None, 0)[1])
        positions = torch.tensor([[len(p)] for p in prompts])
        logits = []
        for i, tokens in enumerate(fed):
            mask = torch.cat([batch.mask, batch.mask.new_ones((2, 1))], dim=1)
            logits.append(step(tokens.view(2, 1), positions + i, batch.cache, mask))
            batch.grew()
    return logits


def test_decoding_with_the_kernel_gives_the_torch_paths_logits(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's step over the same tokens, kernel against torch path: logits within
    bfloat16 rounding, for a padded batch of two sequences."""
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.loading import LoadOptions, load_model

    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    step = DecodeStep.build(model)
    assert step is not None
    step.fused = None  # the modules' path (fused layers: test_fused_layers.py)
    prompts = [list(range(100, 130)), list(range(200, 211))]
    torch.manual_seed(2)
    fed = torch.randint(100, 1000, (12, 2))

    def run() -> torch.Tensor:
        return torch.stack(decode_padded(model, step, prompts, fed)).float()

    with_kernel = run()
    monkeypatch.setenv(bf16_attention.ATTENTION_ENV, "torch")
    bf16_attention.kernel.cache_clear()
    try:
        with_torch = run()
    finally:
        monkeypatch.delenv(bf16_attention.ATTENTION_ENV)
        bf16_attention.kernel.cache_clear()
    assert torch.isfinite(with_kernel).all()
    assert torch.allclose(with_kernel, with_torch, atol=5e-2, rtol=5e-2)
    assert (with_kernel.argmax(-1) == with_torch.argmax(-1)).float().mean() >= 0.9


def _growing_layer(rows: int, heads: int, tokens: int, dim: int, capacity: int):
    from galactica_ext.engine.kvcache import GrowingLayer

    keys, values = (torch.randn(rows, heads, tokens, dim).bfloat16() for _ in range(2))
    return GrowingLayer(keys, values, capacity, grows=True)


@pytest.mark.parametrize("padded", [False, True])
def test_writing_the_cache_and_attending_in_one_call_equals_the_two_steps(padded: bool) -> None:
    """``write_and_attend`` from a fused q/k/v product: the same cache contents and the same
    output bits as the layer's ``update`` followed by :func:`bf16_attention.attend`."""
    torch.manual_seed(3)
    rows, heads, tokens, dim = 3, 4, 30, 16
    width = heads * dim
    ours = _growing_layer(rows, heads, tokens, dim, capacity=40)
    theirs = _growing_layer(rows, heads, tokens, dim, capacity=40)
    for a, b in zip(theirs.buffers, ours.buffers, strict=True):
        a.copy_(b)
    qkv = torch.randn(rows, 1, 3 * width).bfloat16()
    mask = None
    if padded:
        mask = torch.ones(rows, 1, 1, tokens + 1, dtype=torch.bool)
        mask[1, ..., :9] = False  # a left-padded row
    got = bf16_attention.write_and_attend(qkv, ours, mask, heads)
    query, key, value = (
        part.reshape(rows, -1, heads, dim).transpose(1, 2) for part in qkv.split(width, -1)
    )
    key, value = theirs.update(key, value)
    want = bf16_attention.attend(query, key, value, mask, 1.0)
    assert got is not None and want is not None
    assert torch.equal(got, want.reshape(rows, 1, width))
    assert ours.length == theirs.length == tokens + 1
    assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)


def test_writing_and_attending_leaves_what_it_cannot_take_to_the_two_steps() -> None:
    """No room left (the layer must grow first), float32, a cache that is not a growing
    layer: None, and the layer untouched."""
    from transformers.cache_utils import DynamicLayer

    full = _growing_layer(1, 2, 8, 4, capacity=8)
    before = full.buffers[0].clone()
    qkv = torch.randn(1, 1, 24).bfloat16()
    assert bf16_attention.write_and_attend(qkv, full, None, 2) is None
    assert full.length == 8 and torch.equal(full.buffers[0], before)
    roomy = _growing_layer(1, 2, 8, 4, capacity=16)
    assert bf16_attention.write_and_attend(qkv.float(), roomy, None, 2) is None
    assert roomy.length == 8
    assert bf16_attention.write_and_attend(qkv, DynamicLayer(), None, 2) is None


def test_the_engines_step_writes_and_attends_in_one_call_with_the_same_logits(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's step on a padded batch, past its cache's room (it grows once): the
    one-call kernel runs on the layers that have room, and the logits are the bits of the
    step that updates the cache and attends in two."""
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.kvcache import HEADROOM
    from galactica_ext.engine.loading import LoadOptions, load_model

    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    prompts = [list(range(100, 130)), list(range(200, 211))]
    fed = torch.randint(100, 1000, (HEADROOM + 6, 2), generator=torch.Generator().manual_seed(4))
    calls = {"one call": 0, "two": 0}
    writing = bf16_attention.write_and_attend

    def counted(*args):
        out = writing(*args)
        calls["one call" if out is not None else "two"] += 1
        return out

    monkeypatch.setattr(bf16_attention, "write_and_attend", counted)

    def run(one_call: bool) -> list[torch.Tensor]:
        step = DecodeStep.build(model)
        assert step is not None and step.writes_and_attends
        step.fused = None  # the modules' path (fused layers: test_fused_layers.py)
        step.writes_and_attends = one_call
        return decode_padded(model, step, prompts, fed)

    two = run(False)
    assert calls == {"one call": 0, "two": 0}
    one = run(True)
    layers = model.config.num_hidden_layers
    assert calls["one call"] >= (len(fed) - 1) * layers and calls["two"] >= layers  # it grew
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)
