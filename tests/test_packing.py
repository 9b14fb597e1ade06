"""oneDNN-prepacked weights (engine/packing.py): same results as the plain model, same counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_model_decodes_like_the_plain_one(tiny_checkpoint: Path, dtype: str) -> None:
    from transformers import OPTForCausalLM

    from galactica_ext.engine.loading import LoadOptions, load_model
    from galactica_ext.engine.packing import PackedLinear, can_pack

    torch_dtype = getattr(torch, dtype)
    if not can_pack(torch_dtype, torch.device("cpu")):
        pytest.skip(f"oneDNN packing of {dtype} is not available on this CPU")
    loaded = load_model(str(tiny_checkpoint), LoadOptions(dtype=dtype, device="cpu"))
    plain = OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch_dtype).eval()
    model = loaded.model
    assert isinstance(model.lm_head, PackedLinear)
    assert isinstance(model.model.decoder.layers[0].fc1, PackedLinear)
    # the tied output projection still shares the embeddings; counts are unchanged
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert loaded.describe()["memory_bytes"] == sum(
        p.numel() * p.element_size() for p in plain.parameters()
    )
    ids = loaded.tokenizer("Proteins fold because", return_tensors="pt").input_ids
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    with torch.inference_mode():
        assert torch.equal(model.generate(ids, **kwargs), plain.generate(ids, **kwargs))
        packed_logits = model(input_ids=ids).logits.float()
        plain_logits = plain(input_ids=ids).logits.float()
        beams = model.generate(ids, **kwargs, num_beams=3, num_return_sequences=2)
    tolerance = 1e-4 if dtype == "float32" else 1e-2
    assert torch.allclose(packed_logits, plain_logits, atol=tolerance, rtol=tolerance)
    assert beams.shape[0] == 2


def test_packing_can_be_turned_off(tiny_checkpoint: Path) -> None:
    from galactica_ext.engine.loading import LoadOptions, load_model

    loaded = load_model(
        str(tiny_checkpoint), LoadOptions(dtype="float32", device="cpu", pack_weights=False)
    )
    assert type(loaded.model.lm_head) is torch.nn.Linear
