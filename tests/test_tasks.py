"""The GALACTICA prompt language (pure functions, no model): prompts, stops, limits, parsing."""

from __future__ import annotations

import pytest

from galactica_ext import tasks
from galactica_ext.specs import CONTEXT_LENGTH
from galactica_ext.tasks import (
    END_REF,
    END_REF_ID,
    SPLIT_MARKER,
    START_REF,
    build,
    escape_sequences,
    parse,
    parse_reference,
)

M = SPLIT_MARKER


# ---- cite ---------------------------------------------------------------------------------


def test_cite_appends_start_ref_and_stops_at_end_ref() -> None:
    req = tasks.cite("The Transformer architecture")
    assert req.task == "cite"
    assert req.prompt == "The Transformer architecture [START_REF]"
    assert req.stop == [END_REF]
    assert req.stop_token_ids == [END_REF_ID] == [5]
    assert req.suffix == START_REF


def test_cite_suggestions_by_beam_search() -> None:
    req = tasks.cite("Graph neural networks", n=4)
    assert (req.n, req.num_beams, req.temperature, req.diversity_penalty) == (4, 4, 0.0, 0.0)
    diverse = tasks.cite("Graph neural networks", n=4, diverse=True)
    assert diverse.num_beams == 4 and diverse.diversity_penalty > 0
    assert tasks.cite("x", n=1, diverse=True).diversity_penalty == 0.0  # one beam: no groups


def test_cite_by_sampling_when_top_p_given() -> None:
    req = tasks.cite("Graph neural networks", n=2, top_p=0.9, seed=3)
    assert (req.num_beams, req.n, req.top_p, req.seed) == (1, 2, 0.9, 3)
    assert req.temperature > 0


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("Transformers  \n", "Transformers [START_REF]"),  # trailing space is not doubled
        ("Transformers [START_REF]", "Transformers [START_REF]"),  # already open
        ("Transformers [START_REF]  ", "Transformers [START_REF]"),
        ("Transformers [START_REF] Attention Is", "Transformers [START_REF] Attention Is"),
        (
            "As in [START_REF] Attention Is All You Need, Vaswani[END_REF] and",
            "As in [START_REF] Attention Is All You Need, Vaswani[END_REF] and [START_REF]",
        ),
    ],
)
def test_cite_opens_a_reference_only_when_none_is_open(text: str, prompt: str) -> None:
    assert tasks.cite(text).prompt == prompt


def test_new_document_starts_with_eos() -> None:
    assert tasks.cite("Transformers", new_doc=True).prompt == "</s>Transformers [START_REF]"
    assert tasks.ask("What is DNA?", new_doc=True).prompt.startswith("</s>Question:")
    assert tasks.cite("</s>Transformers", new_doc=True).prompt.count("</s>") == 1


# ---- the other tasks ------------------------------------------------------------------------


def test_equation() -> None:
    req = tasks.equation("The Schrodinger equation")
    assert req.prompt == "The Schrodinger equation\n\n\\["
    assert req.stop == ["\\]"]
    assert tasks.equation("The energy of a body at rest: \\[").prompt.endswith("rest: \\[")


def test_summarise() -> None:
    req = tasks.summarise("Proteins fold.\nThey do.  ")
    assert req.prompt == "Proteins fold.\nThey do.\n\nTLDR:"
    assert req.stop == ["\n\n"]
    assert build("summarize", "Proteins fold.").prompt == req.prompt.replace("\nThey do.", "")


def test_ask() -> None:
    req = tasks.ask("  What is the Schwarzschild radius? ")
    assert req.prompt == "Question: What is the Schwarzschild radius?\n\nAnswer:"
    assert req.stop == ["\n\n"]


def test_work() -> None:
    req = tasks.work("What is 2+3*4?")
    assert req.prompt == "Question: What is 2+3*4?\n\n<work>"
    # the answer comes after </work> (issue 11.3): generation goes on until the next question
    assert tasks.WORK_END not in req.stop and req.stop == ["\n\nQuestion:"]


