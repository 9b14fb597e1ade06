"""Task prompts on the real GALACTICA tokenizer: whatever the user types, each task's prompt
ends in its control tokens (issue 11.2), both as vLLM tokenizes the prompt (as sent) and as
our engine does (escaping it once more first). Property-based (hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from galactica_ext import tasks
from galactica_ext.prompts import escape_sequences
from galactica_ext.prompts.escape import SPLIT_MARKER

NEWLINE, START_REF_ID, WORK_ID = 221, 4, 9
ANSWER = [6402, 48]  # "Answer", ":"


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))


def as_vllm(tok: Any, prompt: str) -> list[int]:
    """The ids vLLM uses: the prompt tokenized as sent (no BOS)."""
    return tok.encode(prompt, add_special_tokens=False).ids


def as_engine(tok: Any, prompt: str) -> list[int]:
    """The ids our engine uses (``engine.tokenizer.encode``: escape, then tokenize)."""
    return tok.encode(escape_sequences(prompt), add_special_tokens=False).ids


_PIECES = [
    "[START_DNA]", "[END_DNA]", "[START_I_SMILES]", "[END_I_SMILES]", "[START_AMINO]",
    "[START_SMILES]", "[END_SMILES]", "[START_REF]", "[END_REF]", "<work>", "</s>", "\\[",
    "CC(=O)O", "Aspirin", " ", "\n", "\n\n", "é", "x²", "Answer:", SPLIT_MARKER, "1",
]  # fmt: skip
user_text = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.text(max_size=6)), min_size=1, max_size=12
).map("".join)
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _ends(tok: Any, prompt: str) -> list[list[int]]:
    return [as_vllm(tok, prompt), as_engine(tok, prompt)]


@_SETTINGS
@given(user_text)
def test_cite_ends_in_start_ref(tok: Any, text: str) -> None:
    assume(text.strip())
    stripped = text.rstrip()
    assume(stripped.rfind("[START_REF]") <= stripped.rfind("[END_REF]"))  # no reference open
    prompt = tasks.cite(text).prompt
    for ids in _ends(tok, prompt):
        assert ids[-1] == START_REF_ID


@_SETTINGS
@given(user_text)
def test_ask_ends_in_answer(tok: Any, text: str) -> None:
    assume(text.strip())
    for ids in _ends(tok, tasks.ask(text).prompt):
        assert ids[-4:] == [NEWLINE, NEWLINE, *ANSWER]


@_SETTINGS
@given(user_text)
def test_work_ends_in_work(tok: Any, text: str) -> None:
    assume(text.strip())
    for ids in _ends(tok, tasks.work(text).prompt):
        assert ids[-3:] == [NEWLINE, NEWLINE, WORK_ID]


@_SETTINGS
@given(user_text)
def test_summarise_ends_in_tldr(tok: Any, text: str) -> None:
    assume(text.strip())
    suffix = as_vllm(tok, "\n\nTLDR:")
    for ids in _ends(tok, tasks.summarise(text).prompt):
        assert ids[-len(suffix) :] == suffix


@_SETTINGS
@given(user_text)
def test_equation_ends_in_display_math(tok: Any, text: str) -> None:
    assume(text.strip())
    suffix = as_vllm(tok, "\\[")
    for ids in _ends(tok, tasks.equation(text).prompt):
        assert ids[-len(suffix) :] == suffix


@_SETTINGS
@given(user_text)
def test_every_task_gives_vllm_and_our_engine_the_same_ids(tok: Any, text: str) -> None:
    """Our engine escapes prompts again; a task's prompt is escaped already, so both see the
    same tokens."""
    assume(text.strip())
    for task in tasks.TASKS:
        prompt = tasks.build(task, text).prompt
        assert as_vllm(tok, prompt) == as_engine(tok, prompt), task


def test_issue_11_2_an_unclosed_span_keeps_the_control_token(tok: Any) -> None:
    prompt = tasks.cite("Aspirin [START_I_SMILES]CC(=O)O").prompt
    for ids in _ends(tok, prompt):
        assert ids[-1] == START_REF_ID
        assert ids[-9:-2] == as_vllm(tok, "C C ( = O ) O".replace(" ", SPLIT_MARKER))
    for ids in _ends(tok, tasks.ask("Is [START_AMINO]MKT a protein?").prompt):
        assert ids[-2:] == ANSWER
    for ids in _ends(tok, tasks.ask("What is [START_DNA]").prompt):  # an empty open span
        assert ids[-4:] == [NEWLINE, NEWLINE, *ANSWER]


def test_a_new_document_starts_with_the_end_of_document_token(tok: Any) -> None:
    for task in tasks.TASKS:
        ids = as_vllm(tok, tasks.build(task, "Proteins", new_doc=True).prompt)
        assert ids[0] == 2 and ids.count(2) == 1, task
