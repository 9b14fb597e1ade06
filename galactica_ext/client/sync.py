"""The synchronous client (kernels, the widget's worker thread, scripts), on ``openai.OpenAI``.

Closing a :class:`CompletionStream` closes its connection, which cancels the generation on
the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


class CompletionsClient(ClientBase):
    """A client for our agent or any OpenAI-compatible completions server.

    ``url`` is the server's base URL (``http://host:port``, with or without ``/v1``) and
    ``token`` its bearer token.
    """

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._openai = openai.OpenAI(**self.openai_options())

    def close(self) -> None:
        self._openai.close()

    def __enter__(self) -> CompletionsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, flow: Flow[T]) -> T:
        """Run a flow (:mod:`.base`) with blocking calls."""
        value, error = None, None
        while True:
            op, result = step(flow, value, error)
            if op is None:
                return result  # type: ignore[return-value]
            value, error = None, None
            try:
                value = self._do(op)
            except ClientError as err:
                error = err

    def _do(self, op: Op) -> Any:
        if op.kind == "sleep":
            return time.sleep(op.seconds)
        try:
            if op.kind == "create":
                return self._openai.completions.create(**op.args)
            method = self._openai.get if op.kind == "get" else self._openai.post
            extra = {"body": op.body} if op.kind == "post" else {}
            text = method(self.endpoint(op.path), cast_to=str, options=self.short, **extra)
        except openai.OpenAIError as err:
            raise from_openai(err, self.url) from err
        return reply_json(op.path, op.lenient, text)

    # -- server state

    def health(self) -> dict[str, Any]:
        """The agent's ``/health`` (other servers' health is made to look alike)."""
        return self._run(self.health_flow())

    def models(self) -> list[dict[str, Any]]:
        """``/v1/models``: the served models (OpenAI model objects, ``id`` first)."""
        return self._run(self.models_flow())

    def model_id(self) -> str | None:
        """The model id completions are sent with (``model``, else the server's first one)."""
        return self._run(self.model_id_flow())

    def load(
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
        return self._run(self.load_flow(model, options, wait, timeout, on_progress))

    def unload(self) -> dict[str, Any]:
        """Ask the agent to free its model."""
        return self._run(self.unload_flow())

    def wait_ready(
        self,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.25,
    ) -> dict[str, Any]:
        """Poll ``/health`` until the model is ready; raise if it failed, none is loaded, or
        ``timeout`` seconds pass. ``on_progress`` gets each health while it loads."""
        return self._run(self.wait_ready_flow(timeout, on_progress, poll))

    # -- completions

    def complete(self, **payload: Any) -> dict[str, Any]:
        """``POST /v1/completions`` (not streamed): the server's response dict."""
        return self._run(self.create_flow(prepare(payload, stream=False))).to_dict()

    def stream(self, **payload: Any) -> CompletionStream:
        """``POST /v1/completions`` streamed: a :class:`CompletionStream` of chunk dicts.

        The request is sent on first iteration (or :meth:`CompletionStream.open`); closing the
        stream, or leaving its ``with`` block, closes the connection and cancels the generation.
        """
        return CompletionStream(self, prepare(payload, stream=True))


class CompletionStream(StreamView):
    """The chunks of a streamed completion, as dicts; ``texts``, ``outputs``,
    ``finish_reasons`` and ``usage`` accumulate as they arrive. A stream that ends before
    the model finished raises :class:`~galactica_ext.client.StreamCut`."""

    def __init__(self, client: CompletionsClient, payload: dict[str, Any]) -> None:
        self._client, self._payload = client, payload
        self._stream: openai.Stream[Any] | None = None
        self._closed = False
        self._state = StreamState(payload)

    def open(self) -> CompletionStream:
        """Send the request (done by the first iteration otherwise); raises on an error status."""
        if self._stream is None and not self._closed:
            self._stream = self._client._run(self._client.create_flow(self._payload))
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.open()
        if self._stream is None:
            return
        try:
            for chunk in self._stream:
                if self._closed:  # closed while iterating: what is still buffered is dropped
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
            self.close()

    def close(self) -> None:
        """Close the connection: the server stops generating for this request."""
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> CompletionStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_task(
    client: CompletionsClient,
    task: str | GenerationRequest,
    text: str = "",
    on_text: Callable[[str], None] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run a GALACTICA task (``cite``, ``equation``, ``summarise``, ``complete``, ``ask``,
    ``work``, or a prepared request) through ``client``: :func:`tasks.parse`'s result, with
    ``task``, ``model``, ``usage``, ``finish_reasons`` and the raw ``outputs``.

    ``options`` go to the task's builder (``n``, ``max_tokens``, ...); ``extra`` is merged into
    the JSON payload (``logit_bias``, ``min_tokens``, ...). ``on_text`` gets the first
    choice's text so far, cut at the stops, as it streams; beam search (citations) is not
    streamed (vLLM refuses to), so ``on_text`` gets its text once at the end. Interrupting
    (KeyboardInterrupt) closes the connection, which cancels the generation on the server.
    """
    request = build(task, text, options)
    payload = {**request_payload(request), **(extra or {})}
    if payload.get("use_beam_search"):
        return whole_result(request, client.complete(**payload), on_text)
    with client.stream(**payload) as stream:
        show = Shower(request, on_text)
        for _chunk in stream:
            show(stream)
        return stream_result(request, stream)
