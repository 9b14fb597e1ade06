"""CPU fast paths (engine/cpu.py): prepacked weights and the decoding attention give the plain
model's results, and leave parameter counts alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.mark.parametrize(
    ("dtype", "large"), [("float32", False), ("bfloat16", False), ("bfloat16", True)]
)
def test_fast_model_decodes_like_the_plain_one(
    tiny_checkpoint: Path, dtype: str, large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``large``: as a model whose plain weights are too big to keep beside the packed ones
    (galactica-1.3b and up): the layers packed only, the tied output projection not packed (the
    kernel for a few rows, its plain weight for more: the beams here)."""
    from transformers import OPTForCausalLM

    from galactica_ext.engine import blocked, few_rows
    from galactica_ext.engine.cpu import DECODE_ATTENTION, PackedLinear, can_pack
    from galactica_ext.engine.loading import LoadOptions, load_model

    torch_dtype = getattr(torch, dtype)
    if not can_pack(torch_dtype, torch.device("cpu")):
        pytest.skip(f"oneDNN packing of {dtype} is not available on this CPU")
    if large and few_rows.kernel() is None:
        pytest.skip("the few-row kernel does not run here")
    if large:
        monkeypatch.setattr(few_rows, "BF16_PLAIN_LIMIT", 0)
    loaded = load_model(str(tiny_checkpoint), LoadOptions(dtype=dtype, device="cpu"))
    plain = OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch_dtype).eval()
    model = loaded.model
    assert isinstance(model.lm_head, PackedLinear)
    assert isinstance(model.model.decoder.layers[0].fc1, PackedLinear)
    if large:
        assert model.lm_head.packed is None and model.lm_head.few_rows is not None
        assert model.model.decoder.layers[0].fc1.few_rows is None
    elif few_rows.kernel() is not None:
        # more rows: oneDNN's packed copy, or in bfloat16 the blocked kernel's where it runs
        bf16_blocked = dtype == "bfloat16" and blocked.kernel() is not None
        assert (model.lm_head.blocked is not None) == bf16_blocked
        assert (model.lm_head.packed is not None) != bf16_blocked
    if dtype == "bfloat16" and blocked.kernel() is not None:  # the layers too, packed or not
        assert model.model.decoder.layers[0].fc1.blocked is not None
    expected_attention = DECODE_ATTENTION if dtype == "bfloat16" else "sdpa"
    assert model.config._attn_implementation == expected_attention
    # the tied output projection still shares the embeddings; counts are unchanged
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert loaded.describe()["memory_bytes"] == sum(
        p.numel() * p.element_size() for p in plain.parameters()
    )
    ids = loaded.tokenizer("Proteins fold because", return_tensors="pt").input_ids
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    tolerance = 1e-4 if dtype == "float32" else 5e-2
    with torch.inference_mode():
        fast = model.generate(ids, **kwargs, output_logits=True, return_dict_in_generate=True)
        slow = plain.generate(ids, **kwargs)
        beams = model.generate(ids, **kwargs, num_beams=3, num_return_sequences=2)
        # the same sequence through the plain model: logits of every decoding step agree
        replay = plain(input_ids=fast.sequences).logits[0, ids.shape[1] - 1 : -1].float()
    if dtype == "float32":
        assert torch.equal(fast.sequences, slow)
    stepped = torch.stack([step[0].float() for step in fast.logits])
    assert torch.allclose(stepped, replay, atol=tolerance, rtol=tolerance)
    assert beams.shape[0] == 2
    # the output projection's products of one row (the kernel) and of more (packed or plain)
    rows = torch.randn(8, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    rows = rows.to(torch_dtype)
    with torch.inference_mode():
        for count in (1, 3, 8):
            got = model.lm_head(rows[:count]).float()
            want = plain.lm_head(rows[:count]).float()
            assert torch.allclose(got, want, atol=tolerance, rtol=tolerance), count


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_matches_sdpa(dtype: torch.dtype) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from galactica_ext.engine.cpu import _decode_attention

    module = torch.nn.Module()
    module.is_causal = True
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, n, 16, dtype=dtype) for n in (1, 40, 40))
    mask = torch.ones(3, 1, 1, 40, dtype=torch.bool)
    mask[1, ..., :7] = False  # a left-padded row
    for m in (None, mask):
        got, _ = _decode_attention(module, q, k, v, m, scaling=0.25)
        want, _ = sdpa_attention_forward(module, q, k, v, m, scaling=0.25)
        tolerance = 1e-5 if dtype == torch.float32 else 2e-2
        assert got.shape == want.shape == (3, 1, 4, 16)
        assert torch.allclose(got.float(), want.float(), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prompt_attention_matches_eager(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several new tokens: the whole prompt (no mask: causal), a chunk after cached tokens
    (SDPA's boolean mask) and a left-padded batch, in blocks smaller than the prompt; the same
    as transformers' eager attention (float32: to rounding; bfloat16: its numerics)."""
    from transformers.models.opt.modeling_opt import eager_attention_forward

    from galactica_ext.engine import cpu

    monkeypatch.setattr(cpu, "PROMPT_BLOCK", 16)
    module = torch.nn.Module()
    torch.manual_seed(0)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    for rows, cached, padded in ((40, 0, 0), (24, 30, 0), (40, 0, 9)):
        keys = rows + cached
        q = torch.randn(2, 4, rows, 16, dtype=dtype)
        k, v = (torch.randn(2, 4, keys, 16, dtype=dtype) for _ in range(2))
        visible = (
            torch.ones(rows, keys, dtype=torch.bool).tril(cached)[None, None].repeat(2, 1, 1, 1)
        )
        visible[1, ..., :padded] = False  # row 1 left-padded: its first queries see nothing
        mask = None if cached == padded == 0 else visible
        got = cpu.prompt_attention(q, k, v, mask, scaling=0.25)
        additive = torch.zeros(visible.shape, dtype=dtype).masked_fill(
            ~visible, torch.finfo(dtype).min
        )
        want, _ = eager_attention_forward(module, q, k, v, additive, scaling=0.25)
        assert got.shape == want.shape == (2, rows, 4, 16)
        seen = visible.any(-1)[:, 0]  # rows that see a key (padding's output is unused)
        assert torch.isfinite(got.float()).all()
        assert torch.allclose(got[seen].float(), want[seen].float(), atol=tolerance, rtol=tolerance)


def _attention_through_float32_scores(q, k, v, visible):
    """Eager attention's bfloat16 numerics, spelled out: bfloat16 score products, a float32
    copy masked and softmaxed, probabilities rounded to bfloat16, their product with v."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float()
    scores.masked_fill_(~visible, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1).to(q.dtype)
    return torch.matmul(probs, v).transpose(1, 2)


def test_prompt_attention_softmaxes_bfloat16_scores_to_the_same_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the scaling folded into the query (1.0, as the engine's models have it), the
    bfloat16 scores go to softmax without a float32 copy: the same bits as through one, for a
    whole prompt, a chunk after cached tokens and a left-padded batch, in blocks."""
    from galactica_ext.engine import cpu

    monkeypatch.setattr(cpu, "PROMPT_BLOCK", 16)
    torch.manual_seed(1)
    for rows, cached, padded in ((40, 0, 0), (24, 30, 0), (40, 0, 9), (300, 0, 0)):
        keys = rows + cached
        q = torch.randn(2, 4, rows, 16, dtype=torch.bfloat16) * 2
        k, v = (torch.randn(2, 4, keys, 16, dtype=torch.bfloat16) * 2 for _ in range(2))
        visible = (
            torch.ones(rows, keys, dtype=torch.bool).tril(cached)[None, None].repeat(2, 1, 1, 1)
        )
        visible[1, ..., :padded] = False
        mask = None if cached == padded == 0 else visible
        got = cpu.prompt_attention(q, k, v, mask, scaling=1.0)
        want = _attention_through_float32_scores(q, k, v, visible)
        seen = visible.any(-1)[:, 0]  # rows that see a key (padding's output is unused)
        assert torch.equal(got[seen], want[seen])
        assert torch.isfinite(got.float()).all()


def test_fast_paths_can_be_turned_off(tiny_checkpoint: Path) -> None:
    from galactica_ext.engine.loading import LoadOptions, load_model

    loaded = load_model(
        str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu", pack_weights=False)
    )
    assert type(loaded.model.lm_head) is torch.nn.Linear
    assert loaded.model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    ("dtype", "quantize"), [("float32", None), ("bfloat16", None), ("bfloat16", "8bit")]
)
def test_decode_step_gives_the_models_logits_bit_for_bit(
    tiny_checkpoint: Path, dtype: str, quantize: str | None
) -> None:
    """engine/decode_step.py's modules against ``model(...)`` on the same caches: a padded
    batch of two prompts, several steps, identical logits and caches. (float32's fused layers,
    another order of the same sums, are tested in test_fused_layers.py.)"""
    from galactica_ext.engine.cpu import can_pack
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.kvcache import BatchKV
    from galactica_ext.engine.loading import LoadOptions, load_model
    from galactica_ext.engine.prefill import prefill

    if not quantize and not can_pack(getattr(torch, dtype), torch.device("cpu")):
        pytest.skip(f"oneDNN packing of {dtype} is not available on this CPU")
    options = LoadOptions(dtype=dtype, device="cpu", quantize=quantize)
    loaded = load_model(str(tiny_checkpoint), options)
    model, cpu = loaded.model, torch.device("cpu")
    step = DecodeStep.build(model)
    assert step is not None
    step.fused = None
    prompts = [
        loaded.tokenizer(text, add_special_tokens=False).input_ids
        for text in ("Proteins fold because of", "The")
    ]
    ours, theirs = BatchKV(), BatchKV()
    with torch.inference_mode():
        for ids in prompts:
            _, layers = prefill(model, cpu, ids, None, 0)
            ours.add(layers)
            theirs.add(layers)
        tokens = torch.tensor([[5], [9]])
        positions = torch.tensor([[len(p)] for p in prompts])
        for _ in range(4):
            mask = torch.cat([ours.mask, ours.mask.new_ones((2, 1))], dim=1)
            got = step(tokens, positions, ours.cache, mask)
            want = model(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=positions,
                cache=theirs.cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            ours.grew()
            theirs.grew()
            assert torch.equal(got, want)
            tokens, positions = got.argmax(-1, keepdim=True), positions + 1
        for (k, v), (k2, v2) in zip(ours.layers, theirs.layers, strict=True):
            assert torch.equal(k, k2) and torch.equal(v, v2)
        one = BatchKV()  # a single row: no mask at all
        _, layers = prefill(model, cpu, prompts[0], None, 0)
        one.add(layers)
        other = BatchKV()
        other.add(layers)
        position = torch.tensor([[len(prompts[0])]])
        got = step(torch.tensor([[7]]), position, one.cache)
        want = model(
            input_ids=torch.tensor([[7]]),
            position_ids=position,
            cache=other.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        assert torch.equal(got, want)


def test_decode_step_leaves_unfused_models_to_transformers(tiny_checkpoint: Path) -> None:
    from transformers import OPTForCausalLM

    from galactica_ext.engine.decode_step import DecodeStep

    plain = OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch.float32).eval()
    assert DecodeStep.build(plain) is None
