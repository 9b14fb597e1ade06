"""The GALACTICA prompt language as pure functions (no torch): the six editor tasks.

Each task builds a :class:`GenerationRequest` (prompt, stops, limits, decoding) from the user's
text and parses the model's raw continuations into a result. The prompts follow galai
(``galai/model.py``, its README, PROMPTBOOK and notebook) and the paper: ``[START_REF]`` for
citations, ``\\[`` for equations, ``\\n\\nTLDR:`` for summaries, ``Question: ...\\n\\nAnswer:``
for questions and ``<work>`` for step-by-step reasoning. The user's text is escaped first
(sequence spans one character per token), then the task's suffix is appended, so the suffix
is always its own control tokens.

Where a prompt differs from galai's on purpose, a ``galai:`` note beside it says how and why;
``tests/test_prompts_galai.py`` holds each difference as a test. One applies to every task:
galai escapes closed spans on one line only and never an open one; we escape spans across
lines and an open span at the end of the user's text (a sequence being typed), see
:mod:`galactica_ext.prompts.escape`. :mod:`galactica_ext.prompts`
holds the wider science prompt library; :func:`build` and :func:`parse` take its names too.
"""

from __future__ import annotations

from typing import Any

from .prompts.escape import SPLIT_MARKER, escape_sequences, escape_text, unescape
from .prompts.request import (
    END_REF,
    END_REF_ID,
    EOS,
    MAX_N,
    START_REF,
    START_REF_ID,
    WORK_END,
    WORK_START,
    GenerationRequest,
    check_flags,
    check_max_tokens,
    check_sampling,
    check_seed,
    check_text,
    cut_after_lead_in,
    lead_in,
    new_document,
    sampling_temperature,
)
from .specs import CONTEXT_LENGTH

__all__ = [
    "CONTEXT_LENGTH",
    "DIVERSITY_PENALTY",
    "END_REF",
    "END_REF_ID",
    "EOS",
    "MAX_N",
    "SPLIT_MARKER",
    "START_REF",
    "START_REF_ID",
    "TASKS",
    "WORK_END",
    "WORK_START",
    "GenerationRequest",
    "ask",
    "build",
    "cite",
    "complete",
    "display_text",
    "equation",
    "escape_sequences",
    "parse",
    "parse_reference",
    "summarise",
    "work",
]

TASKS = ("cite", "equation", "summarise", "complete", "ask", "work")
#: galai's notebook runs diverse reference search with ``diversity_penalty=0.9``
DIVERSITY_PENALTY = 0.9
#: where the answer of ``<work>`` ends when the model goes on to the next question
_WORK_STOPS = ["\n\nQuestion:"]


def cite(
    text: str,
    *,
    n: int = 3,
    max_tokens: int = 64,
    diverse: bool = False,
    top_p: float | None = None,
    seed: int | None = None,
    new_doc: bool = False,
) -> GenerationRequest:
    """Reference suggestions for the end of ``text`` (galai's ``generate_reference``).

    Appends ``[START_REF]`` unless a reference is already open, stops at ``[END_REF]``, and
    returns ``n`` suggestions by beam search; with ``diverse`` and ``n > 1``, by group beam
    search, one beam in each of ``n`` groups with a Hamming diversity penalty, as galai does
    (``n == 1`` has no groups: plain beam search); by sampling when ``top_p`` is given (at
    temperature 1, as galai; ``diverse`` then changes nothing).
    """
    check_text(text)
    check_max_tokens(max_tokens)
    check_sampling(0.0 if top_p is None else 1.0, 1.0 if top_p is None else top_p, 0, n)
    check_flags(diverse=diverse, new_doc=new_doc)
    stripped = text.rstrip()
    if stripped.rfind(START_REF) > stripped.rfind(END_REF):
        # a reference is open: galai rstrips "to avoid spaces after [START_REF]"; so do we
        prompt = escape_sequences(stripped)
    else:
        # galai: generate_reference appends "[START_REF]" to the text as it is. We rstrip and
        # put exactly one space before it: (1) GALACTICA's corpus writes in-text citations after
        # a space ("architecture [START_REF] Attention...", every galai example), whatever
        # whitespace an editor leaves at the cursor; (2) a paragraph break before the cursor is
        # eaten too, because "Cite here" inserts the citation inline, at the end of the
        # sentence before the cursor, which the model must see as the sentence it cites for.
        prompt = escape_text(stripped) + " " + START_REF
    sampling = top_p is not None
    groups = n if diverse and not sampling and n > 1 else 1
    return GenerationRequest(
        task="cite",
        prompt=new_document(prompt, new_doc),
        max_tokens=max_tokens,
        stop=[END_REF],
        stop_token_ids=[END_REF_ID],
        temperature=1.0 if sampling else 0.0,
        top_p=top_p if sampling else 1.0,
        n=n,
        num_beams=1 if sampling else n,
        num_beam_groups=groups,
        diversity_penalty=DIVERSITY_PENALTY if groups > 1 else 0.0,
        seed=check_seed(seed),
        suffix=START_REF,
    )


