"""A client for OpenAI-compatible completions servers: our agent, vLLM, ``transformers serve``.

Sync (:class:`CompletionsClient`) and async (:class:`AsyncCompletionsClient`) over httpx, with
streaming that is cancelled by closing the stream (the connection closes, and the server stops
generating). The GALACTICA tasks run through :func:`run_task` / :func:`arun_task`, and
:func:`connect` finds the agent to talk to: ``$GALACTICA_URL``, the server extension's
``remote_url``, a running agent's runtime file, or a new agent. No torch is imported here.

Example::

    from galactica_ext.client import connect, run_task

    client = connect()
    run_task(client, "cite", "The Transformer architecture")["suggestions"]
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from . import tasks
from .tasks import GenerationRequest

__all__ = [
    "AgentClient",
    "AgentUnavailable",
    "AsyncCompletionStream",
    "AsyncCompletionsClient",
    "ClientError",
    "CompletionError",
    "CompletionStream",
    "CompletionsClient",
    "StreamCut",
    "arun_task",
    "connect",
    "locate",
    "request_payload",
    "run_task",
]

URL_ENV = "GALACTICA_URL"
API_KEY_ENV = "GALACTICA_API_KEY"

#: How to get an agent, said once (every "cannot reach the agent" message ends with it).
HOW_TO_START = (
    "start one with `galactica-ext agent --model 125m` (or `%galactica load 125m` in a "
    f"notebook), or set {URL_ENV} to an OpenAI-compatible server such as vLLM"
)


# --------------------------------------------------------------------------------- errors


class ClientError(Exception):
    """Base of the client's errors; IPython shows them as one line, without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class AgentUnavailable(ClientError, ConnectionError):
    """No completions server answers at the URL (or none was found or could be started)."""


class CompletionError(ClientError):
    """The server answered with an error: its message, HTTP status and OpenAI error fields."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        type: str | None = None,  # OpenAI's field name
        param: str | None = None,
        code: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        #: seconds to wait before retrying (from ``Retry-After``, on 503)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


#: what a stream that ends without ``data: [DONE]`` (or breaks off) is reported as
STREAM_CUT = (
    "the stream ended before the model finished: the agent may have crashed or cut the connection"
)


class StreamCut(CompletionError):
    """The stream ended (or broke off) before the server's ``data: [DONE]``."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(f"{STREAM_CUT} ({detail})" if detail else STREAM_CUT)


def _unavailable(url: str, err: Exception | None = None) -> AgentUnavailable:
    why = f" ({type(err).__name__})" if err is not None else ""
    return AgentUnavailable(f"No GALACTICA agent answers at {url}{why}: {HOW_TO_START}.")


def _error_from_body(status: int, body: bytes | str, headers: httpx.Headers) -> CompletionError:
    """An OpenAI-style ``{"error": {...}}`` body (or anything else) as a CompletionError."""
    retry = headers.get("retry-after")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    fields: dict[str, Any] = {}
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or json.dumps(err)
            fields = {k: err.get(k) for k in ("type", "param", "code")}
        else:
            message = str(err)
        if isinstance(data.get("detail"), str | list) and "error" not in data:
            message = str(data["detail"])  # FastAPI-style errors (transformers serve)
    else:
        message = text.strip() or httpx.codes.get_reason_phrase(status) or "error"
    if status == 401:
        message = f"the server refused the credentials: {message}"
    return CompletionError(message, status, retry_after=retry_after, **fields)


# --------------------------------------------------------------------------- the payload


def request_payload(request: GenerationRequest, model: str | None = None) -> dict[str, Any]:
    """The ``/v1/completions`` JSON of a task's request, for any OpenAI-compatible server.

    Special tokens are kept (``skip_special_tokens: false``: vLLM skips them by default), stops
    go both as strings and token ids (so ``[END_REF]``, id 5, stops on vLLM too), the prompt is
    cut from the left to fit the context (``truncate_prompt_tokens``), and beam search is asked
    for with ``use_beam_search`` and ``n`` = the beam width (twice the beams for diverse
    citations: :func:`run_task` keeps the ``n`` distinct ones).
    """
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "n": request.n,
        "stop": list(request.stop),
        "stop_token_ids": list(request.stop_token_ids),
        "skip_special_tokens": False,
        "truncate_prompt_tokens": request.truncate_prompt_tokens,
    }
    if model:
        payload["model"] = model
    if request.top_k > 0:
        payload["top_k"] = request.top_k
    if request.seed is not None:
        payload["seed"] = request.seed
    if request.min_tokens > 0:
        payload["min_tokens"] = request.min_tokens
    if request.num_beams > 1:
        beams = request.num_beams * (2 if request.diversity_penalty > 0 else 1)
        payload.update(use_beam_search=True, n=beams, temperature=0.0, top_p=1.0)
    return payload


