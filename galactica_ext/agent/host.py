"""The agent's model: loaded in a background thread, its progress and state for ``/health``."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from ..specs import resolve_model_spec

log = logging.getLogger(__name__)


class ModelBusy(RuntimeError):
    """A model is loading already."""


class ModelHost:
    """Holds at most one model and its engine; loads and unloads without blocking callers."""

    def __init__(self, **engine_options: Any) -> None:
        self.engine_options = engine_options
        self.galactica: Any = None  # engine.Galactica once ready
        self.status = "empty"
        self.model: str | None = None
        self.error: str | None = None
        self.progress: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> Any:
        return self.galactica.engine if self.galactica is not None else None

    def health(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"device": None, "dtype": None, "memory_bytes": None}
        queue = {"running": 0, "waiting": 0}
        prefix = {"hits": 0, "reused_tokens": 0}
        if self.galactica is not None:
            facts.update(self.galactica.loaded.describe())
            engine = self.galactica.engine
            queue = engine.load
            prefix = {
                "hits": engine.prefix_cache.hits,
                "reused_tokens": engine.prefix_cache.reused_tokens,
            }
        return {
            "status": self.status,
            "model": self.model,
            "progress": self.progress,
            "error": self.error,
            "device": facts["device"],
            "dtype": facts["dtype"],
            "memory_bytes": facts["memory_bytes"],
            "queue": queue,
            "prefix_cache": prefix,
        }

    def load(self, spec: str | None, **options: Any) -> None:
        """Start loading ``spec`` (replacing the current model); returns at once.

        Raises ValueError/FileNotFoundError for a spec that can't name a model, ModelBusy while
        another load runs.
        """
        resolved = resolve_model_spec(spec)
        with self._lock:
            if self.status == "loading":
                raise ModelBusy(f"{self.model} is loading; wait until it is ready or failed")
            self._drop()
            self.status, self.model, self.error = "loading", resolved, None
            self.progress = {"phase": "start", "fraction": 0.0}
            self._thread = threading.Thread(
                target=self._load, args=(resolved, options), name="galactica-load", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def unload(self) -> None:
        with self._lock:
            if self.status == "loading":
                raise ModelBusy(f"{self.model} is loading; unload it once it is ready")
            self._drop()
            self.status, self.model, self.error, self.progress = "empty", None, None, None

    def _drop(self) -> None:
        if self.galactica is not None:
            self.galactica.close()
            self.galactica = None
            import gc

            gc.collect()

    def _report(self, phase: str, fraction: float) -> None:
        self.progress = {"phase": phase, "fraction": round(float(fraction), 4)}

    def _load(self, resolved: str, options: dict[str, Any]) -> None:
        try:
            from ..engine import Galactica

            galactica = Galactica.load(
                resolved, progress=self._report, **options, **self.engine_options
            )
        except BaseException as err:  # reported in /health, never raised into the void
            log.error("loading %s failed:\n%s", resolved, traceback.format_exc())
            self.status, self.error = "failed", f"{type(err).__name__}: {err}"
            return
        self.galactica = galactica
        self.progress = {"phase": "ready", "fraction": 1.0}
        self.status = "ready"
        log.info("model %s ready: %s", resolved, galactica.loaded.describe())

    def close(self) -> None:
        self._drop()
