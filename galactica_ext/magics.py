"""IPython magics: GALACTICA's tasks from any kernel (``%load_ext galactica_ext``).

``%galactica status|load|unload|help``, ``%%cite``, ``%equation``/``%%equation``,
``%tldr``/``%%tldr`` and ``%%galactica`` (free generation) talk to the agent through
:mod:`galactica_ext.client`: the one the server extension started (its runtime file),
``$GALACTICA_URL``, or one they start, so the model is loaded once for every front end.
Output streams in place; interrupting the kernel closes the connection, which cancels the
generation on the agent. ``{name}`` in a cell is replaced by the variable ``name``.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any
from urllib.parse import quote_plus

from IPython.core.display import Math
from IPython.core.display_functions import display
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_cell_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import prompts, tasks
from .client import AgentUnavailable, CompletionsClient, run_task
from .discovery import AgentClient, locate
from .magics_prompts import run_template, sampling_options
from .notices import MAKES_THINGS_UP, MODEL_LICENCE
from .tasks import GenerationRequest

__all__ = ["Citations", "GalacticaMagics", "Interrupted", "interpolate", "register"]

HALLUCINATION_NOTE = "references can be made up: check each one before citing it"


# ------------------------------------------------------------------------ interpolation

# ``{name}``, ``{name.attr}`` or ``{name[3]}``, not right after a word character, a backslash,
# ``^``, ``_`` or ``}`` (so LaTeX such as ``\frac{a}{b}``, ``x^{n}`` and ``\mathrm{d}`` stays).
_FIELD = re.compile(r"(?<![\w\\^}])\{([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*|\[-?\d+\])*)\}")
_ACCESS = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+)\]")


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{name}`` (``{name.attr}``, ``{name[i]}``) by the value of ``name`` in
    ``namespace``, as jupyter-ai does; unknown names and LaTeX groups are left alone, and
    ``{{``/``}}`` give literal braces."""
    text = text.replace("{{", "\x00").replace("}}", "\x01")

    def field(match: re.Match[str]) -> str:
        name, access = match.group(1), match.group(2)
        if name not in namespace:
            return match.group(0)
        value = namespace[name]
        try:
            for attr, index in _ACCESS.findall(access):
                value = getattr(value, attr) if attr else value[int(index)]
        except (AttributeError, LookupError, TypeError):
            return match.group(0)
        return str(value)

    return _FIELD.sub(field, text).replace("\x00", "{").replace("\x01", "}")


# ----------------------------------------------------------------------------- displays


class _Text:
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


class _Equation(Math):
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


class _Live:
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
            self.show(_Text(text + "▌"))

    def status(self, line: str) -> None:
        """A progress line (model loading, waiting)."""
        if self.in_place:
            self.show(_Text(line))
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
                self.show(_Text(text))
        elif self._printed:
            print()


INTERRUPTED = "[interrupted: the generation was cancelled]"


class Interrupted(KeyboardInterrupt):
    """The user interrupted a magic (the kernel still sees a KeyboardInterrupt); IPython
    shows it as one line instead of a traceback through the magics and the client."""

    def __str__(self) -> str:
        return INTERRUPTED

    def _render_traceback_(self) -> list[str]:
        return [INTERRUPTED]


def _progress_line(health: dict[str, Any]) -> str:
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
        lines.append(_progress_line(health))
    if health.get("error"):
        lines.append(f"error: {health['error']}")
    queue = health.get("queue")
    if isinstance(queue, dict):
        lines.append(f"queue: {queue.get('running', 0)} running, {queue.get('waiting', 0)} waiting")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- magics

_HELP = """\
GALACTICA magics (the model runs in the agent process that every notebook shares):

  %galactica status               the agent, its model and queue
  %galactica load SIZE_OR_PATH    load a model (125m, 1.3b, 6.7b, 30b, 120b, a hub id or a
                                  directory); starts an agent when none runs
  %galactica unload               free the model's memory
  %galactica prompts              the science prompt library (papers, molecules, proteins...)
  %%cite [-n N] [-o VAR]          references for the end of the cell's text
  %equation DESCRIPTION           LaTeX for a description (also %%equation); returns it
  %tldr In[n] | Out[n] | VAR      a summary (also %%tldr of the cell)
  %%galactica [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
              [--new-doc]         free generation from the cell's text (--top-p or --top-k
                                  alone samples, as galai; --new-doc starts a new document)
  %%galactica --task NAME [--field KEY=VALUE]
                                  a prompt library template filled from the cell (its first
                                  field; others by --field), e.g. --task iupac_name

{name} in a cell is replaced by the variable name; write {{ and }} for literal braces.
The agent is found through $GALACTICA_URL (and $GALACTICA_API_KEY), the server extension's
runtime file, or started here. Citations can be made up: check each one before citing it.
"""


