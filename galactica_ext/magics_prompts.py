"""``%%galactica --task NAME``: the prompt library (and the editor tasks) from a cell, for
:class:`galactica_ext.magics.GalacticaMagics`."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from . import prompts, tasks
from .prompts.display import TemplateResult


def sampling_options(args: Any) -> dict[str, Any]:
    """The decoding options given on a ``%%galactica`` line (the rest keep their defaults:
    ``--top-p`` or ``--top-k`` alone then means sampling, as in galai)."""
    given = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "seed": args.seed,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if args.new_doc:
        options["new_doc"] = True
    return options


def _unquote(text: str) -> str:
    """IPython keeps the quotes around an argument (``"authors=Ada Lovelace"``)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def run_template(magics: Any, args: Any, text: str) -> None:
    """Fill template ``args.task`` from the cell (its first field; others from ``--field
    KEY=VALUE``), run it, show the result (a molecule with its structure) and keep the result
    dict in ``-o VAR``."""
    from .magics import Citations, _Equation, _Live, _Text

    func = magics.galactica
    usage = func.parser.format_usage()
    fields = {}
    for item in args.field:
        key, sep, value = _unquote(item).partition("=")
        if not sep or not key:
            raise UsageError(f"--field {item!r}: write KEY=VALUE\n{usage}")
        fields[key] = _unquote(value)  # the line was interpolated already
    if args.task not in prompts.TEMPLATES and args.task not in tasks.TASKS:
        raise UsageError(
            f"unknown task {args.task!r}: `%galactica prompts` lists the templates; "
            f"the tasks are {', '.join(tasks.TASKS)}\n{usage}"
        )
    request = magics._build(func, args.task, text, **sampling_options(args), **fields)
    live = _Live(magics.shell)
    result = magics._run(request, live)
    shown: Any
    if request.task in prompts.TEMPLATES:
        shown = TemplateResult(request.task, result)
        live.done(shown, plain=shown.plain)
    elif request.task == "cite":
        live.done(Citations(result["suggestions"], result.get("model"), result["truncated"]))
    elif request.task == "equation":
        latex = result["latex"]
        live.done(_Equation(latex) if latex else _Text("(no equation)"), plain=latex)
    else:
        live.done(_Text(result["text"], markdown=True), plain=result["text"])
    magics._store(func, args.output, result)
