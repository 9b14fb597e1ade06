"""The asyncio client (the Jupyter server, async code), on ``openai.AsyncOpenAI``: the
synchronous client's shell with ``await``; the logic is in :mod:`.core` and :mod:`.base`.
Cancelling the task that iterates an :class:`AsyncCompletionStream` closes its connection,
which cancels the generation on the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai

from ..tasks import GenerationRequest
from .base import ClientBase, models_of, reply_json
from .core import (
    Shower,
    StreamState,
    StreamView,
    build,
    health_document,
    is_ours,
    openai_arguments,
    prepare,
    request_payload,
    stream_result,
    unready_error,
    whole_result,
)
from .errors import CompletionError, from_openai


class AsyncCompletionsClient(ClientBase):
    """The asyncio twin of :class:`~galactica_ext.client.CompletionsClient`.

    ``url`` is the server's base URL (``http://host:port``, with or without ``/v1``) and
    ``token`` its bearer token.
    """

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._openai = openai.AsyncOpenAI(**self.openai_options())

    async def aclose(self) -> None:
        await self._openai.close()

    async def __aenter__(self) -> AsyncCompletionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except openai.OpenAIError as err:
            raise from_openai(err, self.url) from err

    async def _get(self, path: str, lenient: bool = False) -> Any:
        return reply_json(
            path,
            lenient,
            await self._call(
                self._openai.get, self.endpoint(path), cast_to=str, options=self.short
            ),
        )

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        text = await self._call(
            self._openai.post, self.endpoint(path), cast_to=str, body=body, options=self.short
        )
        return reply_json(path, False, text)

    # -- server state

    async def health(self) -> dict[str, Any]:
        """The agent's ``/health`` (other servers' health is made to look alike)."""
        try:
            body, ok = await self._get("/health", lenient=True), True
        except CompletionError as err:
            if err.status == 401:
                raise
            body, ok = None, False
        health = health_document(body, ok, None, self.url)
        if not is_ours(health):
            try:
                models = await self.models()
            except CompletionError:
                models = None
            health = health_document(body, ok, models, self.url)
        return health

    async def models(self) -> list[dict[str, Any]]:
        """``/v1/models``: the served models (OpenAI model objects, ``id`` first)."""
        return models_of(await self._get("/v1/models"))

    async def model_id(self) -> str | None:
        """The model id completions are sent with (``model``, else the server's first one)."""
        if self.model:
            return self.model
        if self._model_id is None:
            self.model_from(await self.models())
        return self._model_id

    async def load(
        self,
        model: str,
        *,
        dtype: str | None = None,
        device: str | None = None,
        quantize: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Ask the agent to load ``model``; with ``wait``, return once it is ready. Other
        servers cannot load models on request: :class:`CompletionError` says so."""
        body = {"model": model, "dtype": dtype, "device": device, "quantize": quantize}
        try:
            health = await self._post("/v1/load", {k: v for k, v in body.items() if v})
        except CompletionError as err:
            if err.status in (404, 405):
                raise self.cannot_load(err.status) from err
            raise
        self._model_id = None
        return await self.wait_ready(timeout, on_progress) if wait else health

    async def unload(self) -> dict[str, Any]:
        """Ask the agent to free its model."""
        self._model_id = None
        return await self._post("/v1/unload")

    async def wait_ready(
        self,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.25,
    ) -> dict[str, Any]:
        """Poll ``/health`` until the model is ready; raise if it failed, none is loaded, or
        ``timeout`` seconds pass. ``on_progress`` gets each health while it loads."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            health = await self.health()
            if health.get("status") == "ready":
                self._model_id = None
                return health
            if (err := unready_error(health, self.url)) is not None:
                raise err
            if on_progress is not None:
                on_progress(health)
            if deadline is not None and time.monotonic() > deadline:
                raise CompletionError(f"the model did not become ready within {timeout:.0f} s")
            await asyncio.sleep(poll)

    # -- completions

    async def _create(self, payload: dict[str, Any]) -> Any:
        """``completions.create``; the model id looked up when not given (and looked up
        again once if the server switched models since)."""
        auto, payload = not payload.get("model"), dict(payload)
        for attempt in range(2):
            if not payload.get("model") and (model := await self.model_id()):
                payload["model"] = model
            args = {"model": openai.NOT_GIVEN, **openai_arguments(payload)}
            try:
                return await self._call(self._openai.completions.create, **args)
            except CompletionError as err:
                if attempt or not self.retry_model(payload, auto, err):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def complete(self, **payload: Any) -> dict[str, Any]:
        """``POST /v1/completions`` (not streamed): the server's response dict."""
        return (await self._create(prepare(payload, stream=False))).to_dict()

    def stream(self, **payload: Any) -> AsyncCompletionStream:
        """A streamed completion: ``async with client.stream(...) as s: async for chunk in s``."""
        return AsyncCompletionStream(self, prepare(payload, stream=True))


class AsyncCompletionStream(StreamView):
    """The async twin of :class:`~galactica_ext.client.CompletionStream`: ``async with`` /
    ``async for``, ``aclose()``."""

    def __init__(self, client: AsyncCompletionsClient, payload: dict[str, Any]) -> None:
        self._client, self._payload = client, payload
        self._stream: openai.AsyncStream[Any] | None = None
        self._closed = False
        self._state = StreamState(payload)
        self._iter: AsyncIterator[dict[str, Any]] | None = None

    async def open(self) -> AsyncCompletionStream:
        if self._stream is None and not self._closed:
            self._stream = await self._client._create(self._payload)
        return self

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        await self.open()
        if self._stream is None:
            return
        try:
            async for chunk in self._stream:
                if self._closed:
                    break
                data = chunk.to_dict()
                self._state.add(data)
                yield data
            if not self._closed:
                self._state.finish()
        except openai.OpenAIError as err:
            if not self._closed:
                raise from_openai(err, self._client.url, streaming=True) from err
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._iter is None:
            self._iter = self._chunks()
        return self._iter

    async def __anext__(self) -> dict[str, Any]:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        """Close the connection: the server stops generating for this request."""
        self._closed = True
        if self._stream is not None:
            await self._stream.close()

    async def __aenter__(self) -> AsyncCompletionStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def arun_task(
    client: AsyncCompletionsClient,
    task: str | GenerationRequest,
    text: str = "",
    on_text: Callable[[str], None] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The async twin of :func:`~galactica_ext.client.run_task`; cancelling its task
    cancels the generation."""
    request = build(task, text, options)
    payload = {**request_payload(request), **(extra or {})}
    if payload.get("use_beam_search"):
        return whole_result(request, await client.complete(**payload), on_text)
    async with client.stream(**payload) as stream:
        show = Shower(request, on_text)
        async for _chunk in stream:
            show(stream)
        return stream_result(request, stream)
