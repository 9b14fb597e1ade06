"""What both clients share: the server's URL and token, the model id, the OpenAI library's
client options, and every exchange with the server written once, as a *flow*.

A flow is a generator that yields the I/O it needs (:class:`Op`: a GET, a POST, a
completion, a pause) and gets back the answer (or has the client's error thrown into it);
:class:`~.sync.CompletionsClient` runs flows with blocking calls and
:class:`~.aio.AsyncCompletionsClient` with ``await``, so neither holds any logic of its own."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import openai

from .core import (
    health_document,
    is_ours,
    normalise_url,
    openai_arguments,
    unready_error,
)
from .errors import ClientError, CompletionError

T = TypeVar("T")


@dataclass(frozen=True)
class Op:
    """One piece of I/O a flow asks for: ``get``/``post`` a path (JSON back), ``create`` a
    completion (the OpenAI library's reply back), or ``sleep``."""

    kind: Literal["get", "post", "create", "sleep"]
    path: str = ""
    body: dict[str, Any] | None = None
    lenient: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


#: a flow: yields :class:`Op`, is sent each answer, returns its result
Flow = Generator[Op, Any, T]


def step(flow: Flow[T], value: Any, error: ClientError | None) -> tuple[Op | None, T | None]:
    """Advance ``flow`` with an answer or an error: its next Op, or (None, its result)."""
    try:
        return (flow.throw(error) if error is not None else flow.send(value)), None
    except StopIteration as stop:
        return None, stop.value


#: a token for servers that need none (the OpenAI library sends one always)
NO_TOKEN = "no-token"


class ClientBase:
    """URL, auth and model id; the sync and async clients add the I/O."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        model: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        #: base URL, without ``/v1``
        self.url = normalise_url(url)
        self.token = token or None
        #: the model id sent with completions; None: the server's first model (``/v1/models``)
        self.model = model
        self._model_id: str | None = None
        #: a completion may take long; a server that does not answer is known in seconds
        self._timeout = openai.Timeout(timeout, connect=connect_timeout)
        #: the options of the short requests (health, models, load)
        self.short: dict[str, Any] = {"timeout": openai.Timeout(30.0, connect=connect_timeout)}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def openai_options(self) -> dict[str, Any]:
        """``OpenAI(...)``/``AsyncOpenAI(...)`` arguments: no retries (a 503 is the caller's
        to handle), our timeouts, the token or a placeholder."""
        return {
            "base_url": self.url + "/v1",
            "api_key": self.token or NO_TOKEN,
            "max_retries": 0,
            "timeout": self._timeout,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def endpoint(self, path: str) -> str:
        return self.url + path

    def cannot_load(self, status: int) -> CompletionError:
        return CompletionError(
            f"the server at {self.url} cannot load models on request: start it with the "
            "model instead",
            status,
        )

    @staticmethod
    def is_unknown_model(err: CompletionError) -> bool:
        return err.status == 404 or (err.param == "model" and err.status in (400, 404))

    # -- the flows (what each request does, written once)

    def health_flow(self) -> Flow[dict[str, Any]]:
        """The agent's ``/health`` (other servers' health is made to look alike)."""
        try:
            body, ok = (yield Op("get", "/health", lenient=True)), True
        except CompletionError as err:
            if err.status == 401:
                raise
            body, ok = None, False
        health = health_document(body, ok, None, self.url)
        if not is_ours(health):
            try:
                models = yield from self.models_flow()
            except CompletionError:
                models = None
            health = health_document(body, ok, models, self.url)
        return health

    def models_flow(self) -> Flow[list[dict[str, Any]]]:
        """``/v1/models``: the served models (OpenAI model objects, ``id`` first)."""
        return models_of((yield Op("get", "/v1/models")))

    def model_id_flow(self) -> Flow[str | None]:
        """The model id completions are sent with (``model``, else the server's first one)."""
        if self.model:
            return self.model
        if self._model_id is None:
            models = yield from self.models_flow()
            self._model_id = models[0].get("id") if models else None
        return self._model_id

    def load_flow(
        self,
        model: str,
        options: dict[str, str | None],
        wait: bool,
        timeout: float | None,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> Flow[dict[str, Any]]:
        """Ask the agent to load ``model``; with ``wait``, until it is ready. Other servers
        cannot load models on request: :class:`CompletionError` says so."""
        body = {"model": model, **{k: v for k, v in options.items() if v}}
        try:
            health = yield Op("post", "/v1/load", body=body)
        except CompletionError as err:
            if err.status in (404, 405):
                raise self.cannot_load(err.status) from err
            raise
        self._model_id = None
        if wait:
            health = yield from self.wait_ready_flow(timeout, on_progress, 0.25)
        return health

    def unload_flow(self) -> Flow[dict[str, Any]]:
        """Ask the agent to free its model."""
        self._model_id = None
        return (yield Op("post", "/v1/unload"))

    def wait_ready_flow(
        self,
        timeout: float | None,
        on_progress: Callable[[dict[str, Any]], None] | None,
        poll: float,
    ) -> Flow[dict[str, Any]]:
        """Poll ``/health`` until the model is ready; raise if it failed, none is loaded, or
        ``timeout`` seconds pass. ``on_progress`` gets each health while it loads."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            health = yield from self.health_flow()
            if health.get("status") == "ready":
                self._model_id = None
                return health
            if (err := unready_error(health, self.url)) is not None:
                raise err
            if on_progress is not None:
                on_progress(health)
            if deadline is not None and time.monotonic() > deadline:
                raise CompletionError(f"the model did not become ready within {timeout:.0f} s")
            yield Op("sleep", seconds=poll)

    def create_flow(self, payload: dict[str, Any]) -> Flow[Any]:
        """``completions.create``; the model id looked up when not given (and looked up
        again, once, if the server switched models since)."""
        auto, payload = not payload.get("model"), dict(payload)
        for attempt in range(2):
            if not payload.get("model"):
                model = yield from self.model_id_flow()
                if model:
                    payload["model"] = model
            args = {"model": openai.NOT_GIVEN, **openai_arguments(payload)}
            try:
                return (yield Op("create", args=args))
            except CompletionError as err:
                retry = auto and self.is_unknown_model(err) and not self.model
                if attempt or not retry or self._model_id is None:
                    raise
                self._model_id = None  # forget it: ask the server for its model again
                payload.pop("model", None)
        raise AssertionError("unreachable")  # pragma: no cover


def models_of(data: Any) -> list[dict[str, Any]]:
    """The model objects of a ``/v1/models`` reply."""
    return (
        [m for m in data.get("data") or [] if isinstance(m, dict)] if isinstance(data, dict) else []
    )


def reply_json(path: str, lenient: bool, text: str) -> Any:
    """A reply's JSON; a reply that is not JSON is a CompletionError (None when ``lenient``:
    other servers answer ``/health`` with an empty body)."""
    try:
        return json.loads(text)
    except ValueError:
        if lenient:
            return None
        raise CompletionError(
            f"the server answered {path} with something other than JSON: {text[:200]!r}"
        ) from None
