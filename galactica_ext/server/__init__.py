"""The Jupyter server extension: authenticated handlers under ``{base_url}/galactica/``.

Nothing heavy runs in the server process: no torch import and no model load. The model lives
in a separate agent process (supervised here) or a remote OpenAI-compatible server; this
package reports its status and relays requests to it. Configure it with ``c.Galactica.*``
(see :class:`Galactica`).
"""

from __future__ import annotations

from typing import Any

from .backend import ModelService
from .config import Galactica
from .handlers import setup_handlers
from .library_handlers import setup_library_handlers
from .prompt_handlers import setup_prompt_handlers

__all__ = ["Galactica", "ModelService"]

#: key under which the model service is kept in the tornado application settings
SERVICE_KEY = "galactica_service"


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers and create the model service (called by jupyter_server)."""
    config = Galactica(parent=server_app)
    service = ModelService(config, log=server_app.log)
    web_app = server_app.web_app
    web_app.settings[SERVICE_KEY] = service
    setup_handlers(web_app, service)
    setup_library_handlers(web_app, service, parent=server_app)  # the citation library
    setup_prompt_handlers(web_app, service)  # the science prompt library
    server_app.log.info(
        "galactica_ext: handlers registered under %sgalactica/", web_app.settings["base_url"]
    )


async def _start_jupyter_server_extension(server_app: Any) -> None:
    """Once the event loop runs: start the agent if configured to start with the server."""
    service: ModelService = server_app.web_app.settings[SERVICE_KEY]
    await service.on_server_started()
    _stop_with(server_app, service)


def _stop_with(server_app: Any, service: ModelService) -> None:
    """Stop our agent when the server cleans up its extensions."""
    cleanup = server_app.cleanup_extensions

    async def cleanup_extensions(*args: Any, **kwargs: Any) -> Any:
        try:
            await service.shutdown()
        finally:
            result = cleanup(*args, **kwargs)
            if hasattr(result, "__await__"):
                result = await result
        return result

    server_app.cleanup_extensions = cleanup_extensions


# Compatibility with older loaders.
load_jupyter_server_extension = _load_jupyter_server_extension
