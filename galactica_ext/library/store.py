"""Reading bibliography files safely, with a cache that follows their modification time.

:func:`resolve_inside` is the path rule of the server: a path is read only when it resolves
(symlinks followed) to a file inside the Jupyter root, and is not hidden unless hidden files
are allowed. :class:`LibraryStore` reads ``.bib``/``.bibtex`` (BibTeX, BibLaTeX),
``.json`` (CSL-JSON) and ``.yaml``/``.yml`` (CSL-YAML) files, refuses files over
:data:`MAX_BYTES`, and parses a file again only when its mtime or size changed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .bibtex import parse_bibtex
from .csl import parse_csl_json, parse_csl_yaml
from .model import Entry, Library, Problem

__all__ = ["MAX_BYTES", "READERS", "LibraryStore", "PathRefused", "resolve_inside"]

#: the largest bibliography file read (bytes): 20 MB holds about 50,000 typical entries
MAX_BYTES = 20 * 1024 * 1024
READERS = {
    ".bib": parse_bibtex,
    ".bibtex": parse_bibtex,
    ".json": parse_csl_json,
    ".yaml": parse_csl_yaml,
    ".yml": parse_csl_yaml,
}


class PathRefused(ValueError):
    """A path outside the root (or hidden, or otherwise not to be read)."""


def resolve_inside(
    path: str | Path, root: str | Path | None, base: str | Path | None = None,
    allow_hidden: bool = False,
) -> Path:  # fmt: skip
    """``path`` (relative to ``base``, else to ``root``) resolved, symlinks followed.

    With a ``root``: raises :class:`PathRefused` when the result is outside it or (unless
    ``allow_hidden``) has a hidden part below it. Without one (a kernel, the user's own
    files) only resolves.
    """
    raw = Path(path)
    start = Path(base) if base is not None else (Path(root) if root is not None else Path.cwd())
    full = raw if raw.is_absolute() else start / raw
    resolved = full.resolve()
    if root is None:
        return resolved
    top = Path(root).resolve()
    if not resolved.is_relative_to(top):
        raise PathRefused(f"{path}: outside the Jupyter root, not read")
    parts = resolved.relative_to(top).parts
    if not allow_hidden and any(p.startswith(".") for p in parts):
        raise PathRefused(f"{path}: a hidden file or folder, not read")
    return resolved


@dataclass
class _Cached:
    stamp: tuple[int, int]
    entries: list[Entry]
    problems: list[Problem]


class LibraryStore:
    """Parsed bibliography files, kept until the file changes (mtime or size)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._cache: dict[Path, _Cached] = {}
        self._lock = threading.Lock()
        #: how many times a file was parsed (not served from the cache)
        self.parses = 0

    def read(self, path: Path, label: str | None = None) -> Library:
        """The entries of one file (an absolute, already checked path) and its problems.

        ``label`` is how the file is named in problems and entries (its path relative to
        the root, say). Never raises for bad files: every failure is a problem.
        """
        label = label or str(path)
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            kinds = ", ".join(sorted(READERS))
            return Library(problems=[Problem(label, f"unknown bibliography format: use {kinds}")])
        try:
            info = path.stat()
        except FileNotFoundError:
            return Library(problems=[Problem(label, "no such file")])
        except OSError as err:
            return Library(problems=[Problem(label, f"cannot read it: {err.strerror or err}")])
        if not path.is_file():
            return Library(problems=[Problem(label, "not a file")])
        if info.st_size > self.max_bytes:
            return Library(
                problems=[
                    Problem(
                        label,
                        f"too big to read ({info.st_size / 1e6:.1f} MB; the limit is "
                        f"{self.max_bytes / 1e6:.0f} MB): split it or export only the "
                        "references this notebook needs",
                    )
                ]
            )
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            cached = self._cache.get(path)
        if cached is None or cached.stamp != stamp:
            cached = self._parse(path, label, reader, stamp)
            with self._lock:
                self._cache[path] = cached
        library = Library(problems=list(cached.problems), sources=[label])
        library.extend(cached.entries)
        return library

    def _parse(self, path: Path, label: str, reader, stamp: tuple[int, int]) -> _Cached:
        self.parses += 1
        try:
            raw = path.read_bytes()
        except OSError as err:
            return _Cached(stamp, [], [Problem(label, f"cannot read it: {err.strerror or err}")])
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            text = raw.decode("latin-1")
            note = Problem(label, f"not UTF-8 (byte {err.start}): read as Latin-1")
        else:
            note = None
        if not text.strip():
            return _Cached(stamp, [], [Problem(label, "the file is empty")])
        try:
            entries, problems = reader(text, label)
        except Exception as err:  # a parser bug must not take the library down
            return _Cached(stamp, [], [Problem(label, f"could not be parsed: {err}")])
        if note is not None:
            problems.insert(0, note)
        if not entries and not problems:
            problems.append(Problem(label, "no entries found in the file"))
        return _Cached(stamp, entries, problems)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def file_label(path: Path, root: str | Path | None) -> str:
    """How a file is named to the user: relative to the root when inside it."""
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return os.fspath(path)
