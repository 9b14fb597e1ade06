"""bfloat16 weights with float32 products (engine/widened.py), for CPUs without bfloat16
arithmetic; ``$GALACTICA_BF16_PRODUCTS=always`` runs the path on any CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from galactica_ext.engine import few_rows, widened

pytestmark = pytest.mark.skipif(few_rows.kernel() is None, reason="numba's kernels do not run")

#: one bfloat16 step at magnitude 1 (8 bits of precision)
BF16_STEP = 2.0**-7


def _linear(size: int, features: int, bias: bool, seed: int) -> torch.nn.Linear:
    linear = torch.nn.Linear(size, features, bias=bias, dtype=torch.bfloat16)
    seeded = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(features, size, generator=seeded) * 0.05)
        if bias:
            linear.bias.copy_(torch.randn(features, generator=seeded))
    return linear


def _exact(linear: torch.nn.Linear, x: torch.Tensor, activation: str) -> torch.Tensor:
    """``linear`` (and the exact GELU) of ``x`` in float64."""
    bias = None if linear.bias is None else linear.bias.double()
    exact = torch.nn.functional.linear(x.double(), linear.weight.double(), bias)
    return torch.nn.functional.gelu(exact) if activation == "gelu" else exact


def _assert_rounded_once(got: torch.Tensor, exact: torch.Tensor) -> None:
    """float32 sums rounded once: within half a bfloat16 step of the exact value, plus
    float32's own rounding."""
    scale = exact.abs().clamp(min=1e-2)
    assert ((got.double() - exact).abs() / scale).max() <= 0.5 * BF16_STEP + 1e-4


@pytest.mark.parametrize(
    "rows", [1, 2, 3, 5, 7, few_rows.WIDENED_MAX_ROWS, few_rows.WIDENED_MAX_ROWS + 1, 40]
)
@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
def test_widened_product_is_the_float32_sum_rounded_once(
    rows: int, activation: str, bias: bool
) -> None:
    linear = _linear(200, 70, bias, seed=rows)
    product = widened.WidenedLinear(linear)
    product.activation = activation
    x = torch.randn(rows, 200, generator=torch.Generator().manual_seed(1)).bfloat16()
    with torch.inference_mode():
        got = product(x)
        exact = _exact(linear, x, activation)
        torch_bf16 = linear(x)
        if activation == "gelu":
            torch_bf16 = torch.nn.functional.gelu(torch_bf16)
    assert got.dtype == torch.bfloat16 and got.shape == (rows, 70)
    _assert_rounded_once(got, exact)
    # torch's bfloat16 product (GELU after rounding) within a step of it
    assert torch.allclose(got.float(), torch_bf16.float(), rtol=2 * BF16_STEP, atol=1e-2)
    # a row alone: the same float32 sum, in another order where the kernel shared it with others
    single = torch.cat([product(row) for row in x.split(1)])
    assert torch.allclose(single.float(), got.float(), rtol=BF16_STEP, atol=1e-3)


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_prompt_products_through_onednn_or_torch_are_the_same_sums(
    onednn: bool, activation: str
) -> None:
    """Prompts (more rows than the kernel takes) go through oneDNN's float32 product where it
    runs, with fc1's GELU inside, else through torch's product and GELU: both are the float32
    sum of the bfloat16 values, rounded once."""
    if onednn and not widened.onednn_float32():
        pytest.skip("oneDNN's float32 product does not run here")
    linear = _linear(200, 70, bias=True, seed=3)
    product = widened.WidenedLinear(linear)
    product.activation, product.onednn = activation, onednn
    rows = few_rows.WIDENED_MAX_ROWS + 9
    x = torch.randn(2, rows, 200, generator=torch.Generator().manual_seed(2)).bfloat16()
    with torch.inference_mode():
        got = product(x)
        exact = _exact(linear, x, activation)
    assert got.dtype == torch.bfloat16 and got.shape == (2, rows, 70)
    _assert_rounded_once(got, exact)


