"""The Jupyter server extension: authenticated handlers under ``{base_url}/galactica/``.

Nothing heavy runs in the server process: no torch import and no model load. The model lives
in a separate agent process (or a remote OpenAI-compatible server); this package only reports
its status and relays requests to it.
"""

from __future__ import annotations

from typing import Any

from .backend import ModelService
from .config import Galactica
from .handlers import setup_handlers

__all__ = ["Galactica", "ModelService", "_load_jupyter_server_extension"]

#: key under which the model service is kept in the tornado application settings
SERVICE_KEY = "galactica_service"


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers and create the model service (called by jupyter_server)."""
    config = Galactica(parent=server_app)
    service = ModelService(config, log=server_app.log)
    web_app = server_app.web_app
    web_app.settings[SERVICE_KEY] = service
    setup_handlers(web_app, service)
    service.on_server_started()
    server_app.log.info("galactica_ext: handlers registered under %sgalactica/", web_app.settings["base_url"])


# Compatibility with jupyter_server < 2 / notebook-style loading.
load_jupyter_server_extension = _load_jupyter_server_extension