def test_complete() -> None:
    req = tasks.complete("The first law of thermodynamics ", temperature=0.5, top_k=5, seed=1)
    assert req.prompt == "The first law of thermodynamics "  # kept exactly: ghost text follows
    assert req.stop == ["\n\n"]
    assert (req.temperature, req.top_k, req.seed, req.n, req.num_beams) == (0.5, 5, 1, 1, 1)
    assert tasks.complete("# a comment", stop_at_line=True).stop == ["\n"]


@pytest.mark.parametrize("task", tasks.TASKS)
def test_every_task_leaves_room_for_its_tokens(task: str) -> None:
    req = build(task, "Some text", max_tokens=100)
    assert req.task == task
    assert req.max_tokens == 100
    assert req.truncate_prompt_tokens == CONTEXT_LENGTH - 100
    assert req.to_dict()["prompt"] == req.prompt


def test_build_rejects_unknown_tasks_and_options() -> None:
    with pytest.raises(ValueError, match="cite, equation, summarise, complete, ask, work or a"):
        build("translate", "text")
    with pytest.raises(ValueError, match="equation"):
        build("equation", "text", colour="red")


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused(task: str, text: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        build(task, text)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_text_must_be_a_string(task: str) -> None:
    with pytest.raises(TypeError):
        build(task, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("max_tokens", [0, -1, CONTEXT_LENGTH, 10**6])
def test_absurd_max_tokens(task: str, max_tokens: int) -> None:
    with pytest.raises(ValueError, match=r"max_tokens.*2047"):
        build(task, "text", max_tokens=max_tokens)


@pytest.mark.parametrize("max_tokens", [True, 1.5, "12", None])
def test_max_tokens_must_be_an_integer(max_tokens: object) -> None:
    with pytest.raises(TypeError, match="max_tokens"):
        tasks.complete("text", max_tokens=max_tokens)  # type: ignore[arg-type]


def test_max_tokens_limits_are_inclusive() -> None:
    assert tasks.complete("text", max_tokens=1).max_tokens == 1
    assert tasks.complete("text", max_tokens=CONTEXT_LENGTH - 1).truncate_prompt_tokens == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1)],
)
def test_bad_sampling_options(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        tasks.complete("text", **{option: value})


@pytest.mark.parametrize("n", [0, 17, -2])
def test_bad_number_of_suggestions(n: int) -> None:
    with pytest.raises(ValueError, match="n="):
        tasks.cite("text", n=n)


def test_bad_top_p_for_cite() -> None:
    with pytest.raises(ValueError, match="top_p"):
        tasks.cite("text", top_p=1.5)


# ---- sequence spans -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SMILES", "I_SMILES", "DNA", "AMINO"])
def test_closed_spans_are_split_per_character(kind: str) -> None:
    text = f"It is [START_{kind}]C(=O)N[END_{kind}]."
    assert escape_sequences(text) == (
        f"It is [START_{kind}]{M}C{M}({M}={M}O{M}){M}N{M}[END_{kind}]."
    )


def test_open_span_at_the_end_is_split_too() -> None:
    assert (
        escape_sequences("The protein [START_AMINO]MIR") == f"The protein [START_AMINO]{M}M{M}I{M}R"
    )
    assert escape_sequences("[START_DNA]") == "[START_DNA]"


def test_several_spans_and_plain_text() -> None:
    text = "A [START_DNA]AC[END_DNA] and [START_SMILES]CO[END_SMILES] then [START_DNA]GT"
    assert escape_sequences(text) == (
        f"A [START_DNA]{M}A{M}C{M}[END_DNA] and [START_SMILES]{M}C{M}O{M}[END_SMILES] "
        f"then [START_DNA]{M}G{M}T"
    )
    assert escape_sequences("No spans [START_REF] here") == "No spans [START_REF] here"


def test_an_unclosed_span_before_other_spans_is_left_alone() -> None:
    """As galai: only closed spans, and an unclosed one that runs to the end, are split; the
    other span's markers are never split into characters."""
    text = "[START_DNA]ACG and [START_SMILES]CC[END_SMILES]"
    assert escape_sequences(text) == f"[START_DNA]ACG and [START_SMILES]{M}C{M}C{M}[END_SMILES]"


@pytest.mark.parametrize(
    "text",
    [
        "[START_SMILES]CC(=O)OC1=CC=CC=C1C(=O)O[END_SMILES]",
        "[START_I_SMILES]C[C@@H](C(=O)O)N[END_I_SMILES] and [START_AMINO]MKT",
        "plain text",
    ],
)
def test_escaping_is_idempotent(text: str) -> None:
    """Task prompts are escaped, then the engine's tokenizer escapes again: no double split."""
    once = escape_sequences(text)
    assert escape_sequences(once) == once


def test_task_prompts_escape_spans() -> None:
    req = tasks.summarise("Aspirin is [START_SMILES]CC(=O)O[END_SMILES].")
    assert f"[START_SMILES]{M}C{M}C{M}({M}={M}O{M}){M}O{M}[END_SMILES]" in req.prompt


# ---- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "title", "author"),
    [
        (" Attention Is All You Need, Vaswani[END_REF]", "Attention Is All You Need", "Vaswani"),
        (
            "Attention Is All You Need, Ashish Vaswani",
            "Attention Is All You Need",
            "Ashish Vaswani",
        ),
        (
            "BERT: Pre-training, of Deep Transformers, Devlin",
            "BERT: Pre-training, of Deep Transformers",
            "Devlin",
        ),
        (
            "Deep Residual Learning\n for  Image Recognition, He",
            "Deep Residual Learning for Image Recognition",
            "He",
        ),
        ("A title without an author", "A title without an author", None),
        (
            "Models, and what a long tail of words is this",
            "Models, and what a long tail of words is this",
            None,
        ),
        ("Semi-supervised learning, Kipf</s>garbage", "Semi-supervised learning", "Kipf"),
    ],
)
def test_parse_reference(raw: str, title: str, author: str | None) -> None:
    ref = parse_reference(raw)
    assert (ref["title"], ref["author"]) == (title, author)
    assert ref["text"] == (f"{title}, {author}" if author else title)


