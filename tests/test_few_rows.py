"""Products of a few rows by numba (engine/few_rows.py): nn.Linear's numbers in float32, the
exact product rounded once in bfloat16, on the plain weight kept beside oneDNN's packed copy
where memory allows, and oneDNN elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from galactica_ext.engine import few_rows
from galactica_ext.engine.cpu import PackedLinear, can_pack, pack_linears


def test_the_kernel_runs_in_this_environment() -> None:
    """numba is a dependency: the suite must exercise the kernel, not its fallback."""
    assert few_rows.kernel() is not None


@pytest.mark.parametrize("shape", [(1, 96), (1, 1, 96), (2, 1, 96), (2, 96), (4, 1, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_few_rows_give_nn_linears_numbers(shape, bias) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 200, bias=bias).requires_grad_(False)
    product = few_rows.FewRows(linear.weight, linear.bias)
    product.max_rows = few_rows.AVX2_MAX_ROWS  # what it takes where numba emits AVX2 code
    x = torch.randn(*shape)
    with torch.inference_mode():
        got, want = product(x), linear(x)
    assert got is not None and got.shape == want.shape and got.dtype == torch.float32
    # float32 sums in another order: equal to float32 rounding
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def exact_product(x, weight, bias, gelu: bool) -> torch.Tensor:
    """The product in float64, GELU'd there, rounded once to ``x``'s dtype."""
    exact = nn.functional.linear(
        x.double(), weight.double(), None if bias is None else bias.double()
    )
    return (nn.functional.gelu(exact) if gelu else exact).to(x.dtype)


@pytest.mark.parametrize("shape", [(1, 768), (1, 1, 768), (1, 96), (2, 1, 768), (2, 96)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("gelu", [True, False])
def test_bfloat16_rows_give_the_exact_product_rounded_once(shape, bias, gelu) -> None:
    """float32 sums rounded once: the exact result's bfloat16 but where a float32 sum in
    another order crosses a rounding boundary (then one bfloat16 step away), as oneDNN's."""
    torch.manual_seed(1)
    linear = nn.Linear(shape[-1], 300, bias=bias).bfloat16().requires_grad_(False)
    product = few_rows.FewRows(linear.weight, linear.bias)
    x = torch.randn(*shape).bfloat16()
    with torch.inference_mode():
        got = product(x, "gelu" if gelu else "none")
    want = exact_product(x, linear.weight, linear.bias, gelu)
    assert got is not None and got.shape == want.shape and got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want.float(), rtol=2**-7, atol=1e-4)
    assert (got == want).float().mean() > 0.97
    if can_pack(torch.bfloat16, torch.device("cpu")):  # oneDNN's own: as close
        packed = PackedLinear(linear, tied=True)
        packed.activation = "gelu" if gelu else "none"
        with torch.inference_mode():
            onednn = packed(x)
        assert torch.allclose(onednn.float(), want.float(), rtol=2**-7, atol=1e-4)


def test_float32_takes_more_rows_where_numba_emits_avx2_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """oneDNN's AVX2 code was measured slower than the kernel's up to four rows, its AVX-512
    code from three; the int8 kernel's AVX2 code wins at one row only."""
    from galactica_ext.engine import numba_kernels

    cases = (
        (True, few_rows.MAX_ROWS, few_rows.INT8_MAX_ROWS),
        (False, few_rows.AVX2_MAX_ROWS, few_rows.INT8_AVX2_MAX_ROWS),
    )
    q, scale = torch.zeros(8, 16, dtype=torch.int8), torch.ones(8)
    for avx512, limit, int8_limit in cases:
        monkeypatch.setattr(numba_kernels, "emits_avx512", lambda avx512=avx512: avx512)
        assert few_rows.row_limit(torch.float32) == limit
        assert few_rows.FewRows(torch.randn(8, 16), None).max_rows == limit
        assert few_rows.row_limit(torch.bfloat16) == few_rows.BF16_MAX_ROWS
        assert few_rows.Int8Rows(q, scale, None).max_rows == int8_limit


def test_more_rows_other_dtypes_and_gradients_are_left_to_the_caller() -> None:
    linear = nn.Linear(16, 8)
    product = few_rows.FewRows(linear.weight, linear.bias)
    assert product(torch.randn(few_rows.row_limit(torch.float32) + 1, 16)) is None
    assert product(torch.randn(1, 16).bfloat16()) is None
    assert product(torch.randn(1, 16)) is None  # the weight wants gradients
    with torch.no_grad():
        assert product(torch.randn(1, 16)) is not None
    halved = few_rows.FewRows(*(p.detach().bfloat16() for p in (linear.weight, linear.bias)))
    assert halved(torch.randn(few_rows.BF16_MAX_ROWS + 1, 16).bfloat16()) is None
    assert halved(torch.randn(1, 16)) is None
    assert halved(torch.randn(1, 16).bfloat16()) is not None
    assert few_rows.FewRows(linear.weight.detach().half(), None).run is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nan_reaches_the_output(dtype: torch.dtype) -> None:
    linear = nn.Linear(16, 8).to(dtype).requires_grad_(False)
    x = torch.randn(1, 16, dtype=dtype)
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


