"""The model service: what the handlers ask for status, loading and generation."""

from __future__ import annotations

from typing import Any

from .config import Galactica


def _resolve(spec: str | None) -> str:
    from ..specs import resolve_model_spec

    try:
        return resolve_model_spec(spec or None)
    except (ValueError, FileNotFoundError):
        return spec or ""


class ModelService:
    """Owns the model backend (a supervised local agent or a remote server) for the server."""

    def __init__(self, config: Galactica, log: Any) -> None:
        self.config = config
        self.log = log
        self.state = "stopped"
        self.model = _resolve(config.model)
        self.error: str | None = None

    def on_server_started(self) -> None:
        """Called once the handlers are registered."""

    def status(self) -> dict[str, Any]:
        """The status document of ``GET /galactica/status``."""
        remote = bool(self.config.remote_url)
        return {
            "state": self.state,
            "model": self.model,
            "device": None,
            "dtype": None,
            "memory_bytes": None,
            "progress": None,
            "error": self.error,
            "backend": "remote" if remote else "local",
            "url": self.config.remote_url or None,
        }
