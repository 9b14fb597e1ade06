"""The GALACTICA tokenizer with the fixes the hub's files need."""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..tasks import escape_sequences

#: Special ids of every GALACTICA tokenizer; the hub's tokenizer files leave them unset.
BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "pad_token": "<pad>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
}


def load_tokenizer(source: str, **hub_kwargs: Any) -> PreTrainedTokenizerBase:
    """Load a GALACTICA tokenizer and set what the hub leaves out: bos 0, pad 1, eos 2, unk 3,
    left padding for batches, and no ``token_type_ids`` in its outputs."""
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **hub_kwargs)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    for name, expected in (("bos", BOS_ID), ("pad", PAD_ID), ("eos", EOS_ID), ("unk", UNK_ID)):
        got = getattr(tokenizer, f"{name}_token_id")
        if got != expected:
            raise ValueError(
                f"{source}: {name} token has id {got}, a GALACTICA tokenizer has {expected}"
            )
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a prompt as GALACTICA expects them: sequence spans one character per token,
    and no BOS."""
    return tokenizer.encode(escape_sequences(text), add_special_tokens=False)
