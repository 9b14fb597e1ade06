"""Sequence escaping (issue 8.2): linear time, the old regular expression's results,
idempotent, and changes only inside spans. Property-based (hypothesis); no clocks: time is
measured as the characters the scans look at (``escape_with_work``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galactica_ext.prompts.escape import (
    SPLIT_MARKER,
    escape_sequences,
    escape_with_work,
    split_chars,
)

M = SPLIT_MARKER

# ---- the reference: the regular expressions escaping used before (quadratic) ------------
_KINDS = "I_SMILES|SMILES|DNA|AMINO"
_CLOSED = re.compile(rf"(\[START_({_KINDS})\])(.*?)(\[END_\2\])", re.DOTALL)
_OPEN_AT_END = re.compile(
    rf"(\[START_({_KINDS})\])((?:(?!\[(?:START|END)_(?:{_KINDS})\]).)*)$", re.DOTALL
)


def reference(text: str) -> str:
    text = _CLOSED.sub(lambda m: f"{m.group(1)}{split_chars(m.group(3))}{M}{m.group(4)}", text)
    return _OPEN_AT_END.sub(lambda m: f"{m.group(1)}{split_chars(m.group(3))}", text)


_MARKERS = [f"[{edge}_{kind}]" for kind in _KINDS.split("|") for edge in ("START", "END")]
_PIECES = [*_MARKERS, "[START_", "[END_", "[", "]", "[START_REF]", "C", "(=O)", "A", "é", " ", "\n"]

texts = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)
texts_with_markers = st.lists(st.sampled_from([*_PIECES, M]), max_size=30).map("".join)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(texts)
def test_same_results_as_the_regular_expressions(text: str) -> None:
    assert escape_sequences(text) == reference(text)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(texts_with_markers)
def test_idempotent(text: str) -> None:
    once = escape_sequences(text)
    assert escape_sequences(once) == once


@settings(max_examples=400, deadline=None, derandomize=True)
@given(texts_with_markers)
def test_only_split_markers_change_and_only_inside_spans(text: str) -> None:
    escaped = escape_sequences(text)
    assert escaped.replace(M, "") == text.replace(M, "")
    if "[START_" not in text:
        assert escaped == text


@settings(max_examples=300, deadline=None, derandomize=True)
@given(texts_with_markers)
def test_work_is_linear_in_the_text_and_the_result(text: str) -> None:
    escaped, work = escape_with_work(text)
    assert work <= 14 * (len(text) + len(escaped)) + 64


@pytest.mark.parametrize(
    "text",
    [
        "[START_DNA]" * 8000,  # issue 8.2: 15 s with the regular expression
        "[START_DNA]" * 8000 + "[END_SMILES]",
        "[START_" * 12000,
        "[START_SMILES][START_DNA]" * 4000 + "[END_DNA]",
        "[START_AMINO]" + "MKT" * 20000,
        "[START_I_SMILES]C[END_I_SMILES] " * 3000,
        ("x" * 50 + "[START_DNA]ACGT") * 1000,
    ],
)
def test_adversarial_inputs_take_linear_work(text: str) -> None:
    escaped, work = escape_with_work(text)
    assert work <= 14 * (len(text) + len(escaped)) + 64
    # and the result is the one the regular expression gives on a small version of the input
    small = text[: len(text) // 40]
    assert escape_sequences(small) == reference(small)


def test_an_unclosed_start_repeated_is_left_alone_but_the_last_one_escapes() -> None:
    text = "[START_DNA]" * 3 + "AC"
    assert escape_sequences(text) == "[START_DNA]" * 3 + f"{M}A{M}C"


def test_an_open_span_already_escaped_keeps_what_follows() -> None:
    """A task's suffix after the user's escaped open span is not split again (issue 11.2):
    our engine escapes every prompt once more on its way to the tokenizer."""
    prompt = escape_sequences("Aspirin [START_I_SMILES]CC") + " [START_REF]"
    assert prompt == f"Aspirin [START_I_SMILES]{M}C{M}C [START_REF]"
    assert escape_sequences(prompt) == prompt
