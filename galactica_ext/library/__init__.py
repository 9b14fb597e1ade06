"""Bibliographies: the user's own library, so that citations come from it (no torch).

- read: BibTeX/BibLaTeX (:mod:`.bibtex`), CSL-JSON and CSL-YAML, jupyterlab-citation-manager's
  notebook metadata (:mod:`.csl`), cached by modification time (:mod:`.store`);
- find: a notebook's library as the user's tools do (:mod:`.discovery`);
- match: is a free suggestion a library entry? (:mod:`.matching`);
- ground: the cite request constrained to the library's entries (:mod:`.grounding`);
- format: references by citeproc-py (:mod:`.formatting`), export as BibTeX; the keys a
  notebook cites (:mod:`.cited`).

Example::

    from galactica_ext.library import load, grounded_cite
    library = load(["refs.bib"])
    grounding = grounded_cite("... as shown by", library, n=3)
    # run grounding.request through a client, then:
    grounding.suggestions(result_texts)
"""

from __future__ import annotations

from pathlib import Path

from .bibtex import entries_to_bibtex, parse_bibtex
from .cited import cited_keys, keys_in_text, split_open_citation
from .csl import parse_csl_json, parse_csl_yaml, parse_notebook_items
from .discovery import Found, find_library, load_paths, read_notebook
from .formatting import DEFAULT_STYLE, FormatError, format_references
from .grounding import SHORTLIST_CAP, SHORTLIST_SIZE, Grounding, choice_text, grounded_cite
from .matching import TITLE_THRESHOLD, Matcher, check_suggestions, unverified_span
from .model import Entry, Library, Problem
from .store import MAX_BYTES, LibraryStore, PathRefused, resolve_inside

__all__ = [
    "DEFAULT_STYLE",
    "MAX_BYTES",
    "SHORTLIST_CAP",
    "SHORTLIST_SIZE",
    "TITLE_THRESHOLD",
    "Entry",
    "FormatError",
    "Found",
    "Grounding",
    "Library",
    "LibraryStore",
    "Matcher",
    "PathRefused",
    "Problem",
    "check_suggestions",
    "choice_text",
    "cited_keys",
    "entries_to_bibtex",
    "find_library",
    "format_references",
    "grounded_cite",
    "keys_in_text",
    "load",
    "load_paths",
    "parse_bibtex",
    "parse_csl_json",
    "parse_csl_yaml",
    "parse_notebook_items",
    "read_notebook",
    "resolve_inside",
    "split_open_citation",
    "unverified_span",
]

_STORE = LibraryStore()


def load(paths: list[str | Path] | str | Path, store: LibraryStore | None = None) -> Library:
    """The library of one or more files (relative to the working directory), no root check:
    for a kernel reading its user's own files. Problems are in ``library.problems``."""
    if isinstance(paths, str | Path):
        paths = [paths]
    return load_paths([str(p) for p in paths], store or _STORE, base=None, root=None)
