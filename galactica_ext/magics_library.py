"""Magics for citations from the user's own library (``%load_ext galactica_ext`` adds them).

- ``%galactica library PATH [PATH ...]`` sets the session's default library and says how many
  entries loaded and which failed to parse; ``%galactica library`` shows it, ``%galactica
  library none`` forgets it. Other ``%galactica`` commands are passed on unchanged.
- ``%%cite --library PATH [-n N] [-o VAR]``: GALACTICA ranks the library's entries for the end
  of the cell (decoding constrained to them) and each suggestion is printed key first, as
  ``[@key]``, with its title, first author and year. Without ``--library`` the session's
  library is used, else the notebook's own (found as the server finds it); with none,
  ``%%cite`` is the free one. ``--free`` asks for free suggestions checked against the library:
  those not in it are marked unverified.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

from IPython.core.display_functions import display
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from . import tasks
from .client import run_task
from .library import Library, Matcher, check_suggestions, find_library, grounded_cite, load
from .magics import GalacticaMagics, interpolate

__all__ = ["LibraryCitations", "LibraryMagics", "register"]

_HELP = """
Citations from your own library:

  %galactica library PATH [PATH ...]   the session's library (.bib, CSL-JSON, CSL-YAML)
  %galactica library                   show it;  %galactica library none  forgets it
  %%cite --library PATH [-n N] [-o VAR] [--free]
                                       GALACTICA ranks the library's entries ([@key] form);
                                       --free: free suggestions, unverified unless found
