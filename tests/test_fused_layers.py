"""engine/fused_layers.py: a decoding step's layers as one numba call each give the modules'
logits and caches (float32: the same sums in another order; bfloat16: rounded where the modules
round), and step aside where they do not apply, changing nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def float32_model(tiny_checkpoint: Path):
    from galactica_ext.engine.loading import LoadOptions, load_model

    return load_model(str(tiny_checkpoint), LoadOptions(dtype="float32", device="cpu"))


@pytest.fixture(scope="module")
def bfloat16_model(tiny_checkpoint: Path):
    from galactica_ext.engine.loading import LoadOptions, load_model

    return load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu"))


@pytest.fixture(scope="module")
def int8_model(tiny_checkpoint: Path):
    from galactica_ext.engine.loading import LoadOptions, load_model

    options = LoadOptions(dtype="bfloat16", device="cpu", quantize="8bit")
    return load_model(str(tiny_checkpoint), options)


@pytest.fixture(scope="module")
def int8_float32_model(tiny_checkpoint: Path):
    """int8 weights in a float32 model: what a CPU without AVX-512 BF16 loads for 8 bits."""
    from galactica_ext.engine.loading import LoadOptions, load_model

    options = LoadOptions(dtype="float32", device="cpu", quantize="8bit")
    return load_model(str(tiny_checkpoint), options)


#: how far the fused step's logits may be from the modules', times their largest magnitude:
#: float32 sums in another order; bfloat16 a rounding step where a sum lands on the other side
TOLERANCE = {"float32": 2e-5, "bfloat16": 2e-2, "int8": 2e-2, "int8_float32": 2e-5}


def _caches(loaded, prompts: list[str]):
    """Two copies of one batch cache (``BatchKV``) of ``prompts``, prefilled."""
    from galactica_ext.engine.kvcache import BatchKV
    from galactica_ext.engine.prefill import prefill

    ids = [loaded.tokenizer(text, add_special_tokens=False).input_ids for text in prompts]
    ours, theirs = BatchKV(), BatchKV()
    with torch.inference_mode():
        for one in ids:
            _, layers = prefill(loaded.model, torch.device("cpu"), one, None, 0)
            ours.add(layers)
            theirs.add(layers)
    return ids, ours, theirs


@contextlib.contextmanager
def _turned_off(module, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``module``'s numba kernel switched off by its environment variable, meanwhile."""
    monkeypatch.setenv(module.kernel.env, "torch")
    module.kernel.cache_clear()
    try:
        yield
    finally:
        monkeypatch.delenv(module.kernel.env)
        module.kernel.cache_clear()


