"""Which library entries a notebook cites: the keys in its markdown cells, in order.

Recognised forms (what Pandoc, MyST and nbconvert's LaTeX export read):
``[@key]``, ``[see @a, p. 3; @b]``, in-text ``@key``, ``@{key}``; MyST roles
``{cite}`a,b```, ``{cite:p}`key``` and ``{cite:t}`key```; ``<cite data-cite="key">`` and
LaTeX ``\\cite{a,b}`` (``\\citep``, ``\\citet``). Only keys of the library count, so e-mail
addresses and handles are never taken for citations; an escaped ``\\@key`` (as in the
unverified span) is not a key either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .model import Library

__all__ = ["cited_keys", "keys_in_text", "split_open_citation"]

_PANDOC = re.compile(r"(?<![\w@\\])-?@(?:\{([^}\s]+)\}|(\w(?:[\w:.#$%&+?<>~/-]*\w)?))")
_MYST = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
_HTML = re.compile(r"""<cite\s[^>]*data-cite=["']([^"']+)["']""")
_LATEX = re.compile(r"\\cite[a-z]*\*?(?:\[[^\]]*\])*\{([^}]+)\}")


# a citation being typed at the end of the text: ``[@vas``, ``[see @vas``, ``[@a; @vas``,
# ``{cite:p}`vas``, ``{cite}`a,vas``, ``<cite data-cite="vas`` (never an escaped ``\@``)
_OPEN = re.compile(
    r"(?:\[[^\[\]]*?(?<!\\)-?@|\{cite(?::[a-z]+)?\}`(?:[^`]*,)?\s*|<cite\s[^>]*data-cite=[\"'])"
    r"([\w:.#$%&+?<>~/-]*)$"
)


def split_open_citation(text: str) -> tuple[str, str | None]:
    """``(text before the citation, key prefix typed so far)`` when ``text`` ends inside a
    citation being typed (``... as shown in [@vas``), else ``(text, None)``."""
    match = _OPEN.search(text)
    if match is None:
        return text, None
    return text[: match.start()].rstrip(), match.group(1)


def keys_in_text(text: str) -> list[str]:
    """Every citation key written in ``text``, in order (repeats kept)."""
    found: list[tuple[int, str]] = []
    for match in _PANDOC.finditer(text):
        found.append((match.start(), match.group(1) or match.group(2)))
    for pattern in (_MYST, _HTML, _LATEX):
        for match in pattern.finditer(text):
            found += [(match.start(), k.strip()) for k in match.group(1).split(",") if k.strip()]
    return [key for _, key in sorted(found, key=lambda item: item[0])]


def _markdown_cells(notebook: dict[str, Any]) -> Iterable[str]:
    for cell in notebook.get("cells") or []:
        if isinstance(cell, dict) and cell.get("cell_type") in ("markdown", "raw"):
            source = cell.get("source", "")
            yield "".join(source) if isinstance(source, list) else str(source)


def cited_keys(notebook: dict[str, Any], library: Library) -> list[str]:
    """The library keys the notebook's markdown (and raw) cells cite, first use first."""
    keys: dict[str, None] = {}
    for text in _markdown_cells(notebook):
        for key in keys_in_text(text):
            if key in library:
                keys.setdefault(key)
    return list(keys)