def test_parse_cite_drops_duplicates_and_empties() -> None:
    req = tasks.cite("Transformers", n=4)
    result = parse(
        req,
        [
            "Attention Is All You Need, Vaswani",
            " attention is all you need,  vaswani",
            " ",
            "BERT, Devlin",
        ],
        truncated=True,
    )
    assert [s["text"] for s in result["suggestions"]] == [
        "Attention Is All You Need, Vaswani",
        "BERT, Devlin",
    ]
    assert result["truncated"] is True


def test_parse_equation_summary_answer_work_and_completion() -> None:
    eq = parse(tasks.equation("Energy"), [" E = mc^2 \\] where E is energy"])
    assert eq == {"latex": "E = mc^2", "truncated": False}
    tldr = parse(tasks.summarise("Text"), [" Proteins fold.\n\nNext paragraph"])
    assert tldr["text"] == "Proteins fold."
    answer = parse(tasks.ask("Why?"), [" Because.</s>Question: more"])
    assert answer["text"] == "Because."
    steps = parse(tasks.work("2+2?"), ["\n2+2 = 4\n</work>\nAnswer: 4"])
    assert (steps["reasoning"], steps["answer"]) == ("2+2 = 4", "4")
    assert steps["text"] == "2+2 = 4\n\nAnswer: 4"
    ghost = parse(tasks.complete("The first law"), [" of thermodynamics\n\n## Next"])
    assert ghost["text"] == " of thermodynamics"  # leading space kept for inline completion
    assert parse(tasks.complete("x", stop_at_line=True), [" y\nz"])["text"] == " y"


