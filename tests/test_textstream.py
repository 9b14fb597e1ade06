"""TextStream: incremental decoding with stop strings, on the real tokenizer's ids."""

from __future__ import annotations

from typing import Any

import pytest

from galactica_ext.engine.textstream import TextStream


def run(
    tokenizer: Any, ids: list[int], stops: list[str], skip: bool = False
) -> tuple[list[str], TextStream]:
    """Push ids until the stream stops; the pieces handed out, then the flushed tail."""
    stream = TextStream(tokenizer, stops, skip_special_tokens=skip)
    pieces = []
    for token in ids:
        pieces.append(stream.push(token))
        if stream.stopped:
            break
    pieces.append(stream.flush())
    return pieces, stream


def ids_of(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_no_stops_hands_out_everything_in_order(tokenizer: Any) -> None:
    text = " hello world. Next"
    pieces, stream = run(tokenizer, ids_of(tokenizer, text), [])
    assert pieces[:-1] == [" he", "llo", " world", ".", " Next"]
    assert "".join(pieces) == stream.text == text
    assert not stream.stopped


def test_stop_string_across_tokens(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, " hello world. Next")  # " he" "llo" " world" "." " Next"
    pieces, stream = run(tokenizer, ids, ["lo wor"])
    assert stream.stopped
    assert stream.text == "".join(pieces) == " hel"
    assert pieces[0] == " he"  # " he" cannot start "lo wor": handed out at once
    assert pieces[1] == "l"  # "lo" might be the stop's start: held back


def test_text_that_may_start_a_stop_is_held_then_released(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, "x \\[ y")  # "x" " " "\\" "[" " y": "\\" could start "\\]"
    stream = TextStream(tokenizer, ["\\]"], skip_special_tokens=False)
    assert [stream.push(i) for i in ids] == ["x", " ", "", "\\[", " y"]
    assert not stream.stopped


def test_equation_stop(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, " E = mc^2 \\] where")
    pieces, stream = run(tokenizer, ids, ["\\]"])
    assert stream.text == "".join(pieces) == " E = mc^2 "
    assert stream.stopped


def test_paragraph_stop_held_until_flush(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, " Proteins fold.\n")
    stream = TextStream(tokenizer, ["\n\n"], skip_special_tokens=False)
    out = "".join(stream.push(i) for i in ids)
    assert out == " Proteins fold."  # the newline might begin "\n\n"
    assert stream.flush() == "\n"  # generation ended without a second one
    assert stream.text == " Proteins fold.\n"


def test_earliest_of_several_stops_wins(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, " alpha beta gamma delta")
    _, stream = run(tokenizer, ids, ["delta", " beta", "gamma"])
    assert stream.text == " alpha"


def test_stop_inside_one_token(tokenizer: Any) -> None:
    _, stream = run(tokenizer, ids_of(tokenizer, " hello world"), ["or"])
    assert stream.text == " hello w"


def test_stop_at_the_first_token(tokenizer: Any) -> None:
    pieces, stream = run(tokenizer, ids_of(tokenizer, "\n\nNext"), ["\n\n"])
    assert stream.stopped and stream.text == "" and "".join(pieces) == ""


def test_special_token_as_stop_string(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, " Attention Is All You Need, Vaswani[END_REF] more")
    assert 5 in ids
    pieces, stream = run(tokenizer, ids, ["[END_REF]"])
    assert stream.stopped
    assert "".join(pieces) == stream.text == " Attention Is All You Need, Vaswani"


def test_special_tokens_kept_or_skipped(tokenizer: Any) -> None:
    ids = ids_of(tokenizer, "[START_REF] Title, Author[END_REF]")
    _, kept = run(tokenizer, ids, [])
    assert kept.text == "[START_REF] Title, Author[END_REF]"
    _, skipped = run(tokenizer, ids, [], skip=True)
    assert skipped.text == " Title, Author"


def test_split_utf8_is_held_back(tokenizer: Any) -> None:
    text = "😀 ok 日本語"
    ids = ids_of(tokenizer, text)
    pieces, stream = run(tokenizer, ids, [])
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == stream.text == text
    assert pieces[:4] == ["", "", "", "😀"]


@pytest.mark.parametrize("stops", [[""], []])
def test_empty_stop_strings_are_ignored(tokenizer: Any, stops: list[str]) -> None:
    pieces, stream = run(tokenizer, ids_of(tokenizer, "abc"), stops)
    assert "".join(pieces) == "abc" and not stream.stopped


def test_nothing_is_handed_out_twice_after_a_stop(tokenizer: Any) -> None:
    stream = TextStream(tokenizer, ["."], skip_special_tokens=False)
    ids = ids_of(tokenizer, " hello world. Next")
    out = [stream.push(i) for i in ids]  # the engine stops pushing; this checks it could not leak
    assert "".join(out) + stream.flush() == " hello world"
