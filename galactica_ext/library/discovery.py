"""Finding a notebook's library the way the user's tools do, first match wins:

1. paths the user set (a setting, ``%galactica library``, ``c.Galactica.library_paths``);
2. the notebook itself: ``metadata.bibliography`` (Pandoc/Quarto/nbconvert) or the
   ``bibliography:`` of YAML front matter in its first markdown cell, plus the items
   jupyterlab-citation-manager stored in its metadata;
3. a ``myst.yml`` (``project.bibliography``) or Jupyter Book ``_config.yml``
   (``bibtex_bibfiles``) in the notebook's folder or above it, up to the root;
4. ``*.bib`` files next to the notebook, except a ``.bib`` our export wrote (its first line
   is :data:`~.bibtex.EXPORT_MARK`): it holds copies of the library's own entries, so beside
   another ``.bib`` it would only repeat their keys. Alone, it is the library; named by the
   user, the notebook or a project file, it is read like any other.

Relative paths are relative to the file that names them. With a ``root`` (the server), no
path outside it is read: see :func:`~.store.resolve_inside`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .bibtex import EXPORT_MARK
from .csl import parse_notebook_items
from .model import Library, Problem
from .store import MAX_BYTES, LibraryStore, PathRefused, file_label, resolve_inside

__all__ = [
    "Found",
    "find_library",
    "front_matter",
    "is_export",
    "load_paths",
    "notebook_bibliography",
    "read_notebook",
]


@dataclass
class Found:
    """The library found for a notebook and where it came from (``origin``)."""

    library: Library
    origin: str  # "user", "notebook", "myst.yml", "_config.yml", "folder" or "none"
    paths: list[str] = field(default_factory=list)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | Path) and str(v).strip()]
    return []


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter (``---`` ... ``---``) at the start of ``text``, or {}."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    for end, line in enumerate(lines[1:], 1):
        if line.strip() in ("---", "..."):
            try:
                data = yaml.safe_load("\n".join(lines[1:end]))
            except yaml.YAMLError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def _cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_bibliography(notebook: dict[str, Any]) -> list[str]:
    """The bibliography paths a notebook names: its metadata, else its front matter."""
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    named = _as_list(metadata.get("bibliography"))
    if named:
        return named
    for cell in notebook.get("cells") or []:
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            return _as_list(front_matter(_cell_text(cell)).get("bibliography"))
    return []


def _project_config(folder: Path, top: Path | None) -> tuple[str, Path, list[str]] | None:
    """The closest myst.yml or _config.yml naming a bibliography, from ``folder`` up."""
    here = folder
    while True:
        for name, read in (("myst.yml", _myst), ("_config.yml", _jupyter_book)):
            config = here / name
            if config.is_file() and config.stat().st_size <= MAX_BYTES:
                try:
                    data = yaml.safe_load(config.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, yaml.YAMLError):
                    data = None
                paths = read(data) if isinstance(data, dict) else []
                if paths:
                    return name, here, paths
        if (top is not None and here == top) or here.parent == here:
            return None
        here = here.parent


def _myst(data: dict[str, Any]) -> list[str]:
    project = data.get("project")
    return _as_list(project.get("bibliography")) if isinstance(project, dict) else []


def _jupyter_book(data: dict[str, Any]) -> list[str]:
    return _as_list(data.get("bibtex_bibfiles"))


def is_export(path: Path) -> bool:
    """Whether ``path`` is a .bib our export wrote (its first line is the export mark)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(EXPORT_MARK.encode()))
    except OSError:
        return False
    return head == EXPORT_MARK.encode()


def _sibling_bibs(folder: Path, allow_hidden: bool) -> list[str]:
    """The ``*.bib`` beside the notebook, our exports left out when another is there."""
    names = sorted(p.name for p in folder.glob("*.bib") if allow_hidden or p.name[:1] != ".")
    own = [name for name in names if not is_export(folder / name)]
    return own or names


def load_paths(
    paths: list[str], store: LibraryStore, *, base: Path | None, root: Path | None,
    allow_hidden: bool = False,
) -> Library:  # fmt: skip
    """The entries of ``paths`` (relative to ``base``) merged in order; refused paths and
    unreadable files become problems."""
    library = Library()
    for path in paths:
        try:
            resolved = resolve_inside(path, root, base, allow_hidden)
        except PathRefused as err:
            library.problems.append(Problem(str(path), str(err).split(": ", 1)[-1]))
            continue
        library.merge(store.read(resolved, file_label(resolved, root)))
    return library


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook's JSON ({} when unreadable); for a markdown notebook, its front matter's
    bibliography as metadata and its text as one markdown cell."""
    if not path.is_file() or path.stat().st_size > 8 * MAX_BYTES:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if path.suffix.lower() == ".ipynb":
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    # a MyST/jupytext markdown notebook: its front matter
    matter = front_matter(text)
    return {
        "metadata": {"bibliography": matter.get("bibliography")} if matter else {},
        "cells": [{"cell_type": "markdown", "source": text}],
    }


def find_library(
    notebook: str | Path | None,
    *,
    root: str | Path | None = None,
    user_paths: list[str] | None = None,
    store: LibraryStore | None = None,
    notebook_json: dict[str, Any] | None = None,
    allow_hidden: bool = False,
) -> Found:
    """The library of ``notebook`` (a path; relative to ``root`` when one is given).

    ``user_paths`` win when given (relative to the notebook's folder, else the root).
    ``notebook_json`` is the notebook's content if the caller has it (unsaved changes);
    otherwise the file is read.
    """
    store = store or LibraryStore()
    top = Path(root).resolve() if root is not None else None
    nb_path: Path | None = None
    problems: list[Problem] = []
    if notebook:
        try:
            nb_path = resolve_inside(notebook, top, None, allow_hidden)
        except PathRefused as err:
            refused = Problem(str(notebook), str(err).split(": ", 1)[-1])
            return Found(Library(problems=[refused]), "none", [])
    folder = nb_path.parent if nb_path is not None else (top or Path.cwd())

    def found(library: Library, origin: str, paths: list[str]) -> Found:
        library.problems[:0] = problems
        return Found(library, origin, paths)

    if user_paths:
        library = load_paths(user_paths, store, base=folder, root=top, allow_hidden=allow_hidden)
        return found(library, "user", list(user_paths))
    if nb_path is not None:
        data = notebook_json if notebook_json is not None else read_notebook(nb_path)
        named = notebook_bibliography(data)
        label = file_label(nb_path, top)
        library = load_paths(named, store, base=folder, root=top, allow_hidden=allow_hidden)
        items, item_problems = parse_notebook_items(data.get("metadata"), label)
        library.problems.extend(item_problems)
        library.extend(items)
        if named or items or item_problems:
            return found(library, "notebook", named)
    if nb_path is not None or top is not None:
        config = _project_config(folder, top)
        if config is not None:
            name, where, named = config
            library = load_paths(named, store, base=where, root=top, allow_hidden=allow_hidden)
            return found(library, name, named)
    siblings = _sibling_bibs(folder, allow_hidden)
    if siblings:
        library = load_paths(siblings, store, base=folder, root=top, allow_hidden=allow_hidden)
        return found(library, "folder", siblings)
    return found(Library(), "none", [])
