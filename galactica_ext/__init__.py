"""galactica-ext: GALACTICA in JupyterLab: citations, equations and summaries where you write.

Importing this package is light: torch loads only with :mod:`galactica_ext.engine`.
"""

from __future__ import annotations

from typing import Any

try:
    from ._version import __version__
except ImportError:  # a source checkout that was never built
    __version__ = "0.0.0.dev0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "galactica-ext"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import GalacticaServerExtension  # an ExtensionApp

    return [{"module": "galactica_ext.server", "app": GalacticaServerExtension}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext galactica_ext``: the GALACTICA magics."""
    from .magics import register
    from .magics_library import register as register_library

    register(ipython)
    register_library(ipython)  # %%cite --library, %galactica library


def load_model(spec: str | None = None, **options: Any) -> Any:
    """Load GALACTICA in this process (galai's entry point).

    Returns a :class:`~galactica_ext.engine.GalacticaModel` with the task methods.
    """
    from .engine import GalacticaModel

    return GalacticaModel.load(spec, **options)


def __getattr__(name: str) -> Any:
    """``galactica_ext.Assistant`` loads ipywidgets only when used."""
    if name == "Assistant":
        from .widget import Assistant

        return Assistant
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
