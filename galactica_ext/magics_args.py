"""How the magics read what they are given: ``{name}`` interpolation, options parsed with the
usage in every error, the task request built from them, a ``%tldr`` source, and the help."""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from . import tasks
from .magics_display import Citations
from .tasks import GenerationRequest

__all__ = [
    "HELP",
    "build_request",
    "check_var",
    "interpolate",
    "parse",
    "parse_text",
    "source_text",
    "usage_error",
]

HELP = """\
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


def usage_error(func: Any, message: Any) -> UsageError:
    """A UsageError saying ``message``, then the usage of magic ``func``."""
    return UsageError(f"{message}\n{func.parser.format_usage()}")


def parse(func: Any, line: str) -> Any:
    """The options of magic ``func`` on ``line``."""
    try:
        return parse_argstring(func, line)
    except (UsageError, ValueError) as err:  # ValueError: unbalanced quotes
        raise usage_error(func, err) from None


def parse_text(func: Any, line: str) -> tuple[Any, str]:
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
            raise usage_error(func, f"unrecognized option {token}")
        opts.append(token)
        if action.nargs != 0 and "=" not in token:
            value, _, after = after.partition(" ")
            opts.append(value)
            after = after.lstrip()
        rest = after
    try:
        args = parser.parse_args(opts)
    except UsageError as err:
        raise usage_error(func, err) from None
    return args, rest


def build_request(func: Any, task: str, text: str, **options: Any) -> GenerationRequest:
    """The request of ``task``; a bad option is a UsageError of magic ``func``."""
    try:
        return tasks.build(task, text, **options)
    except (ValueError, TypeError) as err:
        raise usage_error(func, err) from None


def check_var(func: Any, name: str | None) -> None:
    """``-o NAME`` must name a variable."""
    if name and not name.isidentifier():
        raise usage_error(func, f"-o {name}: not a valid variable name")


_REF = re.compile(r"(In|Out|_ih|_oh)\[\s*(-?\d+)\s*\]")
_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def source_text(func: Any, source: str, namespace: dict[str, Any]) -> str:
    """The text a ``%tldr`` source names: ``In[n]``, ``Out[n]``, a variable (``name.attr``),
    else the source itself, interpolated."""
    ref = _REF.fullmatch(source)
    if ref:
        table, n = ref.group(1), int(ref.group(2))
        try:
            value = namespace[table][n]
        except (KeyError, IndexError):
            raise usage_error(func, f"{source} does not exist in this session") from None
        return _as_text(value)
    if _NAME.fullmatch(source):
        head, *attrs = source.split(".")
        if head not in namespace:
            raise usage_error(
                func,
                f"{source!r} is not defined: give In[n], Out[n], a variable, or use "
                f"%%tldr with the text",
            )
        value = namespace[head]
        for attr in attrs:
            try:
                value = getattr(value, attr)
            except AttributeError:
                raise usage_error(func, f"{source!r}: no attribute {attr!r}") from None
        return _as_text(value)
    return interpolate(source, namespace)  # plain text on the line


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Citations):
        return "\n".join(value.texts)
    return str(value)
