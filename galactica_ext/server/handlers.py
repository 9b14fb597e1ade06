"""Authenticated REST handlers under ``{base_url}/galactica/``."""

from __future__ import annotations

import json
from typing import Any

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .backend import ModelService


class GalacticaHandler(APIHandler):
    """Base class: access to the model service."""

    def initialize(self, service: ModelService) -> None:
        self.service = service


class StatusHandler(GalacticaHandler):
    """``GET /galactica/status``: the model's state, load progress and placement."""

    @tornado.web.authenticated
    def get(self) -> None:
        self.finish(json.dumps(self.service.status()))


def setup_handlers(web_app: Any, service: ModelService) -> None:
    """Add the extension's routes to the tornado application."""
    base = url_path_join(web_app.settings["base_url"], "galactica")
    kwargs = {"service": service}
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "status"), StatusHandler, kwargs),
        ],
    )