"""


class LibraryCitations(list):
    """Citation suggestions (dicts: key, title, author, year, source, verified, insert),
    shown one a line, key first; unverified ones are marked."""

    def __init__(self, suggestions: list[dict[str, Any]], note: str = "") -> None:
        super().__init__(suggestions)
        self.note = note

    @property
    def keys(self) -> list[str]:
        """The keys of the suggestions that are library entries."""
        return [s["key"] for s in self if s.get("key")]

    @staticmethod
    def line(suggestion: dict[str, Any]) -> str:
        if suggestion.get("key"):
            who = suggestion.get("author") or "?"
            year = suggestion.get("year") or "n.d."
            return f"[@{suggestion['key']}]  {suggestion['title']} — {who} ({year})"
        return f"{suggestion['insert']}  UNVERIFIED: not in your library, check it exists"

    def __repr__(self) -> str:
        if not self:
            return "No suggestion."
        lines = [f"{i}. {self.line(s)}" for i, s in enumerate(self, 1)]
        return "\n".join([*lines, *([f"({self.note})"] if self.note else [])])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_markdown_(self) -> str:
        if not self:
            return "*No suggestion.*"
        lines = []
        for i, s in enumerate(self, 1):
            if s.get("key"):
                who = f" — {_md(s.get('author') or '?')} ({s.get('year') or 'n.d.'})"
                lines.append(f"{i}. `[@{s['key']}]` {_md(s['title'])}{who}")
            else:
                search = f" ([search for it]({s['search']}))" if s.get("search") else ""
                lines.append(f"{i}. **unverified**: {_md(s['text'])}{search}")
        return "\n".join([*lines, *(["", f"*{_md(self.note)}*"] if self.note else [])])


def _md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", str(text))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise UsageError(f"{message}\n{self.format_usage()}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%cite", add_help=False, exit_on_error=False)
    parser.add_argument("--library", action="append", default=[], metavar="PATH")
    parser.add_argument("--free", action="store_true")
    parser.add_argument("-n", type=int, default=3)
    parser.add_argument("-o", "--output", metavar="VAR")
    parser.add_argument("--diverse", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=None)
    return parser


def _describe(library: Library, paths: list[str]) -> str:
    names = ", ".join(paths) or "the notebook"
    lines = [f"Library {names}: {len(library)} entries loaded"]
    if library.problems:
        lines[0] += f", {len(library.problems)} problem(s):"
        lines += [f"  {p}" for p in library.problems]
    return "\n".join(lines)


@magics_class
class LibraryMagics(Magics):
    """``%%cite --library`` and ``%galactica library``; the other commands go to ``base``."""

    def __init__(self, shell: Any, base: GalacticaMagics) -> None:
        super().__init__(shell)
        self.base = base
        self._cite = shell.find_cell_magic("cite")
        self._galactica = shell.find_line_magic("galactica")
        #: the session's library paths and their library
        self.paths: list[str] = []

    # -- %galactica library

    @no_var_expand
    @line_magic
    def galactica(self, line: str) -> Any:
        """``%galactica library ...``; any other command as ``%galactica`` does it."""
        words = line.split(None, 1)
        if words and words[0] == "library":
            return self._library(words[1] if len(words) > 1 else "")
        result = self._galactica(line)
        if words[:1] == ["help"]:
            print(_HELP)
        return result

    def _library(self, rest: str) -> Library | None:
        paths = shlex.split(interpolate(rest, self.shell.user_ns))
        if paths == ["none"]:
            self.paths = []
            print("No session library: %%cite uses the notebook's, if it has one.")
            return None
        if not paths and not self.paths:
            print("No session library: set one with %galactica library PATH")
            return None
        library = load(paths or self.paths)
        if paths and len(library):
            self.paths = [str(Path(p).expanduser().resolve()) for p in paths]
        print(_describe(library, paths or self.paths))
        if paths and not len(library):
            print("Nothing loaded: the session library is unchanged.")
        return library

    # -- %%cite

    def _found_library(self, paths: list[str]) -> tuple[Library | None, str]:
        if paths:
            return load(paths), ", ".join(paths)
        if self.paths:
            return load(self.paths), ", ".join(self.paths)
        notebook = self.shell.user_ns.get("__session__")  # the notebook's path (ipykernel)
        if isinstance(notebook, str) and notebook.endswith((".ipynb", ".md")):
            path = Path(notebook)
            if not path.is_file():  # a path relative to the server's root: the kernel runs
                path = Path.cwd() / path.name  # in the notebook's folder
            found = find_library(path)
            if len(found.library):
                return found.library, ", ".join(found.library.sources)
        return None, ""

    @no_var_expand
    @cell_magic
    def cite(self, line: str, cell: str) -> LibraryCitations | None:
        """Citations for the end of the cell: from your library when one is known."""
        parser = _parser()
        try:
            args, unknown = parser.parse_known_args(
                shlex.split(interpolate(line, self.shell.user_ns))
            )
        except (argparse.ArgumentError, ValueError) as err:
            raise UsageError(f"{err}\n{parser.format_usage()}") from None
        library, where = self._found_library(args.library)
        if library is None:
            return self._cite(line, cell)  # no library: the free %%cite
        if unknown:
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        if not len(library):
            raise UsageError(
                "the library has no entries:\n" + "\n".join(f"  {p}" for p in library.problems)
            )
        if args.output and not args.output.isidentifier():
            raise UsageError(f"-o {args.output}: not a valid variable name")
        text = interpolate(cell[:-1] if cell.endswith("\n") else cell, self.shell.user_ns)
        options = {"diverse": args.diverse}
        if args.max_tokens:
            options["max_tokens"] = args.max_tokens
        try:
            if args.free:
                request = tasks.cite(text, n=args.n, **options)
            else:
                grounding = grounded_cite(text, library, n=args.n, **options)
                request = grounding.request
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from None
        client = self.base.client(start=True)
        if client.health().get("status") != "ready":
            print("Waiting for the model…")
            client.wait_ready()
        if args.free:
            result = run_task(client, request)
            suggestions = check_suggestions(result["suggestions"], Matcher(library))
            note = f"free suggestions checked against {where}"
        else:
            result = grounding.run(lambda r: run_task(client, r))
            suggestions = grounding.suggestions(s["text"] for s in result["suggestions"])
            note = f"GALACTICA ranked {len(grounding.entries)} entries of {where}"
        if library.problems:
            note += (
                f"; {len(library.problems)} problem(s) reading it: %galactica library shows them"
            )
        citations = LibraryCitations(suggestions, note)
        display(citations)
        if args.output:
            self.shell.user_ns[args.output] = citations
        return None


def register(ipython: Any) -> LibraryMagics:
    """Add the library magics over the GALACTICA magics already registered."""
    base = next(
        (m for m in ipython.magics_manager.registry.values() if isinstance(m, GalacticaMagics)),
        None,
    )
    if base is None:
        from .magics import register as register_base

        base = register_base(ipython)
    magics = LibraryMagics(ipython, base)
    ipython.register_magics(magics)
    return magics
