"""The real GALACTICA tokenizer and the fixes the engine applies to the hub's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from galactica_ext import tasks
from galactica_ext.engine import encode

SPECIAL = {
    "<s>": 0,
    "<pad>": 1,
    "</s>": 2,
    "<unk>": 3,
    "[START_REF]": 4,
    "[END_REF]": 5,
    "[IMAGE]": 6,
    "<fragments>": 7,
    "</fragments>": 8,
    "<work>": 9,
    "</work>": 10,
    "[START_SUP]": 11,
    "[END_SUP]": 12,
    "[START_SUB]": 13,
    "[END_SUB]": 14,
    "[START_DNA]": 15,
    "[END_DNA]": 16,
    "[START_AMINO]": 17,
    "[END_AMINO]": 18,
    "[START_SMILES]": 19,
    "[END_SMILES]": 20,
    "[START_I_SMILES]": 21,
    "[END_I_SMILES]": 22,
}


def test_known_prompt_ids(tokenizer: Any) -> None:
    assert encode(tokenizer, "The Transformer architecture [START_REF]") == [
        592,
        23121,
        5219,
        243,
        4,
    ]
    prompt = tasks.cite("The Transformer architecture").prompt
    assert encode(tokenizer, prompt) == [592, 23121, 5219, 243, 4]


def test_special_token_ids(tokenizer: Any) -> None:
    assert len(tokenizer) == 50000
    for token, token_id in SPECIAL.items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id
        assert encode(tokenizer, token) == [token_id]
    assert encode(tokenizer, "[START_SMILES][END_SMILES]") == [19, 20]


def test_special_ids_are_set_on_the_loaded_tokenizer(tokenizer: Any, tokenizer_dir: Path) -> None:
    raw = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert raw.bos_token is None and raw.pad_token is None  # what the hub's files leave out
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id) == (0, 1)
    assert (tokenizer.eos_token_id, tokenizer.unk_token_id) == (2, 3)
    assert (tokenizer.bos_token, tokenizer.pad_token) == ("<s>", "<pad>")
    assert (tokenizer.eos_token, tokenizer.unk_token) == ("</s>", "<unk>")
    assert len(tokenizer) == len(raw)  # nothing added: the tokens were there


def test_no_bos_is_added(tokenizer: Any) -> None:
    assert encode(tokenizer, "Hello")[0] != 0
    assert encode(tokenizer, "</s>Hello")[0] == 2  # a new document starts with </s>


def test_left_padding_and_no_token_type_ids(tokenizer: Any) -> None:
    batch = tokenizer(["a", "The Transformer architecture"], padding=True)
    assert "token_type_ids" not in batch
    short, long = batch["input_ids"]
    assert len(short) == len(long) == 3
    assert short[:2] == [1, 1] and short[2] != 1
    assert batch["attention_mask"] == [[0, 0, 1], [1, 1, 1]]
    assert "token_type_ids" not in tokenizer("one", return_tensors="pt")


SEQUENCES = {
    "SMILES": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "I_SMILES": "C[C@@H](C(=O)O)N",
    "DNA": "ACGTTGCAAATGCCGTA",
    "AMINO": "MIRLGAPQTLVLLTLLVAAVLRCQG",
}


@pytest.mark.parametrize("kind", SEQUENCES)
def test_one_token_per_character_in_spans(tokenizer: Any, kind: str) -> None:
    seq = SEQUENCES[kind]
    start, end = f"[START_{kind}]", f"[END_{kind}]"
    ids = encode(tokenizer, f"Here: {start}{seq}{end} done")
    begin, stop = (
        ids.index(tokenizer.convert_tokens_to_ids(start)),
        ids.index(tokenizer.convert_tokens_to_ids(end)),
    )
    inside = ids[begin + 1 : stop]
    assert [tokenizer.decode([i]) for i in inside] == list(seq)
    # without the escaping the tokenizer merges characters: the fix matters
    plain = tokenizer.encode(f"{start}{seq}{end}", add_special_tokens=False)
    assert len(plain) - 2 < len(seq)
    assert tasks.SPLIT_MARKER not in tokenizer.decode(ids)
    assert tokenizer.decode(ids) == f"Here: {start}{seq}{end} done"


@pytest.mark.parametrize("kind", SEQUENCES)
def test_unclosed_span_at_the_end(tokenizer: Any, kind: str) -> None:
    seq = SEQUENCES[kind]
    ids = encode(tokenizer, f"The sequence [START_{kind}]{seq}")
    start_id = tokenizer.convert_tokens_to_ids(f"[START_{kind}]")
    assert [tokenizer.decode([i]) for i in ids[ids.index(start_id) + 1 :]] == list(seq)


def test_span_markers_are_single_tokens(tokenizer: Any) -> None:
    ids = {
        marker: encode(tokenizer, marker)
        for kind in SEQUENCES
        for marker in (f"[START_{kind}]", f"[END_{kind}]")
    }
    assert all(len(v) == 1 for v in ids.values())
    assert sorted(v[0] for v in ids.values()) == list(range(15, 23))


def test_task_prompts_with_spans_are_not_split_twice(tokenizer: Any) -> None:
    """A task escapes its prompt and the engine encodes it: the marker must not leak in."""
    req = tasks.summarise("Aspirin is [START_SMILES]CC(=O)O[END_SMILES].")
    ids = encode(tokenizer, req.prompt)
    pieces = [tokenizer.decode([i]) for i in ids]
    begin = pieces.index("[START_SMILES]")
    assert pieces[begin : begin + 9] == ["[START_SMILES]", *"CC(=O)O", "[END_SMILES]"]
    assert tokenizer.decode(ids) == "Aspirin is [START_SMILES]CC(=O)O[END_SMILES].\n\nTLDR:"


def test_an_unclosed_span_does_not_split_later_markers(tokenizer: Any) -> None:
    ids = encode(tokenizer, "[START_DNA]ACG and [START_SMILES]CO[END_SMILES]")
    assert ids[0] == 15 and ids[-4:] == [19, 57, 69, 20]  # markers whole, CO per character


def test_task_boundaries(tokenizer: Any) -> None:
    """The stop strings of the tasks span several tokens: the text stream must join them."""
    assert len(encode(tokenizer, "\\]")) == 2
    assert len(encode(tokenizer, "\n\n")) == 2
    assert encode(tokenizer, "</work>") == [10]