def _normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url[: -len("/v1")] if url.endswith("/v1") else url


# ------------------------------------------------------------------------------ streaming


class _StreamState:
    """What a stream has seen so far: the text of each choice, finish reasons, usage."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        self.finish_reasons: dict[int, str | None] = {}
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.done = False

    def parse_line(self, line: str) -> dict[str, Any] | None:
        """One SSE line: a chunk dict, or None (comments, other fields, ``[DONE]``)."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except ValueError as err:
            raise CompletionError(
                f"the server sent a malformed stream event: {data[:200]}"
            ) from err
        if isinstance(chunk, dict) and "error" in chunk:
            err = chunk["error"]
            err = err if isinstance(err, dict) else {"message": str(err)}
            code = err.get("code")
            raise CompletionError(
                err.get("message") or "the server reported an error mid-stream",
                code if isinstance(code, int) else None,
                type=err.get("type"),
                param=err.get("param"),
                code=code,
            )
        self.model = chunk.get("model", self.model)
        for choice in chunk.get("choices") or []:
            i = choice.get("index", 0)
            self.texts[i] = self.texts.get(i, "") + (choice.get("text") or "")
            if choice.get("finish_reason") is not None or i not in self.finish_reasons:
                self.finish_reasons[i] = choice.get("finish_reason")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        return chunk

    @property
    def outputs(self) -> list[str]:
        return [self.texts[i] for i in sorted(self.texts)]


class CompletionStream:
    """The chunks of a streamed completion; closing it closes the connection (cancels).

    Iterate for the server's chunk dicts; ``texts``, ``outputs``, ``finish_reasons`` and
    ``usage`` accumulate as chunks arrive. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, client: CompletionsClient, payload: dict[str, Any]) -> None:
        self._client = client
        self._payload = payload
        self._response: httpx.Response | None = None
        self._closed = False
        self._state = _StreamState()

    def open(self) -> CompletionStream:
        """Send the request (done by the first iteration otherwise); raises on an error status."""
        if self._response is None and not self._closed:
            self._response = self._client._send_stream(self._payload)
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.open()
        if self._response is None:
            return
        try:
            for line in self._response.iter_lines():
                if self._closed:  # closed while iterating: lines still buffered are dropped
                    break
                chunk = self._state.parse_line(line)
                if chunk is not None:
                    yield chunk
                if self._state.done:
                    break
            if not self._state.done and not self._closed:
                raise StreamCut()
        except httpx.TransportError as err:
            if self._closed:
                return
            raise StreamCut(type(err).__name__) from err
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection: the server stops generating for this request."""
        self._closed = True
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> CompletionStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    texts = property(lambda self: dict(self._state.texts), doc="text so far, by choice index")
    outputs = property(lambda self: self._state.outputs, doc="text so far, in choice order")
    finish_reasons = property(lambda self: dict(self._state.finish_reasons))
    usage = property(
        lambda self: self._state.usage, doc="the usage chunk, when the server sent one"
    )
    done = property(lambda self: self._state.done, doc="the server sent ``[DONE]``")
    model = property(lambda self: self._state.model, doc="the model named in the chunks")


class AsyncCompletionStream:
    """The async twin of :class:`CompletionStream`: ``async with`` / ``async for``, ``aclose()``.

    Cancelling the task that iterates it closes the connection.
    """

    def __init__(self, client: AsyncCompletionsClient, payload: dict[str, Any]) -> None:
        self._client = client
        self._payload = payload
        self._response: httpx.Response | None = None
        self._closed = False
        self._state = _StreamState()
        self._iter: AsyncIterator[dict[str, Any]] | None = None

    async def open(self) -> AsyncCompletionStream:
        if self._response is None and not self._closed:
            payload = await self._client._with_model(self._payload)
            self._response = await self._client._send_stream(payload)
        return self

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        await self.open()
        if self._response is None:
            return
        try:
            async for line in self._response.aiter_lines():
                if self._closed:
                    break
                chunk = self._state.parse_line(line)
                if chunk is not None:
                    yield chunk
                if self._state.done:
                    break
            if not self._state.done and not self._closed:
                raise StreamCut()
        except httpx.TransportError as err:
            if not self._closed:
                raise StreamCut(type(err).__name__) from err
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
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncCompletionStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    texts = property(lambda self: dict(self._state.texts))
    outputs = property(lambda self: self._state.outputs)
    finish_reasons = property(lambda self: dict(self._state.finish_reasons))
    usage = property(lambda self: self._state.usage)
    done = property(lambda self: self._state.done)
    model = property(lambda self: self._state.model)


