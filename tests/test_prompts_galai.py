"""Our prompts against galai's, token for token, on the real GALACTICA tokenizer.

galai cannot be imported here (``galai/__init__`` pulls in torch, parallelformers and
psutil), so its string building is copied below from its source (paperswithcode/galai at
3a724f5: ``galai/utils.py`` escaping, ``Model._tokenize`` for ``new_doc``,
``Model.generate_reference`` for ``[START_REF]``). Each prompt is one galai documents (README,
``docs/PROMPTBOOK.md``, the notebook); each place where ours differs on purpose (the
``galai:`` notes in ``tasks.py``) is a test named ``test_difference_...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from galactica_ext import prompts, tasks

# ---- galai's string building (copied; the test's reference) ------------------------------

GALAI_SEQ_RE = re.compile(r"(\[START_(DNA|SMILES|I_SMILES|AMINO)])(.*?)(\[END_\2])")
GALAI_SPLIT_MARKER = f"SPL{1}T-TH{1}S-Pl3A5E"


def galai_escape(text: str) -> str:
    def insert(m: re.Match[str]) -> str:
        start, _, seq, end = m.groups()
        seq = re.sub(r"(.)", rf"{GALAI_SPLIT_MARKER}\1", seq, flags=re.DOTALL)
        return f"{start}{seq}{GALAI_SPLIT_MARKER}{end}"

    return GALAI_SEQ_RE.sub(insert, text)


def galai_reference_text(text: str) -> str:
    """``generate_reference``'s prompt fix-up."""
    start = text.rfind("[START_REF]")
    if start == -1 or text.find("[END_REF]", start) != -1:
        return text + "[START_REF]"
    return text.rstrip()


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))


def galai_ids(tok: Any, text: str, new_doc: bool = False) -> list[int]:
    """``Model._tokenize([text], new_doc)``: escape; with new_doc, "<pad>" first and its id
    (1) replaced by </s> (2); galai's tokenizer adds no BOS."""
    text = galai_escape(text)
    if new_doc:
        text = "<pad>" + text
    ids = tok.encode(text).ids
    if new_doc and ids[0] == 1:
        ids[0] = 2
    return ids


def our_ids(tok: Any, prompt: str) -> list[int]:
    return tok.encode(prompt, add_special_tokens=False).ids


ABSTRACT = (
    "Information overload is a major obstacle to scientific progress. The explosive growth in "
    "scientific literature and data has made it ever harder to discover useful insights in a "
    "large mass of information. In this paper we introduce Galactica: a large language model "
    "that can store, combine and reason about scientific knowledge. On technical knowledge "
    "probes such as LaTeX equations, Galactica outperforms the latest GPT-3 by 68.2% versus "
    "49.0%."
)
PROTEIN = (
    "GHMQSITAGQKVISKHKNGRFYQCEVVRLTTETFYEVNFDDGSFSDNLYPEDIVSQDCLQFGPPAEGEVVQVRWTDGQVYGAKFVASHP"
    "IQMYQVEFEDGSQLVVKRDDVYTLDEELP"
)
BAT_AND_BALL = (
    "A bat and a ball cost $\\$1.10$ in total. The bat costs $\\$1.00$ more than the ball. "
    "How much does the ball cost?"
)
IUPAC = (
    "[START_I_SMILES]C(C(=O)O)N[END_I_SMILES]\n\n## Chemical and Physical Properties\n\n"
    "The following are chemical properties for"
)

# (template, fields, galai's prompt string, galai's new_doc)
LIBRARY_CASES = [
    (
        "paper",
        {"title": "Self-Supervised Learning, A Survey", "authors": "John Smith"},
        "Title: Self-Supervised Learning, A Survey\n\nAuthors: John Smith\n\n",
        True,
    ),
    (
        "paper",
        {"title": "Self-Supervised Learning, A Survey"},
        "Title: Self-Supervised Learning, A Survey",
        True,
    ),
    ("wiki", {"topic": "Multi-Head Attention"}, "# Multi-Head Attention\n\n", True),
    ("lecture", {"topic": "The Ising Model"}, "Lecture 1: The Ising Model\n\n", True),
    (
        "literature_review",
        {"topic": "Alzheimer's Disease"},
        "Title: A Literature Review on Alzheimer's Disease\n\n# Abstract\n",
        False,
    ),
    (
        "entities",
        {"abstract": ABSTRACT},
        ABSTRACT + "\n\nWhat scientific entities are mentioned in the abstract above?\n\n",
        False,
    ),
    (
        "question",
        {"question": "What is the notch signaling pathway?"},
        "Question: What is the notch signaling pathway?\n\nAnswer:",
        False,
    ),
    ("reasoning", {"question": BAT_AND_BALL}, f"Question: {BAT_AND_BALL}\n\n<work>", False),
    ("iupac_name", {"smiles": "C(C(=O)O)N"}, IUPAC, False),
    ("molecule_properties", {"smiles": "C(C(=O)O)N"}, IUPAC, False),
    ("molecule", {}, "[START_I_SMILES]", False),
    (
        "reaction",
        {"description": "Mixing a kitchen salt with sulfuric acid"},
        "Mixing a kitchen salt with sulfuric acid results in the following reaction:",
        False,
    ),
    (
        "protein_keywords",
        {"sequence": PROTEIN},
        f"[START_AMINO]{PROTEIN}[END_AMINO] ## Keywords",
        False,
    ),
    (
        "protein_description",
        {"sequence": PROTEIN},
        f"[START_AMINO]{PROTEIN}[END_AMINO] ## Function",
        False,
    ),
]


