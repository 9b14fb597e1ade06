"""The asyncio client (the Jupyter server, async code), on ``openai.AsyncOpenAI``: the
synchronous client's shell with ``await``; the logic is in :mod:`.core` and :mod:`.base`.
Cancelling the task that iterates an :class:`AsyncCompletionStream` closes its connection,
which cancels the generation on the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai

from ..tasks import GenerationRequest
from .base import ClientBase, Flow, Op, T, reply_json, step
from .core import (
    Shower,
    StreamState,
    StreamView,
    build,
    prepare,
    request_payload,
    stream_result,
    whole_result,
)
from .errors import ClientError, from_openai


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

    async def _run(self, flow: Flow[T]) -> T:
        """Run a flow (:mod:`.base`) with ``await``."""
        value, error = None, None
        while True:
            op, result = step(flow, value, error)
            if op is None:
                return result  # type: ignore[return-value]
            value, error = None, None
            try:
                value = await self._do(op)
            except ClientError as err:
                error = err

    async def _do(self, op: Op) -> Any:
        if op.kind == "sleep":
            return await asyncio.sleep(op.seconds)
        try:
            if op.kind == "create":
                return await self._openai.completions.create(**op.args)
            method = self._openai.get if op.kind == "get" else self._openai.post
            extra = {"body": op.body} if op.kind == "post" else {}
            text = await method(self.endpoint(op.path), cast_to=str, options=self.short, **extra)
        except openai.OpenAIError as err:
            raise from_openai(err, self.url) from err
        return reply_json(op.path, op.lenient, text)

    # -- server state

    async def health(self) -> dict[str, Any]:
        """The agent's ``/health`` (other servers' health is made to look alike)."""
        return await self._run(self.health_flow())

    async def models(self) -> list[dict[str, Any]]:
        """``/v1/models``: the served models (OpenAI model objects, ``id`` first)."""
        return await self._run(self.models_flow())

    async def model_id(self) -> str | None:
        """The model id completions are sent with (``model``, else the server's first one)."""
        return await self._run(self.model_id_flow())

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
        options = {"dtype": dtype, "device": device, "quantize": quantize}
        return await self._run(self.load_flow(model, options, wait, timeout, on_progress))

    async def unload(self) -> dict[str, Any]:
        """Ask the agent to free its model."""
        return await self._run(self.unload_flow())

    async def wait_ready(
        self,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.25,
    ) -> dict[str, Any]:
        """Poll ``/health`` until the model is ready; raise if it failed, none is loaded, or
        ``timeout`` seconds pass. ``on_progress`` gets each health while it loads."""
        return await self._run(self.wait_ready_flow(timeout, on_progress, poll))

    # -- completions

    async def complete(self, **payload: Any) -> dict[str, Any]:
        """``POST /v1/completions`` (not streamed): the server's response dict."""
        return (await self._run(self.create_flow(prepare(payload, stream=False)))).to_dict()

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
            self._stream = await self._client._run(self._client.create_flow(self._payload))
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