@magics_class
class GalacticaMagics(Magics):
    """The GALACTICA magics. ``client``: a fixed client; otherwise the agent is located
    on every call (it may have restarted elsewhere) and started when there is none."""

    def __init__(self, shell: Any = None, client: CompletionsClient | None = None) -> None:
        super().__init__(shell)
        self.agent = AgentClient(client)

    # -- the agent

    def client(self, start: bool = True) -> CompletionsClient:
        """The client for the current agent, starting one with ``start`` when none runs."""
        return self.agent.get(start=start)

    def _ready(self, live: _Live) -> CompletionsClient:
        client = self.client(start=True)
        health = client.health()
        if health.get("status") != "ready":
            client.wait_ready(on_progress=lambda h: live.status(_progress_line(h)))
        return client

    def _run(
        self, request: GenerationRequest, live: _Live, placeholder: str | None = None
    ) -> dict[str, Any]:
        client = self._ready(live)
        if placeholder:
            live.status(placeholder)
        shown = ""

        def on_text(text: str) -> None:
            nonlocal shown
            shown = text
            if not placeholder:
                live.text(text)

        try:
            return run_task(client, request, on_text=on_text)
        except KeyboardInterrupt:
            live.interrupted(shown)
            raise Interrupted() from None

    # -- parsing

    @staticmethod
    def _parse(func: Any, line: str) -> Any:
        try:
            return parse_argstring(func, line)
        except UsageError as err:
            raise UsageError(f"{err}\n{func.parser.format_usage()}") from None
        except ValueError as err:  # unbalanced quotes
            raise UsageError(f"{err}\n{func.parser.format_usage()}") from None

    @staticmethod
    def _parse_text(func: Any, line: str) -> tuple[Any, str]:
        """Leading options, then free text (quotes and apostrophes kept as typed)."""
        parser = func.parser
        rest, opts = line.strip(), []
        while rest.startswith("-"):
            token, _, after = rest.partition(" ")
            after = after.lstrip()
            if token == "--":
                rest = after
                break
            action = parser._option_string_actions.get(token.split("=", 1)[0])
            if action is None:
                raise UsageError(f"unrecognized option {token}\n{parser.format_usage()}")
            opts.append(token)
            if action.nargs != 0 and "=" not in token:
                value, _, after = after.partition(" ")
                opts.append(value)
                after = after.lstrip()
            rest = after
        try:
            args = parser.parse_args(opts)
        except UsageError as err:
            raise UsageError(f"{err}\n{parser.format_usage()}") from None
        return args, rest

    @staticmethod
    def _build(func: Any, task: str, text: str, **options: Any) -> GenerationRequest:
        try:
            return tasks.build(task, text, **options)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{err}\n{func.parser.format_usage()}") from None

    def _store(self, func: Any, name: str | None, value: Any) -> None:
        if name:
            self._check_var(func, name)
            self.shell.user_ns[name] = value

    def _check_var(self, func: Any, name: str | None) -> None:
        if name and not name.isidentifier():
            raise UsageError(f"-o {name}: not a valid variable name\n{func.parser.format_usage()}")

    def _text(self, text: str) -> str:
        return interpolate(text, self.shell.user_ns)

    def _cell(self, cell: str) -> str:
        """A cell body as the user wrote it (IPython ends it with a newline), interpolated."""
        return self._text(cell[:-1] if cell.endswith("\n") else cell)

    # -- %galactica / %%galactica

    @no_var_expand
    @magic_arguments()
    @argument(
        "command",
        nargs="*",
        help="line magic: status | load SIZE_OR_PATH | unload | prompts | help (status when empty)",
    )
    @argument("--max-tokens", type=int, help="cell: new tokens at most (64; a template's own)")
    @argument("--temperature", type=float, help="cell: 0 is greedy (the default)")
    @argument("--top-p", type=float, help="cell: nucleus sampling mass (given alone: samples)")
    @argument("--top-k", type=int, help="cell: sample from the K likeliest tokens")
    @argument("--seed", type=int, default=None, help="cell: sampling seed")
    @argument("--new-doc", action="store_true", help="cell: start a new document (</s>)")
    @argument(
        "--task", metavar="NAME", help="cell: a prompt library template (%%galactica prompts)"
    )
    @argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="cell: a template field"
    )
    @argument("-o", "--output", metavar="VAR", help="cell: keep the generated text in VAR")
    @argument("--dtype", help="load: float32, bfloat16, float16 or auto")
    @argument("--device", help="load: cpu, cuda, cuda:N or auto")
    @argument("--quantize", choices=["8bit", "4bit"], help="load: bitsandbytes quantization")
    @argument("--no-wait", action="store_true", help="load: return while the model loads")
    @line_cell_magic
    def galactica(self, line: str, cell: str | None = None) -> None:
        """GALACTICA: manage the agent (line magic) or generate freely from the cell (cell)."""
        args = self._parse(self.galactica, self._text(line))
        usage = self.galactica.parser.format_usage()
        if cell is not None:
            if args.command:
                raise UsageError(
                    f"%%galactica takes options only, not {' '.join(args.command)!r}\n{usage}"
                )
            return self._generate(args, cell)
        command, *rest = args.command or ["status"]
        if command == "help":
            notes = f"{MODEL_LICENCE}\n{MAKES_THINGS_UP}\n"
            print(_HELP + notes + "\n" + self.galactica.parser.format_help())
            return None
        if command == "prompts" and not rest:
            print(f"GALACTICA prompt library (%%galactica --task NAME):\n{prompts.listing()}")
            return None
        if command == "status" and not rest:
            return self._status()
        if command == "unload" and not rest:
            client = self.client(start=False)
            health = client.unload()
            print(f"Unloaded: {status_text(client, health)}")
            return None
        if command == "load" and len(rest) == 1:
            return self._load(rest[0], args)
        raise UsageError(
            f"unknown command {' '.join(args.command)!r}: use status, load SIZE_OR_PATH, "
            f"unload, prompts or help\n{usage}"
        )

    def _status(self) -> None:
        try:
            client = self.client(start=False)
            health = client.health()
        except AgentUnavailable as err:
            print(err)
            return
        print(status_text(client, health))
        print(MODEL_LICENCE)

    def _load(self, spec: str, args: Any) -> None:
        from .specs import resolve_model_spec

        try:
            model = resolve_model_spec(spec)
        except (ValueError, FileNotFoundError) as err:
            raise UsageError(f"{err}\n{self.galactica.parser.format_usage()}") from None
        options = {"dtype": args.dtype, "device": args.device, "quantize": args.quantize}
        options = {k: v for k, v in options.items() if v}
        live = _Live(self.shell)
        if self.agent.fixed or locate() is not None:
            client = self.client(start=False)
            health = client.health()
            loaded = health.get("model") == model and health.get("status") in ("ready", "loading")
            asked = {k: v for k, v in options.items() if k in ("dtype", "device") and v != "auto"}
            if not loaded or any(health.get(k) != v for k, v in asked.items()):
                client.load(model, **options)
        else:  # no agent runs: start one serving this model
            client = self.agent.get(start=True, model=model, **options)
        if args.no_wait:
            print(status_text(client, client.health()))
            return
        health = client.wait_ready(on_progress=lambda h: live.status(_progress_line(h)))
        live.done(_Text(status_text(client, health)), plain=None)

    def _generate(self, args: Any, cell: str) -> None:
        self._check_var(self.galactica, args.output)
        text = self._cell(cell)
        if args.task:
            return run_template(self, args, text)
        if args.field:
            raise UsageError(f"--field goes with --task\n{self.galactica.parser.format_usage()}")
        options = sampling_options(args)
        options.setdefault("max_tokens", 64)
        request = self._build(self.galactica, "complete", text, **options)
        request.stop = []  # free generation: until the end of the document or max_tokens
        live = _Live(self.shell)
        result = self._run(request, live)
        live.done(_Text(result["text"], markdown=True), plain=result["text"])
        self._store(self.galactica, args.output, result["text"])

    # -- %%cite

    @no_var_expand
    @magic_arguments()
    @argument("-n", type=int, default=3, help="how many suggestions (1-16, default 3)")
    @argument("-o", "--output", metavar="VAR", help="keep the suggestions in VAR")
    @argument("--diverse", action="store_true", help="diverse beam search")
    @argument("--max-tokens", type=int, default=64, help="tokens per suggestion (64)")
    @cell_magic
    def cite(self, line: str, cell: str) -> None:
        """Reference suggestions for the end of the cell's text, as a markdown list.

        GALACTICA can make references up (more for rare works): check each one.
        """
        args = self._parse(self.cite, self._text(line))
        self._check_var(self.cite, args.output)
        request = self._build(
            self.cite,
            "cite",
            self._cell(cell),
            n=args.n,
            max_tokens=args.max_tokens,
            diverse=args.diverse,
        )
        live = _Live(self.shell)
        result = self._run(request, live, placeholder="Looking for references…")
        citations = Citations(result["suggestions"], result.get("model"), result["truncated"])
        live.done(citations)
        self._store(self.cite, args.output, citations)

    # -- %equation / %%equation

    @no_var_expand
    @magic_arguments()
    @argument("description", nargs="*", help="what the equation says (line magic)")
    @argument("--max-tokens", type=int, default=128, help="new tokens at most (128)")
    @line_cell_magic
    def equation(self, line: str, cell: str | None = None) -> str:
        """LaTeX for a description: renders it and returns the source."""
        args, text = self._parse_text(self.equation, self._text(line))
        if cell is not None:
            if text:
                raise UsageError(
                    f"%%equation takes the description from the cell, not the line\n"
                    f"{self.equation.parser.format_usage()}"
                )
            text = self._cell(cell)
        request = self._build(self.equation, "equation", text, max_tokens=args.max_tokens)
        live = _Live(self.shell)
        latex = self._run(request, live)["latex"]
        live.done(_Equation(latex) if latex else _Text("(no equation)"), plain=latex)
        return latex

    # -- %tldr / %%tldr

    @no_var_expand
    @magic_arguments()
    @argument("source", nargs="?", help="In[n], Out[n], _ or a variable (line magic)")
    @argument("--max-tokens", type=int, default=96, help="new tokens at most (96)")
    @argument("-o", "--output", metavar="VAR", help="keep the summary in VAR")
    @line_cell_magic
    def tldr(self, line: str, cell: str | None = None) -> None:
        """A TL;DR of the cell, of In[n] or Out[n], of a variable, or of the text given."""
        args, source = self._parse_text(self.tldr, line)
        self._check_var(self.tldr, args.output)
        if cell is not None:
            if source:
                raise UsageError(
                    f"%%tldr summarises the cell: give no source on the line\n"
                    f"{self.tldr.parser.format_usage()}"
                )
            text = self._cell(cell)
        elif not source:
            raise UsageError(
                f"%tldr needs In[n], Out[n], a variable or text (or use %%tldr)\n"
                f"{self.tldr.parser.format_usage()}"
            )
        else:
            text = self._resolve_source(source)
        request = self._build(self.tldr, "summarise", text, max_tokens=args.max_tokens)
        live = _Live(self.shell)
        summary = self._run(request, live)["text"]
        live.done(_Text(summary or "(no summary)", markdown=True), plain=summary)
        self._store(self.tldr, args.output, summary)

    _REF = re.compile(r"(In|Out|_ih|_oh)\[\s*(-?\d+)\s*\]")
    _NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

    def _resolve_source(self, source: str) -> str:
        ns = self.shell.user_ns
        usage = self.tldr.parser.format_usage()
        ref = self._REF.fullmatch(source)
        if ref:
            table, n = ref.group(1), int(ref.group(2))
            try:
                value = ns[table][n]
            except (KeyError, IndexError):
                raise UsageError(f"{source} does not exist in this session\n{usage}") from None
            return self._as_text(value)
        if self._NAME.fullmatch(source):
            head, *attrs = source.split(".")
            if head not in ns:
                raise UsageError(
                    f"{source!r} is not defined: give In[n], Out[n], a variable, or use "
                    f"%%tldr with the text\n{usage}"
                )
            value = ns[head]
            for attr in attrs:
                try:
                    value = getattr(value, attr)
                except AttributeError:
                    raise UsageError(f"{source!r}: no attribute {attr!r}\n{usage}") from None
            return self._as_text(value)
        return self._text(source)  # plain text on the line

    @staticmethod
    def _as_text(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Citations):
            return "\n".join(value.texts)
        return str(value)


def register(ipython: Any, client: CompletionsClient | None = None) -> GalacticaMagics:
    """Register the magics with ``ipython`` (what ``%load_ext galactica_ext`` does)."""
    magics = GalacticaMagics(ipython, client=client)
    ipython.register_magics(magics)
    return magics
