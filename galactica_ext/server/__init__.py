"""The Jupyter server extension: authenticated handlers under ``{base_url}/galactica/``.

Nothing heavy runs in the server process: no torch import and no model load. The model lives
in a separate agent process (supervised here) or a remote OpenAI-compatible server; this
package reports its status and relays requests to it. The modules, as the data flows:

- :mod:`.app`: :class:`GalacticaServerExtension`, the ``ExtensionApp`` (start, stop, and
  every route in one list);
- :mod:`.config`: ``c.Galactica.*`` (:class:`Galactica`) and the configured remotes;
- :mod:`.handlers`, :mod:`.prompt_handlers`, :mod:`.library_handlers`: the routes;
- :mod:`.backend`: :class:`ModelService`, the state and the backend in use;
- :mod:`.state`: the state type and the backend interface; :mod:`.local` (the agent,
  supervised by :mod:`.supervisor`) and :mod:`.remote` implement it.
"""

from __future__ import annotations

from typing import Any

from .backend import ModelService
from .config import Galactica

__all__ = ["Galactica", "GalacticaServerExtension", "ModelService"]


def __getattr__(name: str) -> Any:
    if name == "GalacticaServerExtension":  # jupyter_server is imported only by the server
        from .app import GalacticaServerExtension

        return GalacticaServerExtension
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import GalacticaServerExtension

    return [{"module": "galactica_ext.server", "app": GalacticaServerExtension}]