@pytest.mark.parametrize(("name", "fields", "galai_prompt", "new_doc"), LIBRARY_CASES)
def test_library_template_token_ids_equal_galai(
    tok: Any, name: str, fields: dict[str, str], galai_prompt: str, new_doc: bool
) -> None:
    request = prompts.build(name, **fields)
    assert our_ids(tok, request.prompt) == galai_ids(tok, galai_prompt, new_doc)


def test_every_template_is_checked_against_galai() -> None:
    checked = {case[0] for case in LIBRARY_CASES} | {"dna"}
    assert checked == set(prompts.TEMPLATES)


def test_dna_continues_an_open_span_as_galai_writes_a_closed_one(tok: Any) -> None:
    """galai has no DNA prompt; its closed span, without the end marker, is our prompt."""
    ours = our_ids(tok, prompts.build("dna", sequence="ATGGCGTTAGC").prompt)
    closed = galai_ids(tok, "[START_DNA]ATGGCGTTAGC[END_DNA]")
    assert closed[-1] == 16 and ours == closed[:-1]


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("paper", {"max_tokens": 256, "temperature": 0.0}),
        ("lecture", {"top_p": 0.7, "temperature": 1.0}),  # README: top_p=0.7 means sampling
        ("literature_review", {"top_k": 4, "penalty_alpha": 0.6, "temperature": 0.0}),
        ("literature_review", {"max_tokens": 300}),  # notebook: max_new_tokens=300
        ("molecule", {"top_p": 0.6, "temperature": 1.0, "stop_token_ids": [22]}),
        ("reaction", {"max_tokens": 80}),
    ],
)
def test_library_decoding_follows_galai(name: str, settings: dict[str, Any]) -> None:
    request = prompts.build(name, **({"prefix": ""} if name == "molecule" else {}), **_fill(name))
    for key, value in settings.items():
        assert getattr(request, key) == value, key


def _fill(name: str) -> dict[str, str]:
    for case in LIBRARY_CASES:
        if case[0] == name and case[1]:
            return case[1]
    return {}


# ---- the editor tasks against galai's documented prompts ---------------------------------


_NOTCH = "What is the notch signaling pathway?"
_RNN = "The reason why Transformers replaced RNNs was because"
_OPEN_REF = "The amyloid hypothesis [START_REF] The Amyloid"
TASK_CASES = [
    # (task, text, options, galai's prompt string, galai's new_doc)
    ("cite", "The Transformer architecture", {}, "The Transformer architecture [START_REF]", 0),
    ("equation", "Riemann zeta is:", {}, "Riemann zeta is:\n\n\\[", 0),
    ("equation", "The radius is: \\[", {}, "The radius is: \\[", 0),
    ("summarise", ABSTRACT, {}, ABSTRACT + "\n\nTLDR:", 0),
    ("ask", _NOTCH, {}, f"Question: {_NOTCH}\n\nAnswer:", 0),
    ("work", BAT_AND_BALL, {"new_doc": True}, f"Question: {BAT_AND_BALL}\n\n<work>", 1),
    ("ask", BAT_AND_BALL, {"new_doc": True}, f"Question: {BAT_AND_BALL}\n\nAnswer:", 1),
    ("complete", _RNN, {}, _RNN, 0),
    ("complete", "# Multi-Head Attention\n\n", {"new_doc": True}, "# Multi-Head Attention\n\n", 1),
    ("cite", _OPEN_REF, {"new_doc": True}, galai_reference_text(_OPEN_REF), 1),
]


@pytest.mark.parametrize(("task", "text", "options", "galai_prompt", "new_doc"), TASK_CASES)
def test_task_token_ids_equal_galai(
    tok: Any, task: str, text: str, options: dict[str, Any], galai_prompt: str, new_doc: int
) -> None:
    prompt = tasks.build(task, text, **options).prompt
    assert our_ids(tok, prompt) == galai_ids(tok, galai_prompt, bool(new_doc))


def test_known_citation_ids(tok: Any) -> None:
    """The fixture's README: "The Transformer architecture [START_REF]"."""
    assert our_ids(tok, tasks.cite("The Transformer architecture").prompt) == [
        592, 23121, 5219, 243, 4,
    ]  # fmt: skip


