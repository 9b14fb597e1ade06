"""The citation library's routes under ``{base_url}/galactica/``.

- ``GET  library?path=NB[&library=P...][&summary=1]``: the notebook's library (entries: key,
  title, author, year, doi, url) and every problem met reading it; ``summary=1``: no entries,
  only where it came from, its sources, size and problems;
- ``POST library/format``: references for ``keys`` (a list, or ``"cited"``: the keys the
  notebook's markdown cites), formatted by citeproc-py (``format``: text, html, markdown);
- ``POST library/export``: the ``keys``' entries written as ``.bib`` beside the notebook
  (409 when the file exists, unless ``overwrite: true``), its first line marking it as an
  export so that discovery does not read it beside the user's own ``.bib``;
- ``POST cite``: citations for ``text``: grounded in the notebook's library (GALACTICA picks
  among its entries: ``source: "library"``), or free and checked against it (a match is
  shown as the entry; the rest ``verified: false``).

Files are read only inside the contents manager's ``root_dir`` (symlinks resolved; hidden
files as the contents manager allows) and written through the contents manager. Parsing runs
in a thread; parsed files are cached until their modification time changes.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from pathlib import Path
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async
from traitlets import Int, List, Unicode
from traitlets.config import Configurable

from .. import tasks
from ..client import CompletionError
from ..library import (
    DEFAULT_STYLE,
    SHORTLIST_CAP,
    SHORTLIST_SIZE,
    FormatError,
    LibraryStore,
    Matcher,
    check_suggestions,
    cited_keys,
    entries_to_bibtex,
    find_library,
    format_references,
    grounded_cite,
    read_notebook,
    resolve_inside,
    split_open_citation,
)
from ..library.discovery import Found
from .backend import ModelService, ModelUnavailable
from .handlers import GalacticaHandler, check_fields

__all__ = ["GalacticaLibrary", "library_routes"]

STORE_KEY = "galactica_library_store"
#: the most keys one format or export request may name
MAX_KEYS = 5000


class GalacticaLibrary(Configurable):
    """Citation library options: ``c.GalacticaLibrary.paths = ["refs/main.bib"]``."""

    paths = List(
        Unicode(),
        default_value=[],
        config=True,
        help=(
            "Bibliography files (relative to the Jupyter root) used for every notebook, "
            "before the notebook's own bibliography, myst.yml/_config.yml or *.bib beside it."
        ),
    )
    max_file_mb = Int(20, config=True, help="The largest bibliography file read (MB).")
    style = Unicode(DEFAULT_STYLE, config=True, help="CSL style of formatted references.")
    shortlist = Int(
        SHORTLIST_CAP,
        config=True,
        help="A library of up to this many entries is offered whole in a grounded cite.",
    )
    shortlist_size = Int(
        SHORTLIST_SIZE,
        config=True,
        help="A larger library is shortlisted (BM25 over the text) to this many entries.",
    )


class LibraryHandler(GalacticaHandler):
    """Shared: the root, the store, the notebook's library."""

    def initialize(self, service: ModelService, config: GalacticaLibrary) -> None:  # type: ignore[override]
        super().initialize(service)
        self.library_config = config

    @property
    def store(self) -> LibraryStore:
        settings = self.settings
        if STORE_KEY not in settings:
            settings[STORE_KEY] = LibraryStore(self.library_config.max_file_mb * 1024 * 1024)
        return settings[STORE_KEY]

    def root(self) -> Path:
        root = getattr(self.contents_manager, "root_dir", None)
        if not root:
            raise tornado.web.HTTPError(
                400, "the citation library needs a file-based contents manager (no root_dir)"
            )
        return Path(root)

    @staticmethod
    def notebook_path(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise ValueError("path must be the notebook's path (relative to the Jupyter root)")
        return value.strip().lstrip("/")

    @staticmethod
    def user_paths(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("library must be a path or a list of paths")
        return [v for v in value if v.strip()]

    async def library(self, path: str, user_paths: list[str]) -> Found:
        """The notebook's library, read in a thread; ValueError for a notebook path outside
        the root (or hidden)."""
        hidden = bool(getattr(self.contents_manager, "allow_hidden", False))
        notebook = resolve_inside(path, self.root(), None, hidden)  # PathRefused: a ValueError
        if not notebook.is_file():
            raise tornado.web.HTTPError(404, f"no notebook at {path}")
        return await asyncio.to_thread(
            find_library,
            path,
            root=self.root(),
            user_paths=user_paths or list(self.library_config.paths),
            store=self.store,
            allow_hidden=hidden,
        )

    @staticmethod
    def described(found: Found) -> dict[str, Any]:
        return {
            "origin": found.origin,
            "sources": list(found.library.sources),
            "size": len(found.library),
            "problems": [p.to_dict() for p in found.library.problems],
        }

    async def keys(self, body: dict[str, Any], path: str, found: Found) -> list[str]:
        """The ``keys`` asked for; ``"cited"``: the keys the notebook cites, first use first."""
        keys = body.get("keys")
        if keys == "cited":
            notebook = self.root() / path
            data = await asyncio.to_thread(read_notebook, notebook.resolve())
            return cited_keys(data, found.library)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError('keys must be a list of entry keys, or "cited"')
        if len(keys) > MAX_KEYS:
            raise ValueError(f"at most {MAX_KEYS} keys at once")
        return list(dict.fromkeys(keys))


#: ``summary`` query values: only the counts, or every entry too
SUMMARY = {"1": True, "true": True, "0": False, "false": False, "": False}


class LibraryGetHandler(LibraryHandler):
    """``GET /galactica/library?path=NB[&summary=1]``: entries and problems; with
    ``summary=1`` only the origin, sources, size and problems (is there a library?)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            path = self.notebook_path(self.get_query_argument("path", ""))
            user_paths = self.user_paths(self.get_query_arguments("library"))
            summary = SUMMARY.get(self.get_query_argument("summary", "").strip().lower())
            if summary is None:
                raise ValueError("summary must be 1 (counts only) or 0 (every entry)")
            found = await self.library(path, user_paths)
        except ValueError as err:
            return self.fail(400, str(err))
        described = self.described(found)
        if not summary:
            described = {"entries": [e.to_dict() for e in found.library], **described}
        self.finish(json.dumps(described))


class LibraryFormatHandler(LibraryHandler):
    """``POST /galactica/library/format``: ``{"path", "keys", "style"?, "format"?}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        try:
            check_fields(body, {"path", "keys", "style", "format", "library"})
            path = self.notebook_path(body.get("path"))
            style = body.get("style") or self.library_config.style
            output = body.get("format") or "text"
            if not isinstance(style, str) or style.endswith(".csl"):
                raise ValueError("style must be the name of a style citeproc-py ships")
            if not isinstance(output, str):
                raise ValueError("format must be text, html or markdown")
            found = await self.library(path, self.user_paths(body.get("library")))
            keys = await self.keys(body, path, found)
            entries = [e for k in keys if (e := found.library.get(k)) is not None]
            references, problems = await asyncio.to_thread(
                format_references, entries, style, output
            )
        except (ValueError, FormatError) as err:
            return self.fail(400, str(err))
        missing = [k for k in keys if k not in found.library]
        described = self.described(found)
        described["problems"] += [p.to_dict() for p in problems]
        self.finish(
            json.dumps({"references": references, "missing": missing, "style": style, **described})
        )


class LibraryExportHandler(LibraryHandler):
    """``POST /galactica/library/export``: ``{"path", "keys", "filename"?, "overwrite"?}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        try:
            check_fields(body, {"path", "keys", "filename", "overwrite", "library"})
            path = self.notebook_path(body.get("path"))
            name = body.get("filename") or posixpath.splitext(posixpath.basename(path))[0] + ".bib"
            if (
                not isinstance(name, str)
                or "/" in name
                or "\\" in name
                or name.startswith(".")
                or not name.endswith(".bib")
            ):
                raise ValueError("filename must be a plain file name ending in .bib")
            overwrite = body.get("overwrite", False)
            if not isinstance(overwrite, bool):
                raise ValueError("overwrite must be true or false")
            found = await self.library(path, self.user_paths(body.get("library")))
            keys = await self.keys(body, path, found)
            if not keys:
                raise ValueError("no keys: name the entries to export (the notebook cites none)")
        except ValueError as err:
            return self.fail(400, str(err))
        entries = [e for k in keys if (e := found.library.get(k)) is not None]
        missing = [k for k in keys if k not in found.library]
        if not entries:
            return self.fail(400, f"none of the keys is in the notebook's library: {missing}")
        target = posixpath.join(posixpath.dirname(path), name)
        manager = self.contents_manager
        if not overwrite and await ensure_async(manager.file_exists(target)):
            return self.fail(409, f"{target} exists: send overwrite: true to replace it")
        content = entries_to_bibtex(entries, notebook=posixpath.basename(path))
        model = {"type": "file", "format": "text", "content": content}
        saved = await ensure_async(manager.save(model, target))
        self.finish(
            json.dumps(
                {"path": saved.get("path", target), "written": [e.key for e in entries],
                 "missing": missing}
            )
        )  # fmt: skip


CITE_FIELDS = {"text", "path", "grounded", "n", "library", "prefix"}


class CiteHandler(LibraryHandler):
    """``POST /galactica/cite``: ``{"text", "path"?, "grounded"?: true, "n"?: 3, "prefix"?}``.

    A text that ends inside a citation being typed (``... shown in [@vas``) is cited from
    before it, among the keys starting with what was typed (``prefix`` overrides that).
    """

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        try:
            check_fields(body, CITE_FIELDS)
            text = tasks.check_text(body.get("text"))
            grounded = body.get("grounded", True)
            if not isinstance(grounded, bool):
                raise ValueError("grounded must be true or false")
            n = body.get("n", 3)
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= tasks.MAX_N:
                raise ValueError(f"n must be an integer from 1 to {tasks.MAX_N}")
            user_paths = self.user_paths(body.get("library"))
            path = body.get("path")
            found = await self.library(self.notebook_path(path), user_paths) if path else None
            text, typed = split_open_citation(text)
            prefix = body.get("prefix", typed)
            if prefix is not None and not isinstance(prefix, str):
                raise ValueError("prefix must be a string (the start of a key)")
            tasks.check_text(text, "the text before the citation")
        except (ValueError, TypeError) as err:
            return self.fail(400, str(err))
        library = found.library if found is not None else None
        if library is not None and prefix:
            library = library.with_key_prefix(prefix)
            if grounded and not len(library):
                info = {**self.described(found), "prefix": prefix}  # type: ignore[arg-type]
                return self.finish(
                    json.dumps({"suggestions": [], "grounded": True, "offered": 0,
                                "truncated": False, "library": info})
                )  # fmt: skip
        try:
            if grounded and library is not None and len(library):
                config = self.library_config
                grounding = await asyncio.to_thread(
                    grounded_cite, text, library, n=n, cap=config.shortlist,
                    size=config.shortlist_size,
                )  # fmt: skip
                result = await grounding.arun(self._run)
                suggestions = grounding.suggestions(s["text"] for s in result["suggestions"])
                extra = {"grounded": True, "offered": len(grounding.entries)}
            else:
                request = await asyncio.to_thread(tasks.cite, text, n=n)
                result = await self._run(request)
                matcher = Matcher(library) if library is not None and len(library) else None
                suggestions = check_suggestions(result["suggestions"], matcher)
                extra = {"grounded": False}
        except ModelUnavailable as err:
            return self.fail(503, str(err))
        except CompletionError as err:
            return self.fail_upstream(err)
        except (ValueError, TypeError) as err:
            return self.fail(400, str(err))
        library_info = self.described(found) if found is not None else None
        if library_info is not None:
            library_info["prefix"] = prefix
        self.finish(
            json.dumps(
                {
                    "suggestions": suggestions,
                    "truncated": result.get("truncated", False),
                    "library": library_info,
                    **extra,
                }
            )
        )

    async def _run(self, request: tasks.GenerationRequest) -> dict[str, Any]:
        async for _status in self.service.wait_ready():
            pass  # wait for the model (the sidebar shows the progress)

        async def ignore(index: int, text: str) -> None:
            return None

        return await self.service.run(request, ignore)


def library_routes(
    service: ModelService, parent: Any = None
) -> list[tuple[str, type[GalacticaHandler], dict[str, Any]]]:
    """The library's routes, for the app's handler list (it puts ``{base_url}`` in front;
    ``parent``: the app, for ``c.GalacticaLibrary``)."""
    kwargs = {"service": service, "config": GalacticaLibrary(parent=parent)}
    return [
        ("/galactica/library", LibraryGetHandler, kwargs),
        ("/galactica/library/format", LibraryFormatHandler, kwargs),
        ("/galactica/library/export", LibraryExportHandler, kwargs),
        ("/galactica/cite", CiteHandler, kwargs),
    ]
