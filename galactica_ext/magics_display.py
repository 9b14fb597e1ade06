"""What the magics show: a task's result as a rich output, the output that streams in place,
the one-line interrupt and the agent's status text (the widget shows the last two as well)."""

from __future__ import annotations

import re
import sys
import time
from typing import Any
from urllib.parse import quote_plus

from IPython.core.display import Math
from IPython.core.display_functions import display
from IPython.core.displaypub import DisplayPublisher

from . import prompts
from .client import CompletionsClient
from .prompts.display import TemplateResult

__all__ = [
    "HALLUCINATION_NOTE",
    "INTERRUPTED",
    "Citations",
    "Equation",
    "Interrupted",
    "Live",
    "Text",
    "progress_line",
    "result_output",
    "status_text",
]

HALLUCINATION_NOTE = "references can be made up: check each one before citing it"
INTERRUPTED = "[interrupted: the generation was cancelled]"


class Text:
    """Text that shows as itself (and as markdown when ``markdown``)."""

    def __init__(self, text: str, markdown: bool = False) -> None:
        self.text = text
        self.markdown = markdown

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)

    def _repr_markdown_(self) -> str | None:
        return self.text if self.markdown else None


class Equation(Math):
    """IPython's Math whose plain-text form is the LaTeX source."""

    def __repr__(self) -> str:
        return self.data

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.data)


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


class Citations(list):
    """Reference suggestions (dicts with ``text``, ``title``, ``author``) that show as a
    numbered markdown list, each with a search link to check that the work exists."""

    def __init__(
        self, suggestions: list[dict[str, Any]], model: str | None = None, truncated: bool = False
    ) -> None:
        super().__init__(suggestions)
        self.model = model
        self.truncated = truncated

    @property
    def texts(self) -> list[str]:
        """The suggestions as ``"Title, First author"`` strings."""
        return [s["text"] for s in self]

    @property
    def markdown(self) -> str:
        """The suggestions as a markdown list, with the hallucination warning."""
        if not self:
            return "*GALACTICA suggested no reference for this text.*"
        lines = [
            f"{i}. {_md_escape(s['text'])} "
            f"([check](https://scholar.google.com/scholar?q={quote_plus(s['title'] or s['text'])}))"
            for i, s in enumerate(self, 1)
        ]
        model = f" by {self.model}" if self.model else ""
        notes = [f"*Suggested{model}: {HALLUCINATION_NOTE}.*"]
        if self.truncated:
            notes.append("*The text was cut to its end to fit GALACTICA's context.*")
        return "\n".join([*lines, "", *notes])

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        if not self:
            return "GALACTICA suggested no reference for this text."
        lines = [f"{i}. {s['text']}" for i, s in enumerate(self, 1)]
        return "\n".join([*lines, f"({HALLUCINATION_NOTE})"])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def result_output(task: str, result: dict[str, Any]) -> tuple[Any, str | None]:
    """What shows a task's result, and its plain text (None: nothing to compare with what
    streamed): a template's result, the citations, the equation or the text."""
    if task in prompts.TEMPLATES:
        shown = TemplateResult(task, result)
        return shown, shown.plain
    if task == "cite":
        return Citations(result["suggestions"], result.get("model"), result["truncated"]), None
    if task == "equation":
        latex = result["latex"]
        return (Equation(latex) if latex else Text("(no equation)")), latex
    text = result["text"]
    empty = "(no summary)" if task == "summarise" else ""
    return Text(text or empty, markdown=True), text


class Live:
    """One output that streams in place: a display handle in a notebook (updates throttled),
    plain text written as it arrives in a terminal."""

    def __init__(self, shell: Any, interval: float = 0.1) -> None:
        # A terminal (or plain InteractiveShell) prints every display; anything else (a kernel,
        # capture_output) keeps displays apart and can update them in place.
        self.in_place = type(shell.display_pub) is not DisplayPublisher
        self.interval = interval
        self._handle: Any = None
        self._last = 0.0
        self._printed = ""

    def show(self, obj: Any) -> None:
        """Show ``obj`` now, replacing what this output showed."""
        if self._handle is None:
            self._handle = display(obj, display_id=True)
        else:
            self._handle.update(obj)
        self._last = time.monotonic()

    def text(self, text: str) -> None:
        """The text so far, while it streams."""
        if not self.in_place:
            if text.startswith(self._printed) and len(text) > len(self._printed):
                sys.stdout.write(text[len(self._printed) :])
                sys.stdout.flush()
                self._printed = text
            return
        if time.monotonic() - self._last >= self.interval or self._handle is None:
            self.show(Text(text + "▌"))

    def status(self, line: str) -> None:
        """A progress line (model loading, waiting)."""
        if self.in_place:
            self.show(Text(line))
        elif line != self._printed:
            print(line)
            self._printed = line

    def done(self, obj: Any, plain: str | None = None) -> None:
        """The final result; in a terminal, not repeated when it is what streamed."""
        if self.in_place:
            self.show(obj)
            return
        streamed, self._printed = self._printed, ""
        if streamed and plain is not None and plain.strip() == streamed.strip():
            print()
            return
        if streamed:
            print()
        display(obj)

    def interrupted(self, text: str) -> None:
        """Keep what streamed, without the cursor; :class:`Interrupted` says the rest."""
        if self.in_place:
            if self._handle is not None:
                self.show(Text(text))
        elif self._printed:
            print()


class Interrupted(KeyboardInterrupt):
    """The user interrupted a magic (the kernel still sees a KeyboardInterrupt); IPython
    shows it as one line instead of a traceback through the magics and the client."""

    def __str__(self) -> str:
        return INTERRUPTED

    def _render_traceback_(self) -> list[str]:
        return [INTERRUPTED]


def progress_line(health: dict[str, Any]) -> str:
    """One line on a model that loads: its name, the phase and how far it is."""
    progress = health.get("progress") or {}
    fraction = progress.get("fraction")
    done = f" {fraction:.0%}" if isinstance(fraction, int | float) else ""
    phase = progress.get("phase") or "loading"
    return f"Loading {health.get('model') or 'the model'}: {phase}{done}"


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def status_text(client: CompletionsClient, health: dict[str, Any]) -> str:
    """A few lines on the agent and its model, for ``%galactica status`` and the widget."""
    pid, version = health.get("pid"), health.get("version")
    who = ", ".join(x for x in (f"pid {pid}" if pid else "", version and f"v{version}") if x)
    lines = [f"GALACTICA server at {client.url}{f' ({who})' if who else ''}: {health['status']}"]
    if health.get("model"):
        details = [health.get("dtype") or "", health.get("device") or ""]
        how = " on ".join(d for d in details if d)
        size = _size(health.get("memory_bytes"))
        extra = ", ".join(x for x in (how, size) if x)
        lines.append(f"model: {health['model']}{f' ({extra})' if extra else ''}")
    else:
        lines.append("model: none loaded (`%galactica load 125m` loads one)")
    if health.get("status") == "loading":
        lines.append(progress_line(health))
    if health.get("error"):
        lines.append(f"error: {health['error']}")
    queue = health.get("queue")
    if isinstance(queue, dict):
        lines.append(f"queue: {queue.get('running', 0)} running, {queue.get('waiting', 0)} waiting")
    return "\n".join(lines)
