"""IPython magics: GALACTICA's tasks from any kernel (``%load_ext galactica_ext``).

``%galactica status|load|unload|help``, ``%%cite``, ``%equation``/``%%equation``,
``%tldr``/``%%tldr`` and ``%%galactica`` (free generation) talk to the agent through
:mod:`galactica_ext.client`: the one the server extension started (its runtime file),
``$GALACTICA_URL``, or one they start, so the model is loaded once for every front end.
Output streams in place; interrupting the kernel closes the connection, which cancels the
generation on the agent. ``{name}`` in a cell is replaced by the variable ``name``.

This module holds the magic class; what the magics read is :mod:`.magics_args`, what they
show :mod:`.magics_display`, ``--task`` (the prompt library) :mod:`.magics_prompts`.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import (
    Magics,
    cell_magic,
    line_cell_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments

from . import prompts
from .client import AgentUnavailable, CompletionsClient, run_task
from .discovery import AgentClient, locate
from .magics_args import (
    HELP,
    build_request,
    check_var,
    interpolate,
    parse,
    parse_text,
    source_text,
    usage_error,
)
from .magics_display import (
    Citations,
    Interrupted,
    Live,
    Text,
    progress_line,
    result_output,
    status_text,
)
from .magics_prompts import run_template, sampling_options
from .notices import MAKES_THINGS_UP, MODEL_LICENCE
from .tasks import GenerationRequest

__all__ = ["Citations", "GalacticaMagics", "Interrupted", "interpolate", "register"]


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

    def _ready(self, live: Live) -> CompletionsClient:
        client = self.client(start=True)
        health = client.health()
        if health.get("status") != "ready":
            client.wait_ready(on_progress=lambda h: live.status(progress_line(h)))
        return client

    def run(
        self, request: GenerationRequest, placeholder: str | None = None
    ) -> tuple[dict[str, Any], Any]:
        """Run ``request`` on the agent (waiting for its model), streaming its text (or
        showing ``placeholder`` instead), then show the result: returns the result dict and
        the object shown (:func:`.magics_display.result_output`)."""
        live = Live(self.shell)
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
            result = run_task(client, request, on_text=on_text)
        except KeyboardInterrupt:
            live.interrupted(shown)
            raise Interrupted() from None
        shown_as, plain = result_output(request.task, result)
        live.done(shown_as, plain=plain)
        return result, shown_as

    # -- what the magics are given

    def store(self, func: Any, name: str | None, value: Any) -> None:
        """Keep ``value`` in the user's variable ``name`` (``-o NAME``) when given."""
        if name:
            check_var(func, name)
            self.shell.user_ns[name] = value

    def _text(self, text: str) -> str:
        return interpolate(text, self.shell.user_ns)

    def _cell(self, cell: str) -> str:
        """A cell body as the user wrote it (IPython ends it with a newline), interpolated."""
        return self._text(cell[:-1] if cell.endswith("\n") else cell)

    def _cell_only(self, func: Any, cell: str, line_text: str, refusal: str) -> str:
        """The cell's text, for a magic that takes its text from the line or the cell."""
        if line_text:
            raise usage_error(func, refusal)
        return self._cell(cell)

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
        args = parse(self.galactica, self._text(line))
        if cell is not None:
            if args.command:
                raise usage_error(
                    self.galactica,
                    f"%%galactica takes options only, not {' '.join(args.command)!r}",
                )
            return self._generate(args, cell)
        command, *rest = args.command or ["status"]
        if command == "help":
            notes = f"{MODEL_LICENCE}\n{MAKES_THINGS_UP}\n"
            print(HELP + notes + "\n" + self.galactica.parser.format_help())
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
        raise usage_error(
            self.galactica,
            f"unknown command {' '.join(args.command)!r}: use status, load SIZE_OR_PATH, "
            f"unload, prompts or help",
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
            raise usage_error(self.galactica, err) from None
        options = {"dtype": args.dtype, "device": args.device, "quantize": args.quantize}
        options = {k: v for k, v in options.items() if v}
        live = Live(self.shell)
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
        health = client.wait_ready(on_progress=lambda h: live.status(progress_line(h)))
        live.done(Text(status_text(client, health)), plain=None)

    def _generate(self, args: Any, cell: str) -> None:
        check_var(self.galactica, args.output)
        text = self._cell(cell)
        if args.task:
            return run_template(self, args, text)
        if args.field:
            raise usage_error(self.galactica, "--field goes with --task")
        options = sampling_options(args)
        options.setdefault("max_tokens", 64)
        request = build_request(self.galactica, "complete", text, **options)
        request.stop = []  # free generation: until the end of the document or max_tokens
        result, _ = self.run(request)
        self.store(self.galactica, args.output, result["text"])

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
        args = parse(self.cite, self._text(line))
        check_var(self.cite, args.output)
        request = build_request(
            self.cite,
            "cite",
            self._cell(cell),
            n=args.n,
            max_tokens=args.max_tokens,
            diverse=args.diverse,
        )
        _, citations = self.run(request, placeholder="Looking for references…")
        self.store(self.cite, args.output, citations)

    # -- %equation / %%equation

    @no_var_expand
    @magic_arguments()
    @argument("description", nargs="*", help="what the equation says (line magic)")
    @argument("--max-tokens", type=int, default=128, help="new tokens at most (128)")
    @line_cell_magic
    def equation(self, line: str, cell: str | None = None) -> str:
        """LaTeX for a description: renders it and returns the source."""
        args, text = parse_text(self.equation, self._text(line))
        if cell is not None:
            refusal = "%%equation takes the description from the cell, not the line"
            text = self._cell_only(self.equation, cell, text, refusal)
        request = build_request(self.equation, "equation", text, max_tokens=args.max_tokens)
        result, _ = self.run(request)
        return result["latex"]

    # -- %tldr / %%tldr

    @no_var_expand
    @magic_arguments()
    @argument("source", nargs="?", help="In[n], Out[n], _ or a variable (line magic)")
    @argument("--max-tokens", type=int, default=96, help="new tokens at most (96)")
    @argument("-o", "--output", metavar="VAR", help="keep the summary in VAR")
    @line_cell_magic
    def tldr(self, line: str, cell: str | None = None) -> None:
        """A TL;DR of the cell, of In[n] or Out[n], of a variable, or of the text given."""
        args, source = parse_text(self.tldr, line)
        check_var(self.tldr, args.output)
        if cell is not None:
            refusal = "%%tldr summarises the cell: give no source on the line"
            text = self._cell_only(self.tldr, cell, source, refusal)
        elif not source:
            raise usage_error(
                self.tldr, "%tldr needs In[n], Out[n], a variable or text (or use %%tldr)"
            )
        else:
            text = source_text(self.tldr, source, self.shell.user_ns)
        request = build_request(self.tldr, "summarise", text, max_tokens=args.max_tokens)
        result, _ = self.run(request)
        self.store(self.tldr, args.output, result["text"])


def register(ipython: Any, client: CompletionsClient | None = None) -> GalacticaMagics:
    """Register the magics with ``ipython`` (what ``%load_ext galactica_ext`` does)."""
    magics = GalacticaMagics(ipython, client=client)
    ipython.register_magics(magics)
    return magics