# -------------------------------------------------------------------------------- clients


class _ClientBase:
    """What the sync and async clients share: URL, auth, model id, response handling."""

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
        self.url = _normalise_url(url)
        self.token = token or None
        #: the model id sent with completions; None: the server's first model (``/v1/models``)
        self.model = model
        self._model_id: str | None = None
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._short = httpx.Timeout(30.0, connect=connect_timeout)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _endpoint(self, path: str) -> str:
        return self.url + path

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise _error_from_body(response.status_code, response.content, response.headers)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as err:
            raise CompletionError(
                f"the server answered {response.request.url.path} with something other than "
                f"JSON: {response.text[:200]!r}",
                response.status_code,
            ) from err

    def _health_from(self, response: httpx.Response | None, models: list[dict] | None) -> dict:
        """``/health`` of our agent as is; of other servers (empty body) made to look alike."""
        if response is not None:
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and "status" in data and "queue" in data:
                return data
        ok = response is not None and response.status_code < 400
        model = models[0]["id"] if models else None
        return {
            "status": "ready" if ok and model else "failed",
            "model": model,
            "progress": None,
            "error": None
            if ok
            else f"{self.url}/health answered HTTP {getattr(response, 'status_code', '?')}",
            "device": None,
            "dtype": None,
            "memory_bytes": None,
            "queue": None,
            "pid": None,
            "version": None,
            "server": "openai-compatible",
        }

    def _prepare(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        payload = {k: v for k, v in payload.items() if v is not None}
        payload["stream"] = stream
        if stream:
            payload.setdefault("stream_options", {"include_usage": True})
        else:
            payload.pop("stream_options", None)
        return payload

    @staticmethod
    def _is_unknown_model(err: CompletionError) -> bool:
        return err.status == 404 or (err.param == "model" and err.status in (400, 404))


class CompletionsClient(_ClientBase):
    """A synchronous client for our agent or any OpenAI-compatible completions server.

    ``url`` is the server's base URL (``http://host:port``, with or without ``/v1``) and
    ``token`` its bearer token. Closing a :meth:`stream` closes its connection, which cancels
    the generation on the server.
    """

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._http = httpx.Client(headers=self.headers, timeout=self._timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CompletionsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, self._endpoint(path), **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise _unavailable(self.url, err) from err
        except httpx.TransportError as err:
            raise CompletionError(f"{method} {path} failed: {type(err).__name__}: {err}") from err

    def _send_stream(self, payload: dict[str, Any]) -> httpx.Response:
        request = self._http.build_request("POST", self._endpoint("/v1/completions"), json=payload)
        try:
            response = self._http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise _unavailable(self.url, err) from err
        except httpx.TransportError as err:
            raise CompletionError(f"the completion request failed: {err}") from err
        if response.status_code >= 400:
            try:
                body = response.read()
            finally:
                response.close()
            raise _error_from_body(response.status_code, body, response.headers)
        return response

    # -- server state

    def health(self) -> dict[str, Any]:
        """The agent's ``/health`` (other servers' health is made to look alike)."""
        response = self._request("GET", "/health", timeout=self._short)
        if response.status_code == 401:
            self._check(response)
        data = self._health_from(response, None)
        if data.get("server") == "openai-compatible":
            try:
                models = self.models()
            except CompletionError:
                models = None
            data = self._health_from(response, models)
        return data

    def models(self) -> list[dict[str, Any]]:
        """``/v1/models``: the served models (OpenAI model objects, ``id`` first)."""
        data = self._json(self._check(self._request("GET", "/v1/models", timeout=self._short)))
        return list(data.get("data") or []) if isinstance(data, dict) else []

    def model_id(self) -> str | None:
        """The model id completions are sent with (``model``, else the server's first one)."""
        if self.model:
            return self.model
        if self._model_id is None:
            models = self.models()
            self._model_id = models[0]["id"] if models else None
        return self._model_id

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
        """Ask the agent to load ``model``; with ``wait``, return once it is ready.

        Only our agent loads models on request: other servers answer 404 and this raises a
        :class:`CompletionError` saying so.
        """
        body = {"model": model, "dtype": dtype, "device": device, "quantize": quantize}
        response = self._request(
            "POST", "/v1/load", json={k: v for k, v in body.items() if v}, timeout=self._short
        )
        if response.status_code in (404, 405):
            raise CompletionError(
                f"the server at {self.url} cannot load models on request: start it with the "
                "model instead",
                response.status_code,
            )
        self._model_id = None
        health = self._json(self._check(response))
        return self.wait_ready(timeout, on_progress) if wait else health

    def unload(self) -> dict[str, Any]:
        """Ask the agent to free its model."""
        response = self._request("POST", "/v1/unload", timeout=self._short)
        self._model_id = None
        return self._json(self._check(response))

    def wait_ready(
        self,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.25,
    ) -> dict[str, Any]:
        """Poll ``/health`` until the model is ready; raise if it failed, none is loaded, or
        ``timeout`` seconds pass. ``on_progress`` gets each health while it loads."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            health = self.health()
            status = health.get("status")
            if status == "ready":
                self._model_id = None
                return health
            _raise_unready(health, self.url)
            if on_progress is not None:
                on_progress(health)
            if deadline is not None and time.monotonic() > deadline:
                raise CompletionError(f"the model did not become ready within {timeout:.0f} s")
            time.sleep(poll)

    # -- completions

    def complete(self, **payload: Any) -> dict[str, Any]:
        """``POST /v1/completions`` (not streamed): the server's response dict."""
        auto = not payload.get("model")  # the model id came from /v1/models
        payload = self._prepare(self._with_model(payload), stream=False)
        response = self._request("POST", "/v1/completions", json=payload)
        try:
            self._check(response)
        except CompletionError as err:
            # the server switched models since we asked: ask again with its model
            if not (auto and self._is_unknown_model(err) and self._forget_model(payload)):
                raise
            response = self._check(self._request("POST", "/v1/completions", json=payload))
        return self._json(response)

    def stream(self, **payload: Any) -> CompletionStream:
        """``POST /v1/completions`` streamed: a :class:`CompletionStream` of chunk dicts.

        The request is sent on first iteration (or :meth:`CompletionStream.open`); closing the
        stream, or leaving its ``with`` block, closes the connection and cancels the generation.
        """
        return CompletionStream(self, self._prepare(self._with_model(payload), stream=True))

    def _with_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("model"):
            return dict(payload)
        model = self.model_id()
        return {**payload, "model": model} if model else dict(payload)

    def _forget_model(self, payload: dict[str, Any]) -> bool:
        """After a model-not-found error: refresh the model id; True if it changed."""
        if self.model or self._model_id is None:
            return False
        self._model_id = None
        model = self.model_id()
        if model and model != payload.get("model"):
            payload["model"] = model
            return True
        return False


class AsyncCompletionsClient(_ClientBase):
    """The asyncio twin of :class:`CompletionsClient` (for the Jupyter server and async code)."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(url, token, **options)
        self._http = httpx.AsyncClient(headers=self.headers, timeout=self._timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCompletionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(method, self._endpoint(path), **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise _unavailable(self.url, err) from err
        except httpx.TransportError as err:
            raise CompletionError(f"{method} {path} failed: {type(err).__name__}: {err}") from err

    async def _send_stream(self, payload: dict[str, Any]) -> httpx.Response:
        request = self._http.build_request("POST", self._endpoint("/v1/completions"), json=payload)
        try:
            response = await self._http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise _unavailable(self.url, err) from err
        except httpx.TransportError as err:
            raise CompletionError(f"the completion request failed: {err}") from err
        if response.status_code >= 400:
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            raise _error_from_body(response.status_code, body, response.headers)
        return response

    async def health(self) -> dict[str, Any]:
        response = await self._request("GET", "/health", timeout=self._short)
        if response.status_code == 401:
            self._check(response)
        data = self._health_from(response, None)
        if data.get("server") == "openai-compatible":
            try:
                models = await self.models()
            except CompletionError:
                models = None
            data = self._health_from(response, models)
        return data

    async def models(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/models", timeout=self._short)
        data = self._json(self._check(response))
        return list(data.get("data") or []) if isinstance(data, dict) else []

    async def model_id(self) -> str | None:
        if self.model:
            return self.model
        if self._model_id is None:
            models = await self.models()
            self._model_id = models[0]["id"] if models else None
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
        body = {"model": model, "dtype": dtype, "device": device, "quantize": quantize}
        response = await self._request(
            "POST", "/v1/load", json={k: v for k, v in body.items() if v}, timeout=self._short
        )
        if response.status_code in (404, 405):
            raise CompletionError(
                f"the server at {self.url} cannot load models on request: start it with the "
                "model instead",
                response.status_code,
            )
        self._model_id = None
        health = self._json(self._check(response))
        return await self.wait_ready(timeout, on_progress) if wait else health

    async def unload(self) -> dict[str, Any]:
        response = await self._request("POST", "/v1/unload", timeout=self._short)
        self._model_id = None
        return self._json(self._check(response))

    async def wait_ready(
        self,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.25,
    ) -> dict[str, Any]:
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            health = await self.health()
            if health.get("status") == "ready":
                self._model_id = None
                return health
            _raise_unready(health, self.url)
            if on_progress is not None:
                on_progress(health)
            if deadline is not None and time.monotonic() > deadline:
                raise CompletionError(f"the model did not become ready within {timeout:.0f} s")
            await asyncio.sleep(poll)

    async def complete(self, **payload: Any) -> dict[str, Any]:
        auto = not payload.get("model")
        payload = self._prepare(await self._with_model(payload), stream=False)
        response = await self._request("POST", "/v1/completions", json=payload)
        try:
            self._check(response)
        except CompletionError as err:
            if not (auto and self._is_unknown_model(err) and await self._forget_model(payload)):
                raise
            response = self._check(await self._request("POST", "/v1/completions", json=payload))
        return self._json(response)

    def stream(self, **payload: Any) -> AsyncCompletionStream:
        """A streamed completion: ``async with client.stream(...) as s: async for chunk in s``.

        The model id (when not given) is resolved when the stream opens.
        """
        return AsyncCompletionStream(self, self._prepare(payload, stream=True))

    async def _with_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("model"):
            return dict(payload)
        model = await self.model_id()
        return {**payload, "model": model} if model else dict(payload)

    async def _forget_model(self, payload: dict[str, Any]) -> bool:
        if self.model or self._model_id is None:
            return False
        self._model_id = None
        model = await self.model_id()
        if model and model != payload.get("model"):
            payload["model"] = model
            return True
        return False


def _raise_unready(health: dict[str, Any], url: str) -> None:
    status = health.get("status")
    if status == "failed":
        model = f" {health['model']}" if health.get("model") else ""
        raise CompletionError(f"the model{model} failed to load: {health.get('error')}")
    if status == "empty":
        raise CompletionError(
            f"the agent at {url} has no model loaded: load one with `%galactica load 125m` "
            "or `client.load('125m')`"
        )


# ---------------------------------------------------------------------------------- tasks


def _display_text(request: GenerationRequest, raw: str) -> str:
    """A raw continuation as it should show while streaming: cut at stops, unescaped."""
    cut = len(raw)
    for stop in [*request.stop, tasks.EOS]:
        at = raw.find(stop)
        if at != -1:
            cut = min(cut, at)
    return raw[:cut].replace(tasks.SPLIT_MARKER, "")


def _finish(
    request: GenerationRequest,
    outputs: list[str],
    usage: dict[str, Any] | None,
    finish_reasons: list[str | None],
    model: str | None,
) -> dict[str, Any]:
    prompt_tokens = (usage or {}).get("prompt_tokens")
    truncated = prompt_tokens is not None and prompt_tokens >= request.truncate_prompt_tokens
    result = tasks.parse(request, outputs or [""], truncated)
    if request.task == "cite":
        result["suggestions"] = result["suggestions"][: request.n]
    result.update(
        task=request.task,
        model=model,
        usage=usage,
        finish_reasons=finish_reasons,
        outputs=outputs,
    )
    return result


def _build(task: str | GenerationRequest, text: str, options: dict[str, Any]) -> GenerationRequest:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__} (pass on_text by name)")
    if isinstance(task, GenerationRequest):
        if options:
            raise TypeError(f"options {sorted(options)} go to the task's builder, not a request")
        return task
    return tasks.build(task, text, **options)


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
    ``work``) through ``client`` and return :func:`tasks.parse`'s result.

    ``options`` go to the task's builder (``n``, ``max_tokens``, ...); ``extra`` is merged into
    the JSON payload (``logit_bias``, ``min_tokens``, ...). ``on_text`` gets the first
    choice's text so far, cut at the stops, as it streams. Beam search (citations) is not
    streamed (vLLM refuses to), so ``on_text`` gets its text once at the end. The result also
    holds ``task``, ``model``, ``usage``, ``finish_reasons`` and the raw ``outputs``;
    ``truncated`` says the prompt was cut to fit the context. Interrupting (KeyboardInterrupt)
    closes the connection, which cancels the generation on the server.
    """
    request = _build(task, text, options)
    payload = {**request_payload(request), **(extra or {})}
    if payload.get("use_beam_search"):
        return _finish_whole(request, client.complete(**payload), on_text)
    with client.stream(**payload) as stream:
        show = _Shower(request, on_text)
        for _chunk in stream:
            show(stream)
        return _finish_stream(request, stream)


async def arun_task(
    client: AsyncCompletionsClient,
    task: str | GenerationRequest,
    text: str = "",
    on_text: Callable[[str], None] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The async twin of :func:`run_task`; cancelling its task cancels the generation."""
    request = _build(task, text, options)
    payload = {**request_payload(request), **(extra or {})}
    if payload.get("use_beam_search"):
        return _finish_whole(request, await client.complete(**payload), on_text)
    async with client.stream(**payload) as stream:
        show = _Shower(request, on_text)
        async for _chunk in stream:
            show(stream)
        return _finish_stream(request, stream)


class _Shower:
    """Hands the first choice's display text to ``on_text`` whenever it changes."""

    def __init__(self, request: GenerationRequest, on_text: Callable[[str], None] | None) -> None:
        self.request, self.on_text, self.shown = request, on_text, None

    def __call__(self, stream: Any) -> None:
        if self.on_text is not None:
            text_now = _display_text(self.request, stream.texts.get(0, ""))
            if text_now != self.shown:
                self.shown = text_now
                self.on_text(text_now)


def _finish_whole(
    request: GenerationRequest, response: dict[str, Any], on_text: Callable[[str], None] | None
) -> dict[str, Any]:
    """The task result of a whole (non-streamed) reply, e.g. beam search."""
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    outputs = [c.get("text") or "" for c in choices]
    if on_text is not None and outputs:
        on_text(_display_text(request, outputs[0]))
    reasons = [c.get("finish_reason") for c in choices]
    return _finish(request, outputs, response.get("usage"), reasons, response.get("model"))


def _finish_stream(request: GenerationRequest, stream: Any) -> dict[str, Any]:
    """The task result of a finished stream."""
    reasons = [stream.finish_reasons[i] for i in sorted(stream.finish_reasons)]
    return _finish(request, stream.outputs, stream.usage, reasons, stream.model)


# -------------------------------------------------------------------------------- connect

#: agents this process started (so that tests and atexit code can stop them)
started_agents: list[Any] = []


def configured_remote() -> tuple[str, str] | None:
    """``c.Galactica.remote_url`` / ``remote_api_key`` from Jupyter's server config files."""
    try:
        from jupyter_core.paths import jupyter_config_path
        from traitlets.config.loader import (
            Config,
            JSONFileConfigLoader,
            PyFileConfigLoader,
        )
    except ImportError:  # pragma: no cover - jupyter is a dependency
        return None
    merged = Config()
    for directory in map(Path, reversed(jupyter_config_path())):
        # as Jupyter reads them: the .d directory's JSON files, then the .json, then the .py
        files = sorted((directory / "jupyter_server_config.d").glob("*.json"))
        files += [directory / "jupyter_server_config.json", directory / "jupyter_server_config.py"]
        for file in files:
            if not file.is_file():
                continue
            loader = PyFileConfigLoader if file.suffix == ".py" else JSONFileConfigLoader
            try:
                merged.merge(loader(file.name, path=str(file.parent)).load_config())
            except Exception:  # a broken config file is the server's problem, not ours
                continue
    section = merged.get("Galactica", {})
    url = section.get("remote_url") if hasattr(section, "get") else None
    if not url:
        return None
    return str(url), str(section.get("remote_api_key") or "")


@contextlib.contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the runtime file, so two kernels don't start two agents."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock, a rare double start
            pass
        yield
    finally:
        os.close(fd)


def locate(url: str | None = None, token: str | None = None) -> tuple[str, str | None] | None:
    """Where the completions server is, without starting one: ``(url, token)`` or None.

    In order: ``url`` (with ``token``), ``$GALACTICA_URL`` (with ``$GALACTICA_API_KEY``), the
    server extension's ``c.Galactica.remote_url``, the runtime file of a running agent.
    """
    url = url or os.environ.get(URL_ENV)
    if url:
        return url, token or os.environ.get(API_KEY_ENV) or None
    remote = configured_remote()
    if remote is not None:
        return remote[0], token or remote[1] or None
    from .agent.runtime import read_runtime

    info = read_runtime()
    return (info.url, info.token) if info is not None else None


def connect(
    url: str | None = None,
    token: str | None = None,
    start: bool = True,
    model: str | None = None,
    *,
    timeout: float = 600.0,
    start_timeout: float = 120.0,
    **agent_options: Any,
) -> CompletionsClient:
    """A client for the completions server this user should talk to.

    The server found by :func:`locate` (an explicit URL, ``$GALACTICA_URL``, the server
    extension's ``remote_url``, or a running agent's runtime file: the one the server extension
    or another kernel started), else, with ``start``, a new agent serving ``model``
    (``agent_options``: ``dtype``, ``device``, ``quantize``), which then serves every other
    kernel too, so the weights load once. The model may still be loading when this returns:
    see :meth:`CompletionsClient.wait_ready`. Raises :class:`AgentUnavailable` when there is
    none and ``start`` is false, or when the agent cannot start.
    """
    found = locate(url, token)
    if found is not None:
        return CompletionsClient(found[0], found[1], timeout=timeout)
    if not start:
        raise AgentUnavailable(f"No GALACTICA agent is running: {HOW_TO_START}.")
    from .agent.runtime import read_runtime, runtime_file

    path = runtime_file()
    with _start_lock(path):
        info = read_runtime()  # another kernel may have started one meanwhile
        if info is None:
            info = _start(model, path, start_timeout, agent_options)
    return CompletionsClient(info.url, info.token, timeout=timeout)


class AgentClient:
    """The client of whichever agent runs now, for long-lived front ends (magics, widget).

    Every :meth:`get` locates the agent again (it may have restarted on another port, or
    ``$GALACTICA_URL`` changed) and reuses the client while the address stays the same.
    A ``client`` given here is used as is, always.
    """

    def __init__(self, client: CompletionsClient | None = None) -> None:
        self.fixed = client is not None
        self._client = client
        self._lock = threading.Lock()  # the widget's worker thread and the kernel's

    def get(
        self, start: bool = True, model: str | None = None, **agent_options: Any
    ) -> CompletionsClient:
        """The current agent's client; with ``start``, an agent is started when none runs
        (serving ``model``); otherwise :class:`AgentUnavailable` says how to get one."""
        if self.fixed:
            return self._client  # type: ignore[return-value]
        with self._lock:
            found = locate()
            if found is None:
                self._use(connect(start=start, model=model, **agent_options))
            elif self._client is None or (self._client.url, self._client.token) != (
                _normalise_url(found[0]),
                found[1],
            ):
                self._use(CompletionsClient(found[0], found[1]))
            return self._client  # type: ignore[return-value]

    def _use(self, client: CompletionsClient) -> None:
        old, self._client = self._client, client
        if old is not None and old is not client:
            old.close()

    def close(self) -> None:
        if self._client is not None and not self.fixed:
            self._client.close()
            self._client = None


def _start(model: str | None, path: Path, timeout: float, options: dict[str, Any]) -> Any:
    from .agent.launcher import AgentStartError, start_agent
    from .specs import resolve_model_spec

    spec = resolve_model_spec(model)  # raises on a bad spec before anything starts
    log_path = path.with_name("galactica-agent.log")
    with open(log_path, "ab") as log:
        try:
            proc, info = start_agent(
                spec, runtime=path, timeout=timeout, stdout=log, stderr=log, **options
            )
        except (AgentStartError, OSError) as err:
            raise AgentUnavailable(
                f"Could not start a GALACTICA agent ({err}; its log is {log_path}): {HOW_TO_START}."
            ) from err
    started_agents.append(proc)
    return info