def equation(text: str, *, max_tokens: int = 128, new_doc: bool = False) -> GenerationRequest:
    """LaTeX for a description: the prompt ends in ``\\[`` and generation stops at ``\\]``."""
    check_text(text)
    check_max_tokens(max_tokens)
    check_flags(new_doc=new_doc)
    body = text.rstrip()
    # galai: the README's form ("... defined as: \\[") is kept when the text ends in "\\[";
    # otherwise the notebook's ("... is given by:\n\n\\["), so a description becomes a display
    # equation of its own.
    prompt = escape_text(body) + ("" if body.endswith("\\[") else "\n\n\\[")
    return GenerationRequest(
        task="equation",
        prompt=new_document(prompt, new_doc),
        max_tokens=max_tokens,
        stop=["\\]"],
        suffix="\\[",
    )


def summarise(text: str, *, max_tokens: int = 96, new_doc: bool = False) -> GenerationRequest:
    """A TL;DR of ``text``: ``\\n\\nTLDR:``, stopping at the end of the paragraph."""
    check_text(text)
    check_max_tokens(max_tokens)
    check_flags(new_doc=new_doc)
    # galai: the README appends "\n\nTLDR:" to the text as it is; we rstrip first, so the
    # suffix is exactly that blank line whatever whitespace ends a cell.
    prompt = escape_text(text.rstrip()) + "\n\nTLDR:"
    return GenerationRequest(
        task="summarise",
        prompt=new_document(prompt, new_doc),
        max_tokens=max_tokens,
        stop=["\n\n"],
        min_tokens=lead_in(max_tokens),
        suffix="TLDR:",
    )


def complete(
    text: str,
    *,
    max_tokens: int = 32,
    temperature: float | None = None,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    stop_at_line: bool = False,
    new_doc: bool = False,
) -> GenerationRequest:
    """A free continuation of ``text`` for inline completion (galai's ``generate``).

    Stops at the end of the paragraph (a blank line, once some text is out), or of the line
    with ``stop_at_line`` (comments and docstrings in code cells), and at the end of a
    document. As galai: ``top_p`` or ``top_k`` given alone means sampling; ``new_doc`` starts
    a new document.
    """
    check_text(text)
    check_max_tokens(max_tokens)
    temperature = sampling_temperature(temperature, top_p, top_k)
    check_sampling(temperature, top_p, top_k, 1)
    check_flags(stop_at_line=stop_at_line, new_doc=new_doc)
    return GenerationRequest(
        task="complete",
        # kept exactly (no strip): ghost text continues from the cursor
        prompt=new_document(escape_sequences(text), new_doc),
        max_tokens=max_tokens,
        stop=["\n"] if stop_at_line else ["\n\n"],
        # galai: no stop at all. A paragraph stop that ignores a leading blank line (after
        # "## Keywords" GALACTICA writes "\n\nCytoplasm, ..."): the continuation is not empty.
        min_tokens=0 if stop_at_line else lead_in(max_tokens),
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=check_seed(seed),
    )


def ask(question: str, *, max_tokens: int = 128, new_doc: bool = False) -> GenerationRequest:
    """Answer a question: ``Question: ...\\n\\nAnswer:``, stopping at the paragraph's end
    (once the answer has begun: GALACTICA often writes a blank line first)."""
    # galai: the same form; galai stops at max_new_tokens only, we at the answer's end (its
    # notebook shows the model going on with more "Answer:" paragraphs).
    return _question("ask", question, "Answer:", max_tokens, new_doc, ["\n\n"], lead=True)


def work(question: str, *, max_tokens: int = 256, new_doc: bool = False) -> GenerationRequest:
    """Step-by-step reasoning: ``Question: ...\\n\\n<work>``. The reasoning ends at
    ``</work>`` and GALACTICA writes the answer after it (galai's notebook:
    ``"</work>\\n\\nAns: ..."``), so generation goes on to the answer's paragraph."""
    # galai: the notebook's form; galai has no stop, we stop when the model starts the next
    # question (the parser keeps only the answer's paragraph after </work>).
    return _question("work", question, WORK_START, max_tokens, new_doc, list(_WORK_STOPS))