def test_widened_product_keeps_leading_dimensions_and_the_tied_weight() -> None:
    linear = _linear(64, 32, bias=False, seed=0)
    product = widened.WidenedLinear(linear)
    assert product.weight is linear.weight
    x = torch.randn(2, 1, 64).bfloat16()
    with torch.inference_mode():
        assert product(x).shape == (2, 1, 32)
        assert product(torch.randn(3, 5, 64).bfloat16()).shape == (3, 5, 32)


def test_prompt_attention_in_float32_is_float32_attention_of_the_bfloat16_values() -> None:
    from galactica_ext.engine.cpu import prompt_attention

    seeded = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, 300, 16, generator=seeded).bfloat16() for _ in range(3))
    got = prompt_attention(q, k, v, None, 0.25, in_float32=True)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), is_causal=True, scale=0.25
    )
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), expected.transpose(1, 2), atol=1e-2, rtol=BF16_STEP)
    # rounded once from float32: closer to it than the bfloat16 products' result
    in_bf16 = prompt_attention(q, k, v, None, 0.25)
    error = (got.float() - expected.transpose(1, 2)).abs().mean()
    assert error < (in_bf16.float() - expected.transpose(1, 2)).abs().mean()


def test_the_switch_names_its_accepted_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from galactica_ext.engine.loading import LoadOptions

    monkeypatch.setenv(widened.ENV, "sometimes")
    with pytest.raises(ValueError, match="auto, always, never"):
        widened.wanted()
    with pytest.raises(ValueError, match="GALACTICA_BF16_PRODUCTS"):  # any model, before loading
        LoadOptions(dtype="float32").validate()
    monkeypatch.setenv(widened.ENV, "never")
    assert not widened.can_widen(torch.bfloat16, torch.device("cpu"))
    monkeypatch.setenv(widened.ENV, "always")
    assert widened.can_widen(torch.bfloat16, torch.device("cpu"))
    assert not widened.can_widen(torch.float32, torch.device("cpu"))


def test_bfloat16_is_widened_by_default_only_without_bfloat16_arithmetic(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from galactica_ext.engine.cpu import PackedLinear, native_bf16
    from galactica_ext.engine.loading import LoadOptions, load_model

    monkeypatch.delenv(widened.ENV, raising=False)
    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    expected = PackedLinear if native_bf16() else widened.WidenedLinear
    assert type(model.model.decoder.layers[0].fc2) is expected


def test_widened_model_decodes_like_the_plain_one(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import OPTForCausalLM

    from galactica_ext.engine.cpu import DECODE_ATTENTION
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.loading import LoadOptions, load_model

    monkeypatch.setenv(widened.ENV, "always")
    loaded = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu"))
    model = loaded.model
    plain = OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch.bfloat16).eval()
    layer = model.model.decoder.layers[0]
    assert isinstance(model.lm_head, widened.WidenedLinear)
    assert isinstance(layer.self_attn.qkv, widened.WidenedLinear)
    assert layer.fc1.activation == "gelu"
    assert model.config._attn_implementation == DECODE_ATTENTION
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert DecodeStep.build(model) is not None
    ids = loaded.tokenizer("Proteins fold because", return_tensors="pt").input_ids
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    with torch.inference_mode():
        fast = model.generate(ids, **kwargs, output_logits=True, return_dict_in_generate=True)
        beams = model.generate(ids, **kwargs, num_beams=3, num_return_sequences=2)
        replay = plain(input_ids=fast.sequences).logits[0, ids.shape[1] - 1 : -1].float()
        exact = (
            OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch.float32)
            .eval()(input_ids=fast.sequences)
            .logits[0, ids.shape[1] - 1 : -1]
        )
    stepped = torch.stack([step[0].float() for step in fast.logits])
    assert torch.allclose(stepped, replay, atol=5e-2, rtol=5e-2)
    # float32 products: about as close to the float32 model as torch's bfloat16 products (here
    # 0.00078 against 0.00082; a dropped GELU or bias is many times that)
    assert (stepped - exact).abs().mean() <= (replay - exact).abs().mean() * 1.5
    assert beams.shape[0] == 2