def _steps(fused_runs: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """Record what every FusedLayers.run returns."""
    from galactica_ext.engine.fused_layers import FusedLayers

    run = FusedLayers.run

    def recorded(self, *args):
        fused_runs.append(run(self, *args))
        return fused_runs[-1]

    monkeypatch.setattr(FusedLayers, "run", recorded)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8", "int8_float32"])
@pytest.mark.parametrize(
    "prompts",
    [
        ["Proteins fold because of", "The"],
        ["Proteins fold"],
        ["Proteins fold because of", "The", "Enzymes bind their", "A"],  # float32 AVX2: fused
    ],
)
def test_fused_layers_give_the_modules_logits_and_caches(
    request: pytest.FixtureRequest, dtype: str, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A padded batch of two or four (masked) and a single row (no mask), eight steps each, fed the
    fused step's own greedy tokens: logits within rounding of the modules', the same greedy
    tokens (bfloat16: wherever the top two are further apart than that), the same caches."""
    from galactica_ext.engine.decode_step import DecodeStep

    loaded = request.getfixturevalue(f"{dtype}_model")
    fused, modules = DecodeStep.build(loaded.model), DecodeStep.build(loaded.model)
    assert fused.fused is not None
    modules.fused = None
    ids, ours, theirs = _caches(loaded, prompts)
    runs: list[bool] = []
    _steps(runs, monkeypatch)
    rows = len(prompts)
    tokens = torch.tensor([[5], [9], [7], [11]][:rows])
    positions = torch.tensor([[len(one)] for one in ids])
    with torch.inference_mode():
        for _ in range(8):
            mask = None
            if rows > 1:
                mask = torch.cat([ours.mask, ours.mask.new_ones((rows, 1))], dim=1)
            got = fused(tokens, positions, ours.cache, mask)
            want = modules(tokens, positions, theirs.cache, mask)
            ours.grew()
            theirs.grew()
            if dtype in (
                "bfloat16",
                "int8",
            ):  # rounded where the modules round: mostly the same bits
                # (all of them on a 2-core EPYC; a norm left unrounded: 30%)
                assert (got == want).float().mean() >= 0.9
            got, want = got.float(), want.float()
            tolerance = TOLERANCE[dtype] * want.abs().max()
            assert (got - want).abs().max() <= tolerance
            top = want.topk(2, dim=-1).values
            clear = top[:, 0] - top[:, 1] > 2 * tolerance
            assert torch.equal(got.argmax(-1)[clear], want.argmax(-1)[clear])
            tokens, positions = got.argmax(-1, keepdim=True), positions + 1
    # every kernel takes two sequences (float32 with AVX2 code: four; bfloat16 without bfloat16
    # arithmetic: up to 32)
    assert runs == [rows <= fused.fused.rows] * 8
    for (k, v), (k2, v2) in zip(ours.layers, theirs.layers, strict=True):
        assert k.shape == k2.shape
        k, k2, v, v2 = (t.float() for t in (k, k2, v, v2))
        scale = TOLERANCE[dtype] * max(k2.abs().max(), v2.abs().max())
        assert torch.allclose(k, k2, atol=scale) and torch.allclose(v, v2, atol=scale)


def test_fused_layers_step_aside_changing_nothing(float32_model) -> None:
    """More rows than the kernels take or a cache without room for the step: run returns
    False and the caches are as they were; the step then runs the modules."""
    from galactica_ext.engine.decode_step import DecodeStep

    step = DecodeStep.build(float32_model.model)
    prompts = ["Proteins fold", "The cell", "A", "Enzymes", "Ions"][: step.fused.rows + 1]
    _, three, _ = _caches(float32_model, prompts)
    x = torch.zeros((len(prompts), 1, step.width))
    before = [(k.clone(), v.clone()) for k, v in three.layers]
    assert not step.fused.run(x, three.cache, None)
    _, full, _ = _caches(float32_model, ["Proteins fold"])
    for layer in full.cache.layers:
        layer._grow(layer.length)  # no room left
    length = full.cache.layers[0].length
    x = torch.zeros((1, 1, step.width))
    assert not step.fused.run(x, full.cache, None)
    assert torch.equal(x, torch.zeros_like(x))
    for (k, v), (k2, v2) in zip(three.layers, before, strict=True):
        assert torch.equal(k, k2) and torch.equal(v, v2)
    with torch.inference_mode():  # the modules' path grows the cache and goes on
        logits = step(torch.tensor([[5]]), torch.tensor([[length]]), full.cache)
    assert torch.isfinite(logits).all()
    assert full.cache.layers[0].length == length + 1


def test_fused_layers_apply_to_plain_weights_only_and_can_be_turned_off(
    tiny_checkpoint: Path,
    float32_model,
    bfloat16_model,
    int8_model,
    int8_float32_model,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """int8 weights without their plain copy have no few-row kernel: no fused layers; float32,
    bfloat16 and int8 (a bfloat16 model's) have them, each with its kernel, unless
    $GALACTICA_FUSED_LAYERS=torch or $GALACTICA_DECODE_ATTENTION=torch."""
    from galactica_ext.engine import bf16_attention, few_rows, fused_layers
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.loading import LoadOptions, load_model

    monkeypatch.setattr(few_rows, "BF16_PLAIN_LIMIT", 0)  # int8's plain copy too
    packed_only = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", quantize="8bit"))
    monkeypatch.undo()
    assert packed_only.model.lm_head.few_rows is None
    step = DecodeStep.build(packed_only.model)
    assert step is not None and step.fused is None
    with _turned_off(fused_layers, monkeypatch):
        assert DecodeStep.build(float32_model.model).fused is None
    with _turned_off(bf16_attention, monkeypatch):  # they attend by its kernel
        assert DecodeStep.build(bfloat16_model.model).fused is None
    assert DecodeStep.build(float32_model.model).fused.dtype == torch.float32
    assert DecodeStep.build(bfloat16_model.model).fused.dtype == torch.bfloat16
    for model, dtype in ((int8_model, torch.bfloat16), (int8_float32_model, torch.float32)):
        int8_step = DecodeStep.build(model.model).fused
        assert int8_step is not None and int8_step.dtype == dtype
        assert len(int8_step.layers[0][1][0]._arrays()) == 3  # int8 weight, scales, bias