PACKABLE = [torch.float32] + [torch.bfloat16] * can_pack(torch.bfloat16, torch.device("cpu"))


@pytest.mark.parametrize("dtype", PACKABLE)
def test_packed_layers_keep_the_plain_weight_for_a_few_rows(dtype: torch.dtype) -> None:
    model = layers(dtype)
    plain = {n: (m.weight.clone(), m.bias) for n, m in (("fc1", model.fc1), ("head", model.head))}
    assert pack_linears(model) == 2
    close = (
        {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2**-7, "atol": 1e-2}
    )
    for name in ("fc1", "head"):
        layer = getattr(model, name)
        assert isinstance(layer, PackedLinear) and layer.few_rows is not None
        assert layer.weight.device.type == "cpu"  # kept, not a placeholder
        weight, bias = plain[name]
        for rows in (1, 2, 3, 40):  # the kernel, then oneDNN
            x = torch.randn(rows, 24).to(dtype)
            with torch.inference_mode():
                want = exact_product(x, weight, bias, False)
                assert torch.allclose(layer(x).float(), want.float(), **close)
    assert model.head.weight is model.embed.weight
    # fc1's fused GELU (engine/cpu.py fuse_gelu) applies to the kernel's product too
    model.fc1.activation = "gelu"
    x = torch.randn(1, 24).to(dtype)
    with torch.inference_mode():
        want = exact_product(x, *plain["fc1"], True)
        assert torch.allclose(model.fc1(x).float(), want.float(), **close)


def test_an_unaffordable_copy_keeps_oneDNN_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(few_rows, "BF16_PLAIN_LIMIT", 0)  # bfloat16 only
    for dtype in PACKABLE:
        model = layers(dtype)
        pack_linears(model)
        kept = dtype == torch.float32
        assert (model.fc1.few_rows is not None) == kept
        assert model.fc1.weight.device.type == ("cpu" if kept else "meta")
        assert model.head.few_rows is not None  # tied: no copy needed
    monkeypatch.setattr(few_rows, "MEMORY_SHARE", 1e-9)  # no memory to spare
    model = layers(torch.float32)
    pack_linears(model)
    assert model.fc1.few_rows is None and model.fc1.weight.device.type == "meta"
    assert model.head.few_rows is not None  # tied: its weight stays anyway, for the kernel


def test_without_the_kernel_no_plain_copy_is_affordable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert few_rows.keeps_plain(torch.bfloat16, 1) and few_rows.keeps_plain(torch.float32, 1)
    assert not few_rows.keeps_plain(torch.bfloat16, few_rows.BF16_PLAIN_LIMIT + 1)
    assert not few_rows.keeps_plain(torch.float16, 1)
    monkeypatch.setenv(few_rows.PRODUCT_ENV, "torch")
    few_rows.kernel.cache_clear()
    try:
        assert not few_rows.affordable(1)
        assert not few_rows.keeps_plain(torch.float32, 1)
    finally:
        monkeypatch.delenv(few_rows.PRODUCT_ENV)
        few_rows.kernel.cache_clear()