def test_parse_removes_split_markers() -> None:
    raw = f" [START_SMILES]{M}C{M}O{M}[END_SMILES] is methanol"
    assert (
        parse(tasks.ask("What is it?"), [raw])["text"] == "[START_SMILES]CO[END_SMILES] is methanol"
    )


def test_parse_needs_an_output() -> None:
    with pytest.raises(ValueError):
        parse(tasks.ask("Why?"), [])


# ---- issue 11: the faults a comparison with galai found ----------------------------------


def test_issue_11_1_an_answer_after_a_blank_line_is_not_cut_empty() -> None:
    """galai's README: "Answer: \\n\\nNotch signaling pathway is ...". The request asks the
    server not to stop within the lead-in (min_tokens, as vLLM reads it) and the parser
    counts the stop only after some text."""
    req = tasks.ask("What is the notch signaling pathway?")
    assert req.min_tokens == 3 and req.stop == ["\n\n"]
    raw = " \n\nNotch signaling pathway is a cell-cell communication pathway.\n\nQuestion: x"
    assert (
        parse(req, [raw])["text"] == "Notch signaling pathway is a cell-cell communication pathway."
    )
    assert tasks.display_text(req, raw).strip() == parse(req, [raw])["text"]
    assert parse(req, [" 4\n\nQuestion: next"])["text"] == "4"
    assert parse(req, ["\n\n\n"])["text"] == ""
    keywords = tasks.complete("[START_AMINO]MKT[END_AMINO] ## Keywords")
    ghost = parse(keywords, ["\n\nCytoplasm, Transferase\n\n## References"])["text"]
    assert ghost == "\n\nCytoplasm, Transferase"  # the blank line kept: inserted as written
    assert tasks.complete("x", max_tokens=2).min_tokens == 2  # never over max_tokens


def test_issue_11_2_the_suffix_follows_the_escaped_text() -> None:
    req = tasks.cite("Aspirin [START_I_SMILES]CC(=O)O")
    assert req.prompt == f"Aspirin [START_I_SMILES]{M}C{M}C{M}({M}={M}O{M}){M}O [START_REF]"
    assert tasks.ask("Is [START_AMINO]MK").prompt.endswith(f"{M}M{M}K\n\nAnswer:")
    assert escape_sequences(req.prompt) == req.prompt  # our engine escapes again: no change


def test_issue_11_3_work_keeps_the_answer_after_work_end() -> None:
    raw = (
        "\nLet $x$ represent the ball's cost.\n$2x=\\$0.10$\n$x=\\$0.05$\n</work>\n\n"
        "Ans: The ball costs $\\$0.05$.\n\nQuestion: another"
    )
    result = parse(tasks.work("A bat and a ball cost $1.10."), [raw])
    assert result["answer"] == "The ball costs $\\$0.05$."
    assert result["reasoning"].endswith("$x=\\$0.05$")
    assert result["text"].endswith("Answer: The ball costs $\\$0.05$.")
    unfinished = parse(tasks.work("x"), ["\nstep 1\nstep 2"])
    assert unfinished["answer"] is None and unfinished["text"] == "step 1\nstep 2"


def test_issue_11_4_diverse_citations_use_beam_groups_and_stay_within_16() -> None:
    req = tasks.cite("Graph neural networks", n=16, diverse=True)
    assert (req.n, req.num_beams, req.num_beam_groups) == (16, 16, 16)
    assert req.diversity_penalty > 0 and req.penalty_alpha == 0.0 and req.choices is None


@pytest.mark.parametrize("task", tasks.TASKS)
def test_issue_11_5_every_task_takes_new_doc(task: str) -> None:
    assert build(task, "Some text", new_doc=True).prompt.startswith("</s>")
    assert not build(task, "Some text").prompt.startswith("</s>")


def test_new_request_fields_default_to_nothing_new() -> None:
    req = tasks.summarise("x")
    assert (req.num_beam_groups, req.penalty_alpha, req.choices) == (1, 0.0, None)
