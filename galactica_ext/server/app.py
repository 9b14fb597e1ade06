"""The server extension as a jupyter_server ``ExtensionApp``: its configuration, the model
service, every route in one handler list, and the service's start and stop.

Names, kept apart: :class:`GalacticaServerExtension` is this app (extension name
``galactica_ext``); :class:`~.config.Galactica` is the ``c.Galactica.*`` configuration section
the app reads (its class name is that section's name, kept for existing configurations and
``--Galactica.model=...`` on the command line); the model class of
:mod:`galactica_ext.engine` is unrelated to either.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp

from .backend import ModelService
from .config import Galactica
from .handlers import EXTENSION_NAME, routes
from .library_handlers import GalacticaLibrary, library_routes
from .prompt_handlers import prompt_routes


class GalacticaServerExtension(ExtensionApp):
    """Handlers under ``{base_url}/galactica/`` and the model service behind them."""

    name = EXTENSION_NAME
    description = "GALACTICA in JupyterLab: the model service and its routes"
    load_other_extensions = True
    #: the configuration sections this app reads (``--Galactica.model=...`` parses)
    classes = [Galactica, GalacticaLibrary]  # noqa: RUF012 - traitlets reads it so

    #: the model service (created in :meth:`initialize_settings`)
    service: ModelService

    def initialize_settings(self) -> None:
        self.galactica = Galactica(parent=self)
        self.service = ModelService(self.galactica, log=self.log)

    def initialize_handlers(self) -> None:
        """Every route, in one list: the model and tasks, the science prompt library, the
        citation library (``ExtensionApp`` puts ``{base_url}`` in front)."""
        self.handlers.extend(
            [*routes(), *prompt_routes(), *library_routes(self.service, parent=self)]
        )
        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        self.log.info("galactica_ext: handlers registered under %sgalactica/", base_url)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: start what the configuration says."""
        await self.service.on_server_started()

    async def stop_extension(self) -> None:
        """The server stops: stop our agent, close our clients."""
        await self.service.shutdown()
