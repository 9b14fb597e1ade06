"""float32 products of a few rows by numba (engine/few_rows.py): nn.Linear's numbers, on the
plain weight kept beside oneDNN's packed copy where memory allows, and oneDNN elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from galactica_ext.engine import few_rows
from galactica_ext.engine.cpu import PackedLinear, pack_linears


def test_the_kernel_runs_in_this_environment() -> None:
    """numba is a dependency: the suite must exercise the kernel, not its fallback."""
    assert few_rows.kernel() is not None


@pytest.mark.parametrize("shape", [(1, 96), (1, 1, 96), (2, 1, 96), (2, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_few_rows_give_nn_linears_numbers(shape, bias) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 200, bias=bias).requires_grad_(False)
    product = few_rows.FewRows(linear.weight, linear.bias)
    x = torch.randn(*shape)
    with torch.inference_mode():
        got, want = product(x), linear(x)
    assert got is not None and got.shape == want.shape and got.dtype == torch.float32
    # float32 sums in another order: equal to float32 rounding
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_more_rows_other_dtypes_and_gradients_are_left_to_the_caller() -> None:
    linear = nn.Linear(16, 8)
    product = few_rows.FewRows(linear.weight, linear.bias)
    assert product(torch.randn(few_rows.MAX_ROWS + 1, 16)) is None
    assert product(torch.randn(1, 16).bfloat16()) is None
    assert product(torch.randn(1, 16)) is None  # the weight wants gradients
    with torch.no_grad():
        assert product(torch.randn(1, 16)) is not None


def test_nan_reaches_the_output() -> None:
    linear = nn.Linear(16, 8).requires_grad_(False)
    x = torch.randn(1, 16)
    x[0, 3] = float("nan")
    out = few_rows.FewRows(linear.weight, linear.bias)(x)
    assert out is not None and out.isnan().all()


def test_the_views_follow_the_weight_when_its_memory_moves() -> None:
    linear = nn.Linear(16, 8).requires_grad_(False)
    product = few_rows.FewRows(linear.weight, linear.bias)
    x = torch.randn(1, 16)
    product(x)
    linear.weight.data = linear.weight.data * 2  # new memory
    got = product(x)
    assert got is not None and torch.allclose(got, linear(x), rtol=1e-5, atol=1e-5)


def test_the_kernel_uses_torchs_thread_count() -> None:
    import numba

    linear = nn.Linear(16, 300).requires_grad_(False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        few_rows.FewRows(linear.weight, linear.bias)(torch.randn(1, 16))
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def layers(dtype: torch.dtype) -> nn.Module:
    """Two linears (fc1 with a bias, an output projection tied to an embedding), as in OPT."""
    torch.manual_seed(3)
    model = nn.Module()
    model.embed = nn.Embedding(50, 24)
    model.fc1 = nn.Linear(24, 64)
    model.head = nn.Linear(24, 50, bias=False)
    model.head.weight = model.embed.weight
    return model.to(dtype).requires_grad_(False)


def test_packed_float32_layers_keep_the_plain_weight_for_a_few_rows() -> None:
    model = layers(torch.float32)
    plain = {n: (m.weight.clone(), m.bias) for n, m in (("fc1", model.fc1), ("head", model.head))}
    assert pack_linears(model) == 2
    for name in ("fc1", "head"):
        layer = getattr(model, name)
        assert isinstance(layer, PackedLinear) and layer.few_rows is not None
        assert layer.weight.device.type == "cpu"  # kept, not a placeholder
        weight, bias = plain[name]
        for rows in (1, 2, 3, 40):  # the kernel, then oneDNN
            x = torch.randn(rows, 24)
            with torch.inference_mode():
                want = nn.functional.linear(x, weight, None if bias is None else bias)
                assert torch.allclose(layer(x), want, rtol=1e-4, atol=1e-4)
    assert model.head.weight is model.embed.weight
    # fc1's fused GELU (engine/cpu.py fuse_gelu) applies to the kernel's product too
    model.fc1.activation = "gelu"
    x = torch.randn(1, 24)
    with torch.inference_mode():
        want = nn.functional.gelu(nn.functional.linear(x, *plain["fc1"]))
        assert torch.allclose(model.fc1(x), want, rtol=1e-5, atol=1e-5)


def test_bfloat16_and_an_unaffordable_copy_keep_oneDNN_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from galactica_ext.engine.cpu import can_pack

    if can_pack(torch.bfloat16, torch.device("cpu")):
        model = layers(torch.bfloat16)
        pack_linears(model)
        assert model.fc1.few_rows is None and model.fc1.weight.device.type == "meta"
    monkeypatch.setattr(few_rows, "MEMORY_SHARE", 1e-9)  # no memory to spare
    model = layers(torch.float32)
    pack_linears(model)
    assert model.fc1.few_rows is None and model.fc1.weight.device.type == "meta"
    assert model.head.few_rows is None  # tied: its weight stays, but oneDNN computes


def test_without_the_kernel_no_plain_copy_is_affordable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(few_rows.PRODUCT_ENV, "torch")
    few_rows.kernel.cache_clear()
    try:
        assert not few_rows.affordable(1)
    finally:
        monkeypatch.delenv(few_rows.PRODUCT_ENV)
        few_rows.kernel.cache_clear()


def test_a_float32_model_decodes_the_same_tokens_with_and_without_the_kernel(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's model (fused, packed, the kernel for a few rows) against the same load
    with oneDNN alone: greedy tokens identical, logits equal to float32 rounding, also for
    two beams (two rows)."""
    from galactica_ext.engine.loading import LoadOptions, load_model

    def generate(**extra):
        loaded = load_model(str(tiny_checkpoint), LoadOptions(dtype="float32", device="cpu"))
        ids = loaded.tokenizer("Proteins fold because", return_tensors="pt").input_ids
        kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
        with torch.inference_mode():
            greedy = loaded.model.generate(
                ids, **kwargs, output_logits=True, return_dict_in_generate=True
            )
            beams = loaded.model.generate(ids, **kwargs, num_beams=2)
        return loaded.model, greedy, beams

    model, greedy, beams = generate()
    assert model.model.decoder.layers[0].fc1.few_rows is not None
    monkeypatch.setenv(few_rows.PRODUCT_ENV, "torch")
    few_rows.kernel.cache_clear()
    try:
        model, greedy_onednn, beams_onednn = generate()
        assert model.model.decoder.layers[0].fc1.few_rows is None
    finally:
        monkeypatch.delenv(few_rows.PRODUCT_ENV)
        few_rows.kernel.cache_clear()
    assert torch.equal(greedy.sequences, greedy_onednn.sequences)
    assert torch.equal(beams, beams_onednn)
    stepped = torch.stack([s.float() for s in greedy.logits])
    onednn = torch.stack([s.float() for s in greedy_onednn.logits])
    assert torch.allclose(stepped, onednn, rtol=1e-4, atol=1e-4)


def test_a_default_dtype_changed_elsewhere_does_not_reach_the_output() -> None:
    """transformers sets torch's (process-wide) default dtype while it loads a model, which the
    agent does in a thread beside the one serving."""
    linear = nn.Linear(16, 8).requires_grad_(False)
    product = few_rows.FewRows(linear.weight, linear.bias)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        got = product(torch.randn(1, 16, dtype=torch.float32))
    finally:
        torch.set_default_dtype(before)
    assert got is not None and got.dtype == torch.float32