def test_diverse_citations_are_galais_group_beam_search() -> None:
    """generate_reference(suggestions=n, diversity_penalty=p): num_beams=n, num_beam_groups=n
    (one beam per group); the notebook's diverse example uses p=0.9."""
    for n in (2, 5, 16):
        request = tasks.cite("A survey paper on the amyloid hypothesis", n=n, diverse=True)
        assert (request.num_beams, request.num_beam_groups, request.n) == (n, n, n)
        assert request.diversity_penalty == 0.9
        assert request.num_beams <= 16  # issue 9: never more than the agent's MAX_N
    plain = tasks.cite("x", n=4)
    assert (plain.num_beam_groups, plain.diversity_penalty) == (1, 0.0)


def test_top_p_alone_means_sampling_as_in_galai() -> None:
    """galai: top_p (or top_k) given means do_sample=True at transformers' temperature 1."""
    assert tasks.complete("x", top_p=0.7).temperature == 1.0
    assert tasks.complete("x", top_k=10).temperature == 1.0
    assert tasks.complete("x").temperature == 0.0
    assert tasks.complete("x", top_p=0.7, temperature=0.0).temperature == 0.0  # explicit
    cite = tasks.cite("x", top_p=0.9, n=2)
    assert (cite.temperature, cite.num_beams, cite.top_p) == (1.0, 1, 0.9)


# ---- where ours differs on purpose (each a note in tasks.py) ------------------------------


def test_difference_cite_puts_one_space_before_start_ref(tok: Any) -> None:
    galai = galai_ids(tok, galai_reference_text("Transformers"))
    ours = our_ids(tok, tasks.cite("Transformers").prompt)
    assert galai[-2:] != [243, 4] and galai[-1] == 4  # galai: "Transformers[START_REF]"
    assert ours[-2:] == [243, 4]  # ours: "Transformers [START_REF]"
    assert tasks.cite("Transformers \t ").prompt == tasks.cite("Transformers").prompt


def test_difference_cite_eats_a_paragraph_break() -> None:
    text = "The paper that presented the formula:\n\\[\nf(Q) = Q\n\\]\n\n"  # galai's notebook
    assert galai_reference_text(text).endswith("\\]\n\n[START_REF]")
    assert tasks.cite(text).prompt.endswith("\\] [START_REF]")


def test_same_as_galai_an_open_reference_is_rstripped() -> None:
    text = "As shown in [START_REF] Attention Is All  "
    assert tasks.cite(text).prompt == galai_reference_text(text) == text.rstrip()


def test_difference_summarise_rstrips_the_text() -> None:
    assert tasks.summarise("Proteins fold.\n\n").prompt == "Proteins fold.\n\nTLDR:"
    assert "Proteins fold.\n\n" + "\n\nTLDR:" != "Proteins fold.\n\nTLDR:"  # galai's


def test_difference_equation_opens_display_math_on_its_own_line() -> None:
    """galai takes any string; ours ends a description in the notebook's "\\n\\n\\[" unless
    the text already ends in "\\[" (the README's form)."""
    assert tasks.equation("Energy:").prompt == "Energy:\n\n\\["
    assert tasks.equation("Energy: \\[").prompt == "Energy: \\["


def test_difference_ask_and_summary_stop_at_the_paragraph_after_a_lead_in() -> None:
    """galai stops at max_new_tokens only; ours at the end of the answer's paragraph, and
    never within the blank line GALACTICA often writes first (issue 11.1)."""
    for request in (tasks.ask("Why?"), tasks.summarise("Text"), tasks.complete("## Keywords")):
        assert request.stop == ["\n\n"] and request.min_tokens == 3
    assert tasks.complete("# a comment", stop_at_line=True).min_tokens == 0


def test_difference_work_goes_on_after_work_end_to_the_answer() -> None:
    request = tasks.work("2+2?")
    assert request.stop == ["\n\nQuestion:"]
    raw = "\nLet x be 2+2.\n\nx = 4\n</work>\n\nAns: The sum is 4.\n\nQuestion: next"
    result = tasks.parse(request, [raw])
    assert result["reasoning"] == "Let x be 2+2.\n\nx = 4"
    assert result["answer"] == "The sum is 4."


def test_difference_open_spans_and_newlines_in_spans_are_escaped() -> None:
    """galai escapes closed spans on one line only (its regex is not DOTALL) and never an open
    one; ours escapes an open span at the end (a sequence being typed at the cursor, whose
    continuation must be per character) and spans across lines (wrapped FASTA)."""
    m = GALAI_SPLIT_MARKER
    open_span = "The protein [START_AMINO]MIR"
    assert galai_escape(open_span) == open_span
    assert prompts.escape_sequences(open_span) == f"The protein [START_AMINO]{m}M{m}I{m}R"
    wrapped = "[START_DNA]AC\nGT[END_DNA]"
    assert galai_escape(wrapped) == wrapped
    assert prompts.escape_sequences(wrapped).count(m) == 6


def test_same_as_galai_new_doc_ids(tok: Any) -> None:
    """galai prepends <pad> and swaps its id for </s>; we prepend "</s>": the same ids."""
    for text in ("Title: X", "# Topic\n\n", "[START_I_SMILES]CC[END_I_SMILES]"):
        ours = our_ids(tok, tasks.complete(text, new_doc=True).prompt)
        assert ours == galai_ids(tok, text, new_doc=True) and ours[0] == 2