@pytest.mark.parametrize("dtype", PACKABLE)
def test_a_model_decodes_like_it_does_without_the_kernel(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    """The engine's model (fused, packed, the kernel for a few rows) against the same load
    with oneDNN alone. float32: greedy tokens identical, also for two beams (two rows), logits
    equal to float32 rounding. bfloat16: logits within a few bfloat16 steps while the tokens
    agree, and where they part, the two best logits were that close (a near tie: the kernel
    and oneDNN round the same sums in other orders, and oneDNN's own order differs between
    CPUs)."""
    from galactica_ext.engine.loading import LoadOptions, load_model

    def generate(**extra):
        options = LoadOptions(dtype=str(dtype).removeprefix("torch."), device="cpu")
        loaded = load_model(str(tiny_checkpoint), options)
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
    stepped = torch.stack([s.float() for s in greedy.logits])[:, 0]
    onednn = torch.stack([s.float() for s in greedy_onednn.logits])[:, 0]
    if dtype == torch.float32:
        assert torch.equal(greedy.sequences, greedy_onednn.sequences)
        assert torch.equal(beams, beams_onednn)
        assert torch.allclose(stepped, onednn, rtol=1e-4, atol=1e-4)
        return
    ours, theirs = stepped.argmax(-1), onednn.argmax(-1)
    parted = [i for i in range(len(ours)) if ours[i] != theirs[i]]
    same = parted[0] + 1 if parted else len(ours)  # steps with the same tokens before them
    tolerance = {"rtol": 2**-5, "atol": 2**-4}
    assert torch.allclose(stepped[:same], onednn[:same], **tolerance)
    if parted:  # a near tie where the tokens parted
        best_two = stepped[parted[0]].topk(2).values
        assert best_two[0] - best_two[1] <= 2 * tolerance["atol"] + 2**-5 * best_two[0].abs()


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


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("gelu", [True, False])
def test_int8_rows_give_the_weight_only_product_rounded_once(rows: int, gelu: bool) -> None:
    """bfloat16 rows times int8 weights: the exact product of the rows and the rounded
    weights, scaled, rounded once (within a bfloat16 step where a float32 sum crosses a
    rounding boundary)."""
    from galactica_ext.engine.int8 import quantize_weight

    torch.manual_seed(rows)
    weight = torch.randn(300, 768) * 0.02
    q, scale = quantize_weight(weight)
    bias = torch.randn(300).bfloat16()
    product = few_rows.Int8Rows(q, scale, bias)
    limit = product.max_rows
    product.max_rows = 2  # the kernel's numbers at two rows wherever it takes them
    x = torch.randn(rows, 768).bfloat16()
    with torch.inference_mode():
        got = product(x, "gelu" if gelu else "none")
    dequantized = q.double() * scale.double()[:, None]
    want = exact_product(x, dequantized, bias, gelu)
    assert got is not None and got.dtype == torch.bfloat16 and got.shape == want.shape
    assert torch.allclose(got.float(), want.float(), rtol=2**-7, atol=1e-4)
    assert (got == want).float().mean() > 0.97
    product.max_rows = limit
    assert product(torch.randn(limit + 1, 768).bfloat16()) is None
    assert product(x.float()) is None  # float32 rows: torch's kernel


def test_int8_linears_use_the_kernel_for_a_few_rows_and_fbgemm_past_them() -> None:
    """An int8 linear with its plain copy: the kernel's weight-only product for up to
    its row limit of bfloat16 rows (closer to the dense product than the dynamic kernel, which
    also rounds the rows), torch's dynamic product for more; the GELU in float32 either way."""
    from galactica_ext.engine.int8 import Int8Linear

    torch.manual_seed(0)
    dense = nn.Linear(768, 256).bfloat16().requires_grad_(False)
    fast = Int8Linear(dense, "dynamic", tied=False, few_rows_too=True)
    packed = Int8Linear(dense, "dynamic", tied=False)
    assert fast.few_rows is not None and packed.few_rows is None
    x = torch.randn(few_rows.row_limit(torch.int8) + 1, 768).bfloat16()
    with torch.inference_mode():
        want = dense(x[:1]).float()
        few, dynamic = fast(x[:1]).float(), packed(x[:1]).float()
        assert torch.equal(fast(x), packed(x))  # past the limit: the same dynamic product
        fast.activation = packed.activation = "gelu"
        assert torch.equal(fast(x), packed(x))
        gelu = fast(x[:1])
    assert torch.equal(gelu, fast.few_rows(x[:1], "gelu"))
    assert (few - want).abs().max() < (dynamic - want).abs().max()


def test_int8_rows_of_a_float32_model_give_the_weight_only_product() -> None:
    """A float32 model's int8 linears (CPUs without AVX-512 BF16): float32 rows in and out,
    the exact product of the rows and the rounded weights to float32 rounding."""
    from galactica_ext.engine.int8 import Int8Linear, quantize_weight

    torch.manual_seed(2)
    dense = nn.Linear(768, 300).requires_grad_(False)
    q, scale = quantize_weight(dense.weight)
    product = few_rows.Int8Rows(q, scale, dense.bias, torch.float32)
    product.max_rows = 2  # the kernel's numbers at two rows wherever it takes them
    x = torch.randn(2, 768)
    dequantized = q.double() * scale.double()[:, None]
    for activation in ("none", "gelu"):
        with torch.inference_mode():
            got = product(x, activation)
        want = exact_product(x, dequantized, dense.bias, activation == "gelu")
        assert got is not None and got.dtype == torch.float32
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert product(x.bfloat16()) is None  # another dtype: torch's kernel
    linear = Int8Linear(dense, "dynamic", tied=False, few_rows_too=True)
    assert linear.few_rows.dtype == torch.float32 and linear.few_rows.run is not None
