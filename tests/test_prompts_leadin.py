"""Issue 11.1 end to end on our engine: an answer that starts with a blank line is not cut
empty. The request carries ``min_tokens`` (3: " ", "\\n", "\\n") and, as vLLM's detokenizer,
the engine ignores stop strings within those tokens; the task's parser then counts the stop
only after some text. Tokens are forced (the tiny model's weights are random)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from galactica_ext import tasks

pytest.importorskip("torch")


def forcing(script: Sequence[int]) -> Callable[[int, Any], list[int]]:
    """Allow exactly ``script[i]`` as the i-th generated token."""
    prompt_len: list[int] = []

    def allowed(_batch: int, ids: Any) -> list[int]:
        if not prompt_len:
            prompt_len.append(len(ids))
        step = len(ids) - prompt_len[0]
        return [script[step]] if step < len(script) else []

    return allowed


def generate(model: Any, request: tasks.GenerationRequest, answer: str) -> str:
    from galactica_ext.engine import SamplingParams

    engine = model.engine
    script = engine.tokenizer.encode(answer, add_special_tokens=False)
    params = SamplingParams(
        max_tokens=len(script) + 2,
        stop=request.stop,
        min_tokens=request.min_tokens,
        prefix_allowed_tokens_fn=forcing(script),
    )
    return engine.generate(request.prompt, params)[0].text


def test_text_stream_ignores_stops_within_min_tokens(tokenizer: Any) -> None:
    from galactica_ext.engine.textstream import TextStream

    ids = tokenizer.encode(" \n\nNotch is a pathway.\n\nQuestion", add_special_tokens=False)
    assert ids[:3] == [243, 221, 221]
    lead = TextStream(tokenizer, ["\n\n"], False, min_tokens=3)
    shown = "".join(lead.push(i) for i in ids if not lead.stopped)
    assert lead.stopped and lead.text == " \n\nNotch is a pathway."
    assert shown + lead.flush() == lead.text
    plain = TextStream(tokenizer, ["\n\n"], False)
    for i in ids:
        plain.push(i)
        if plain.stopped:
            break
    assert plain.text == " "  # without min_tokens the blank line ends it at once


def test_ask_after_a_blank_line_on_our_engine(tiny_model: Any) -> None:
    request = tasks.ask("What is the notch signaling pathway?")
    raw = generate(tiny_model, request, " \n\nNotch signaling is a pathway.\n\nQuestion: more")
    assert raw == " \n\nNotch signaling is a pathway."
    assert tasks.parse(request, [raw])["text"] == "Notch signaling is a pathway."


def test_a_short_answer_still_stops_at_its_paragraph(tiny_model: Any) -> None:
    request = tasks.ask("What is 2+2?")
    raw = generate(tiny_model, request, " 4\n\nQuestion: What is 3+3?\n\nAnswer: 6")
    assert tasks.parse(request, [raw])["text"] == "4"


def test_protein_keywords_after_a_blank_line_on_our_engine(tiny_model: Any) -> None:
    request = tasks.complete("[START_AMINO]MKT[END_AMINO] ## Keywords", max_tokens=32)
    raw = generate(tiny_model, request, "\n\nCytoplasm, Transferase\n\n## References")
    assert tasks.parse(request, [raw])["text"] == "\n\nCytoplasm, Transferase"
