"""``%%galactica --task NAME``: the prompt library (and the editor tasks) from a cell, and the
decoding options of ``%%galactica``, for :class:`galactica_ext.magics.GalacticaMagics`."""

from __future__ import annotations

from typing import Any

from . import prompts, tasks
from .magics_args import build_request, usage_error


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
    KEY=VALUE``), run it on ``magics`` (a :class:`~galactica_ext.magics.GalacticaMagics`),
    show the result (a molecule with its structure) and keep the result dict in ``-o VAR``."""
    func = magics.galactica
    fields = {}
    for item in args.field:
        key, sep, value = _unquote(item).partition("=")
        if not sep or not key:
            raise usage_error(func, f"--field {item!r}: write KEY=VALUE")
        fields[key] = _unquote(value)  # the line was interpolated already
    if args.task not in prompts.TEMPLATES and args.task not in tasks.TASKS:
        raise usage_error(
            func,
            f"unknown task {args.task!r}: `%galactica prompts` lists the templates; "
            f"the tasks are {', '.join(tasks.TASKS)}",
        )
    request = build_request(func, args.task, text, **sampling_options(args), **fields)
    result, _ = magics.run(request)
    magics.store(func, args.output, result)
