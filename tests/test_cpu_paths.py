"""CPU paths of the engine beyond prepacking: weights read straight into their dtype
(engine/direct.py), int8 weights (engine/int8.py), fused q/k/v and fc1+GELU (engine/cpu.py),
and the thread calibration. Every fast path is checked against the plain transformers model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def _plain(checkpoint: Path, dtype: torch.dtype):
    from transformers import OPTForCausalLM

    return OPTForCausalLM.from_pretrained(str(checkpoint), dtype=dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_direct_load_gives_from_pretrained_weights(tiny_checkpoint: Path, dtype) -> None:
    from transformers import AutoConfig

    from galactica_ext.engine.direct import load_direct

    config = AutoConfig.from_pretrained(str(tiny_checkpoint))
    model = load_direct(str(tiny_checkpoint), config, dtype)
    assert model is not None
    plain = _plain(tiny_checkpoint, dtype)
    got, want = model.state_dict(), plain.state_dict()
    assert set(got) == set(want)
    for name, tensor in want.items():
        assert got[name].dtype == dtype, name
        assert torch.equal(got[name], tensor), name
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert model.config._attn_implementation == plain.config._attn_implementation
    assert model.generation_config.eos_token_id == plain.generation_config.eos_token_id


def test_direct_load_reads_shards_and_small_slices(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoConfig

    from galactica_ext.engine import direct

    plain = _plain(tiny_checkpoint, torch.float32)
    plain.save_pretrained(tmp_path, max_shard_size="1MB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    monkeypatch.setattr(direct, "CHUNK_BYTES", 1000)  # many slices per tensor, a short last one
    config = AutoConfig.from_pretrained(str(tiny_checkpoint))
    model = direct.load_direct(str(tmp_path), config, torch.bfloat16)
    assert model is not None
    for name, tensor in plain.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor.to(torch.bfloat16)), name


def test_direct_load_declines_what_it_cannot_read(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig

    from galactica_ext.engine.direct import load_direct
    from galactica_ext.engine.loading import LoadOptions, load_model

    config = AutoConfig.from_pretrained(str(tiny_checkpoint))
    assert load_direct(str(tmp_path), config, torch.float32) is None  # no safetensors
    # a checkpoint missing a weight: declined, not half-loaded
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_checkpoint / "model.safetensors"))
    state.pop("model.decoder.final_layer_norm.bias")
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    assert load_direct(str(tmp_path), config, torch.float32) is None
    # a pytorch_model.bin checkpoint still loads, through from_pretrained
    bin_dir = tmp_path / "bin"
    _plain(tiny_checkpoint, torch.float32).save_pretrained(bin_dir, safe_serialization=False)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (bin_dir / name).write_bytes((tiny_checkpoint / name).read_bytes())
    loaded = load_model(str(bin_dir), LoadOptions(dtype="float32", device="cpu"))
    assert loaded.describe()["parameters"] > 0
