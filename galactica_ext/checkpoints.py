"""Random-weight GALACTICA checkpoints for tests and benchmarks, from the real tokenizer.

The hub can't always be reached (CI, air-gapped machines): these build an OPT model of a
GALACTICA shape from a tokenizer directory (``$GALACTICA_TOKENIZER_DIR``) and save it beside
copies of the tokenizer files, so the engine loads it like any local model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TOKENIZER_ENV = "GALACTICA_TOKENIZER_DIR"
_DEFAULT_TOKENIZER = (
    Path(__file__).resolve().parents[1].parent / "shared/fixtures/galactica-tokenizer"
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

#: shapes by name: hidden size, layers, heads, ffn
SHAPES = {
    "tiny": (64, 2, 4, 256),
    "125m": (768, 12, 12, 3072),
    "1.3b": (2048, 24, 32, 8192),
}


def tokenizer_dir() -> Path:
    """The GALACTICA tokenizer files: ``$GALACTICA_TOKENIZER_DIR`` or the shared fixture."""
    path = Path(os.environ.get(TOKENIZER_ENV) or _DEFAULT_TOKENIZER)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"no GALACTICA tokenizer at {path}: set {TOKENIZER_ENV} to a directory holding "
            "tokenizer.json and config.json"
        )
    return path


def build_random_checkpoint(out: str | Path, shape: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weight GALACTICA-shaped model with the real tokenizer into ``out``.

    Reuses ``out`` when it already holds a checkpoint of that shape.
    """
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: use one of {', '.join(SHAPES)}")
    out = Path(out)
    marker = out / "galactica-ext-shape.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"shape": shape, "seed": seed}:
        return out
    source = tokenizer_dir()
    hidden, layers, heads, ffn = SHAPES[shape]
    config = OPTConfig.from_pretrained(source)
    config.update(
        {
            "hidden_size": hidden,
            "word_embed_proj_dim": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "ffn_dim": ffn,
            "dropout": 0.0,
            "attention_dropout": 0.0,
        }
    )
    torch.manual_seed(seed)
    model = OPTForCausalLM(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    marker.write_text(json.dumps({"shape": shape, "seed": seed}))
    return out
