"""The agent's model: checked, loaded in a background thread, swapped in once ready; its state
for ``/health`` (built here, and only here, as :class:`galactica_ext.protocol.Health`)."""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .. import __version__
from ..protocol import Health
from ..specs import is_local, resolve_model_spec

log = logging.getLogger(__name__)

#: how long a replaced model may finish its requests in flight before it is closed
DRAIN_SECONDS = 120.0

HUB_UNREACHABLE = (
    "the Hugging Face hub is unreachable from this machine; point at a local checkpoint "
    "(a directory with config.json, weights and tokenizer files), "
    "e.g. GALACTICA_MODEL=/path/to/galactica-125m"
)


class ModelBusy(RuntimeError):
    """A model is loading already."""


def hub_unreachable(err: BaseException) -> bool:
    """Whether a load failed because the hub can't be reached (offline mode, no network, or a
    model missing from the local cache while offline)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: BaseException | None = err
    for _ in range(8):  # the chain of causes: transformers wraps the hub's errors
        if seen is None:
            return False
        if isinstance(seen, (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError)):
            return True
        if type(seen).__name__ in ("ConnectError", "ConnectTimeout", "ConnectionError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_spec(spec: str | None) -> str:
    """Resolve a model spec and check that it can be a model, before anything is dropped.

    A local directory must hold config.json; a hub id, when the hub is off, must be in the
    local cache. Raises ValueError or FileNotFoundError saying what is wrong.
    """
    resolved = resolve_model_spec(spec)
    if is_local(resolved):
        if not (Path(resolved) / "config.json").is_file():
            raise FileNotFoundError(
                f"{resolved} is not a model: it has no config.json (a local model is a "
                "directory holding config.json, the weights and the tokenizer files)"
            )
    elif _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(resolved, "config.json"), str):
            raise ValueError(HUB_UNREACHABLE)
    return resolved


class ModelHost:
    """Holds at most one serving model and its engine; loads a new one beside it and swaps.

    ``status`` and ``model`` are about the model asked for last (``failed`` if it could not
    load); ``serving`` is the model answering completions, which a failed load leaves in place.
    """

    def __init__(self, **engine_options: Any) -> None:
        self.engine_options = engine_options
        self.serving_model: Any = None  # the engine.GalacticaModel serving now
        self.serving: str | None = None  # its spec
        self.status = "empty"
        self.model: str | None = None  # the model loaded, or loading
        self.error: str | None = None
        #: requests cancelled mid-generation because their client went away
        self.disconnected = 0
        self.progress: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> Any:
        current = self.serving_model
        return current.engine if current is not None else None

    def health(self) -> Health:
        """The ``/health`` document."""
        facts: dict[str, Any] = {}
        queue = {"running": 0, "waiting": 0}
        prefix: dict[str, int] = {}
        threads: dict[str, int] = {}
        current = self.serving_model
        if current is not None:
            facts = current.loaded.describe()
            engine = current.engine
            queue = engine.load
            threads = engine.threads.describe()
            cache = engine.prefix_cache
            prefix = {
                "hits": cache.hits,
                "reused_tokens": cache.reused_tokens,
                "bytes": cache.bytes,
                "max_bytes": cache.max_bytes,
                "entries": cache.entries,
            }
        return Health(
            status=self.status,  # type: ignore[arg-type]
            model=self.model,
            serving=self.serving,
            progress=self.progress,  # type: ignore[arg-type]
            error=self.error,
            device=facts.get("device"),
            dtype=facts.get("dtype"),
            memory_bytes=facts.get("memory_bytes"),
            queue=queue,  # type: ignore[arg-type]
            prefix_cache=prefix,  # type: ignore[arg-type]
            threads=threads,
            disconnected=self.disconnected,
            pid=os.getpid(),
            version=__version__,
        )

    def load(self, spec: str | None, **options: Any) -> None:
        """Check ``spec``, then load it in the background; returns at once. The current model
        serves until the new one is ready.

        Raises ValueError/FileNotFoundError for a spec that can't be a model, ModelBusy while
        another load runs.
        """
        resolved = check_spec(spec)
        with self._lock:
            if self.status == "loading":
                raise ModelBusy(f"{self.model} is loading; wait until it is ready or failed")
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
        """Cancel the running work and free the model (blocking: call it off the event loop)."""
        with self._lock:
            if self.status == "loading":
                raise ModelBusy(f"{self.model} is loading; unload it once it is ready")
            old = self._swap(None, None)
            self.status, self.model, self.error, self.progress = "empty", None, None, None
        _close(old)

    def _swap(self, new: Any, spec: str | None) -> Any:
        old, self.serving_model, self.serving = self.serving_model, new, spec
        return old

    def _report(self, phase: str, fraction: float) -> None:
        self.progress = {"phase": phase, "fraction": round(float(fraction), 4)}

    def _load(self, resolved: str, options: dict[str, Any]) -> None:
        try:
            from ..engine import GalacticaModel

            new = GalacticaModel.load(
                resolved, progress=self._report, **options, **self.engine_options
            )
        except BaseException as err:  # reported in /health, never raised into the void
            log.error("loading %s failed:\n%s", resolved, traceback.format_exc())
            message = HUB_UNREACHABLE if hub_unreachable(err) else f"{type(err).__name__}: {err}"
            with self._lock:
                self.status, self.error = "failed", message
                if self.serving_model is not None:  # the previous model goes on serving
                    self.error = f"{message} (still serving {self.serving})"
            return
        with self._lock:
            old = self._swap(new, resolved)
            self.progress = {"phase": "ready", "fraction": 1.0}
            self.status = "ready"
        log.info("model %s ready: %s", resolved, new.loaded.describe())
        _drain(old)
        _close(old)

    def close(self) -> None:
        with self._lock:
            old = self._swap(None, None)
        _close(old)


def _drain(model: Any, timeout: float = DRAIN_SECONDS) -> None:
    """Let a replaced model finish what it was asked before it is closed: new requests
    already go to its successor, so this only waits for the ones in flight (bounded)."""
    if model is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        load = model.engine.load
        if not load["running"] and not load["waiting"]:
            return
        time.sleep(0.05)
    log.warning("the replaced model still had work after %.0f s; cancelling it", timeout)


def _close(model: Any) -> None:
    """Stop a model's engine (its running requests are cancelled) and free its memory."""
    if model is None:
        return
    model.close()
    import gc

    gc.collect()
