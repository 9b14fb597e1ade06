"""The GALACTICA prompt language as pure functions (no torch).

Each task builds a :class:`GenerationRequest` (prompt, stops, limits, decoding) from the user's
text and parses the model's raw continuations into a result. The prompts follow galai and the
paper: ``[START_REF]`` for citations, ``\\[`` for equations, ``\\n\\nTLDR:`` for summaries,
``Question: ...\\n\\nAnswer:`` for questions and ``<work>`` for step-by-step reasoning.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .specs import CONTEXT_LENGTH

START_REF = "[START_REF]"
END_REF = "[END_REF]"
END_REF_ID = 5
EOS = "</s>"
WORK_START = "<work>"
WORK_END = "</work>"

#: The tokenizer splits on this marker and drops it; galai puts it between the characters of
#: sequence spans so that each character becomes one token.
SPLIT_MARKER = "SPL1T-TH1S-Pl3A5E"
_SPAN_KINDS = "I_SMILES|SMILES|DNA|AMINO"
_CLOSED_SPAN = re.compile(rf"(\[START_({_SPAN_KINDS})\])(.*?)(\[END_\2\])", re.DOTALL)
# an open span runs to the end of the text and holds no other span's marker
_OPEN_SPAN_AT_END = re.compile(
    rf"(\[START_({_SPAN_KINDS})\])((?:(?!\[(?:START|END)_(?:{_SPAN_KINDS})\]).)*)$", re.DOTALL
)

TASKS = ("cite", "equation", "summarise", "complete", "ask", "work")


@dataclass
class GenerationRequest:
    """What to generate: the prompt and how to decode it.

    ``temperature == 0`` means greedy (or beam search when ``num_beams > 1``).
    ``truncate_prompt_tokens`` keeps only the prompt's last tokens so that prompt and new
    tokens fit GALACTICA's context (vLLM's parameter of the same name).
    """

    task: str
    prompt: str
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    num_beams: int = 1
    diversity_penalty: float = 0.0
    seed: int | None = None
    min_tokens: int = 0
    #: the text that was sent as the prompt's end (for parsers that need it)
    suffix: str = ""

    @property
    def truncate_prompt_tokens(self) -> int:
        return CONTEXT_LENGTH - self.max_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def escape_sequences(text: str) -> str:
    """Put the split marker between the characters of SMILES, DNA and protein spans.

    Closed spans are escaped as galai does; an open span at the end of the text (someone is
    still typing a sequence) is escaped up to the end, so its continuation is per character too.
    Idempotent: text escaped already (a task's prompt, on its way to the tokenizer) is unchanged.
    """

    def split_chars(seq: str) -> str:
        return "".join(SPLIT_MARKER + ch for ch in seq.replace(SPLIT_MARKER, ""))

    text = _CLOSED_SPAN.sub(
        lambda m: f"{m.group(1)}{split_chars(m.group(3))}{SPLIT_MARKER}{m.group(4)}", text
    )
    return _OPEN_SPAN_AT_END.sub(lambda m: f"{m.group(1)}{split_chars(m.group(3))}", text)


def _check_text(text: str, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{what} is empty: give the text to work on")
    return text


def _check_max_tokens(max_tokens: int) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an integer, got {max_tokens!r}")
    if not 1 <= max_tokens <= CONTEXT_LENGTH - 1:
        raise ValueError(
            f"max_tokens={max_tokens} is out of range: GALACTICA's context is {CONTEXT_LENGTH} "
            f"tokens, so use 1 to {CONTEXT_LENGTH - 1} (the prompt gets the rest)"
        )
    return max_tokens


def _check_sampling(temperature: float, top_p: float, top_k: int, n: int) -> None:
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1]")
    if top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 0 (0 means no limit)")
    if not 1 <= n <= 16:
        raise ValueError(f"n={n} must be between 1 and 16")


def _prompt(text: str, new_doc: bool) -> str:
    text = escape_sequences(text)
    return EOS + text if new_doc and not text.startswith(EOS) else text


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
    returns ``n`` suggestions by beam search (diverse beam groups when ``diverse``), or by
    nucleus sampling when ``top_p`` is given.
    """
    _check_text(text)
    _check_max_tokens(max_tokens)
    _check_sampling(1.0 if top_p else 0.0, top_p or 1.0, 0, n)
    stripped = text.rstrip()
    open_ref = stripped.rfind(START_REF) > stripped.rfind(END_REF)
    prompt = _prompt(text if open_ref else stripped + " " + START_REF, new_doc)
    if open_ref:
        prompt = prompt.rstrip() if prompt.rstrip().endswith(START_REF) else prompt
    sampling = top_p is not None
    return GenerationRequest(
        task="cite",
        prompt=prompt,
        max_tokens=max_tokens,
        stop=[END_REF],
        stop_token_ids=[END_REF_ID],
        temperature=0.7 if sampling else 0.0,
        top_p=top_p if sampling else 1.0,
        n=n,
        num_beams=1 if sampling else n,
        diversity_penalty=1.0 if diverse and not sampling and n > 1 else 0.0,
        seed=seed,
        suffix=START_REF,
    )


def equation(text: str, *, max_tokens: int = 128, new_doc: bool = False) -> GenerationRequest:
    """LaTeX for a description: the prompt ends in ``\\[`` and generation stops at ``\\]``."""
    _check_text(text)
    _check_max_tokens(max_tokens)
    body = text.rstrip()
    prompt = body if body.endswith("\\[") else body + "\n\n\\["
    return GenerationRequest(
        task="equation",
        prompt=_prompt(prompt, new_doc),
        max_tokens=max_tokens,
        stop=["\\]"],
        suffix="\\[",
    )


def summarise(text: str, *, max_tokens: int = 96, new_doc: bool = False) -> GenerationRequest:
    """A TL;DR of ``text``: ``\\n\\nTLDR:``, stopping at the end of the paragraph."""
    _check_text(text)
    _check_max_tokens(max_tokens)
    return GenerationRequest(
        task="summarise",
        prompt=_prompt(text.rstrip() + "\n\nTLDR:", new_doc),
        max_tokens=max_tokens,
        stop=["\n\n"],
        suffix="TLDR:",
    )


def complete(
    text: str,
    *,
    max_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    stop_at_line: bool = False,
) -> GenerationRequest:
    """A free continuation of ``text`` for inline completion.

    Stops at the end of the paragraph (a blank line), or of the line with ``stop_at_line``
    (comments and docstrings in code cells), and at the end of a document.
    """
    _check_text(text)
    _check_max_tokens(max_tokens)
    _check_sampling(temperature, top_p, top_k, 1)
    return GenerationRequest(
        task="complete",
        prompt=_prompt(text, False),
        max_tokens=max_tokens,
        stop=["\n"] if stop_at_line else ["\n\n"],
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
    )


def ask(question: str, *, max_tokens: int = 128, new_doc: bool = False) -> GenerationRequest:
    """Answer a question: ``Question: ...\\n\\nAnswer:``, stopping at the paragraph's end."""
    _check_text(question, "question")
    _check_max_tokens(max_tokens)
    return GenerationRequest(
        task="ask",
        prompt=_prompt(f"Question: {question.strip()}\n\nAnswer:", new_doc),
        max_tokens=max_tokens,
        stop=["\n\n"],
        suffix="Answer:",
    )


def work(question: str, *, max_tokens: int = 256, new_doc: bool = False) -> GenerationRequest:
    """Step-by-step reasoning: ``Question: ...\\n\\n<work>``, stopping at ``</work>``."""
    _check_text(question, "question")
    _check_max_tokens(max_tokens)
    return GenerationRequest(
        task="work",
        prompt=_prompt(f"Question: {question.strip()}\n\n{WORK_START}", new_doc),
        max_tokens=max_tokens,
        stop=[WORK_END],
        suffix=WORK_START,
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
    """Build the request of any task by name (``summarize`` is accepted for ``summarise``)."""
    task = "summarise" if task == "summarize" else task
    try:
        builder = _BUILDERS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}") from None
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


def _unescape(text: str) -> str:
    return text.replace(SPLIT_MARKER, "")


def parse_reference(raw: str) -> dict[str, Any]:
    """``"Title, First author"`` into its parts (the author may be missing)."""
    text = " ".join(_cut_at_stops(raw, [END_REF, EOS]).split())
    title, sep, author = text.rpartition(", ")
    if not sep or not author or len(author.split()) > 4:
        title, author = text, None
    return {"text": text, "title": title.strip(), "author": author}


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
    first = _unescape(_cut_at_stops(outputs[0], [*request.stop, EOS]))
    if task == "equation":
        return {"latex": first.strip(), "truncated": truncated}
    if task == "complete":
        return {"text": first, "truncated": truncated}
    return {"text": first.strip(), "truncated": truncated}