def _question(
    task: str,
    question: str,
    opening: str,
    max_tokens: int,
    new_doc: bool,
    stop: list[str],
    lead: bool = False,
) -> GenerationRequest:
    """``Question: ...\\n\\n`` then ``opening`` (the form of ``ask`` and ``work``); with
    ``lead``, a stop does not end the first tokens (see :func:`lead_in`)."""
    check_text(question, "question")
    check_max_tokens(max_tokens)
    check_flags(new_doc=new_doc)
    prompt = f"Question: {escape_text(question.strip())}\n\n{opening}"
    return GenerationRequest(
        task=task,
        prompt=new_document(prompt, new_doc),
        max_tokens=max_tokens,
        stop=stop,
        min_tokens=lead_in(max_tokens) if lead else 0,
        suffix=opening,
    )


_BUILDERS = {
    "cite": cite,
    "equation": equation,
    "summarise": summarise,
    "complete": complete,
    "ask": ask,
    "work": work,
}


def build(task: str, text: str, **options: Any) -> GenerationRequest:
    """Build the request of any task by name (``summarize`` is accepted for ``summarise``),
    or of a template of the prompt library (:mod:`galactica_ext.prompts`), ``text`` filling
    its main field."""
    from .prompts import library

    task = "summarise" if task == "summarize" else task
    builder = _BUILDERS.get(task)
    if builder is None:
        if task in library.TEMPLATES:
            return library.build(task, text, **options)
        raise ValueError(
            f"unknown task {task!r}: use one of {', '.join(TASKS)} or a prompt library "
            f"template ({', '.join(library.TEMPLATES)})"
        )
    try:
        return builder(text, **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"{task}: {err}") from None
        raise


def _cut_at_stops(raw: str, stops: list[str]) -> str:
    cut = len(raw)
    for stop in stops:
        at = raw.find(stop)
        if at != -1:
            cut = min(cut, at)
    return raw[:cut]


def display_text(request: GenerationRequest, raw: str) -> str:
    """A raw continuation as it should show while it streams: cut at the request's stops
    (a blank line first does not count as the paragraph's end) and unescaped."""
    if request.min_tokens:
        lead, body = cut_after_lead_in(raw, [*request.stop, EOS])
        return unescape(lead + body)
    return unescape(_cut_at_stops(raw, [*request.stop, EOS]))


def parse_reference(raw: str) -> dict[str, Any]:
    """``"Title, First author"`` into its parts (the author may be missing)."""
    text = " ".join(_cut_at_stops(raw, [END_REF, EOS]).split())
    title, sep, author = text.rpartition(", ")
    if not sep or not author or len(author.split()) > 4:
        title, author = text, None
    return {"text": text, "title": title.strip(), "author": author}


def parse_work(raw: str) -> dict[str, Any]:
    """``<work>`` output: the reasoning before ``</work>`` and the answer's paragraph after
    it (its ``Ans:``/``Answer:`` label dropped; None when the model wrote none)."""
    raw = unescape(_cut_at_stops(raw, [*_WORK_STOPS, EOS]))
    reasoning, closed, after = raw.partition(WORK_END)
    answer = None
    if closed:
        _lead, body = cut_after_lead_in(after, ["\n\n"])
        for label in ("Ans:", "Answer:", "A:"):
            if body.startswith(label):
                body = body[len(label) :]
                break
        answer = body.strip() or None
    reasoning = reasoning.strip()
    text = f"{reasoning}\n\nAnswer: {answer}" if answer else reasoning
    return {"text": text, "reasoning": reasoning, "answer": answer}


def parse(
    request: GenerationRequest, outputs: list[str], truncated: bool = False
) -> dict[str, Any]:
    """Turn the raw continuations of ``request`` into the task's result.

    ``outputs`` are the texts after the prompt, special tokens kept. Every result says whether
    the prompt was cut to fit the context (``truncated``).
    """
    if not outputs:
        raise ValueError("no output to parse")
    task = request.task
    if task == "cite":
        seen: set[str] = set()
        suggestions = []
        for raw in outputs:
            ref = parse_reference(raw)
            if ref["text"] and ref["text"].lower() not in seen:
                seen.add(ref["text"].lower())
                suggestions.append(ref)
        return {"suggestions": suggestions, "truncated": truncated}
    if task == "work":
        return {**parse_work(outputs[0]), "truncated": truncated}
    if task not in TASKS:
        from .prompts import library

        return {**library.parse(request, outputs), "truncated": truncated}
    stops = [*request.stop, EOS]
    if request.min_tokens:  # a stop within the leading blank line does not count
        lead, body = cut_after_lead_in(outputs[0], stops)
    else:
        lead, body = "", _cut_at_stops(outputs[0], stops)
    lead, body = unescape(lead), unescape(body)
    if task == "equation":
        return {"latex": body.strip(), "truncated": truncated}
    if task == "complete":  # leading whitespace kept for inline completion
        return {"text": lead + body, "truncated": truncated}
    return {"text": body.strip(), "truncated": truncated}
