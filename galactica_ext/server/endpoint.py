"""An OpenAI-compatible completions endpoint, seen from the server extension (no torch).

This is the one place that speaks HTTP to the model: our local agent (``/v1`` plus its
``/health``) or any OpenAI-compatible server (vLLM, ``transformers serve``, TGI). Streaming
is cancelled by cancelling the task that iterates :meth:`Endpoint.stream`: the connection is
closed and the server stops generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..client import request_payload
from ..tasks import GenerationRequest


class EndpointError(RuntimeError):
    """The model server answered with an error (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Chunk:
    """A piece of generated text of one choice."""

    index: int
    text: str
    finish_reason: str | None = None


@dataclass
class Completion:
    """Everything generated for one request, filled while streaming."""

    texts: dict[int, str] = field(default_factory=dict)
    finish_reasons: dict[int, str | None] = field(default_factory=dict)
    prompt_tokens: int | None = None

    def outputs(self) -> list[str]:
        return [self.texts[i] for i in sorted(self.texts)]


def completion_body(request: GenerationRequest, model: str | None) -> dict[str, Any]:
    """The OpenAI ``/v1/completions`` body of a task's request, streamed.

    The body is :func:`galactica_ext.client.request_payload`'s (GALACTICA's special tokens
    kept, ``[END_REF]`` as a stop token, beam search for citations), asking for a stream
    that ends with the token usage (to tell whether the prompt was cut).
    """
    body = request_payload(request, model)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def _error_message(response: httpx.Response, text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or response.reason_phrase
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class Endpoint:
    """A completions server at ``base_url`` (ending in ``/v1``), with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @property
    def root(self) -> str:
        """The server's root (``/health`` lives there on our agent)."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _json(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                response = await client.request(method, url, json=body, headers=self._headers())
            except httpx.HTTPError as err:
                raise EndpointError(f"cannot reach {url}: {err}") from err
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise EndpointError(_error_message(response, response.text), response.status_code)
        return response.status_code, data

    async def models(self) -> list[str]:
        """The ids of the models served."""
        _, data = await self._json("GET", f"{self.base_url}/models")
        return [m.get("id", "") for m in (data or {}).get("data", []) if isinstance(m, dict)]

    async def health(self) -> dict[str, Any]:
        """Our agent's ``/health`` (state, load progress, device, dtype, memory)."""
        _, data = await self._json("GET", f"{self.root}/health")
        return data or {}

    async def load(self, options: dict[str, Any]) -> dict[str, Any]:
        """Ask our agent to load a model (``POST /v1/load``); returns its health."""
        _, data = await self._json("POST", f"{self.base_url}/load", options)
        return data or {}

    async def unload(self) -> dict[str, Any]:
        """Ask our agent to drop its model (``POST /v1/unload``)."""
        _, data = await self._json("POST", f"{self.base_url}/unload", {})
        return data or {}

    async def stream(
        self, request: GenerationRequest, completion: Completion, model: str | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream the chunks of ``request``; ``completion`` collects the whole texts."""
        body = completion_body(request, model)
        timeout = httpx.Timeout(self.timeout, read=None)
        async with httpx.AsyncClient(timeout=timeout) as client:
            try:
                async with client.stream(
                    "POST", f"{self.base_url}/completions", json=body, headers=self._headers()
                ) as response:
                    if response.status_code >= 400:
                        text = (await response.aread()).decode(errors="replace")
                        raise EndpointError(_error_message(response, text), response.status_code)
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        event = json.loads(data)
                        if "error" in event:
                            raise EndpointError(_error_message(response, data))
                        usage = event.get("usage")
                        if usage and usage.get("prompt_tokens") is not None:
                            completion.prompt_tokens = usage["prompt_tokens"]
                        for choice in event.get("choices") or []:
                            index = int(choice.get("index", 0))
                            text = choice.get("text") or ""
                            completion.texts[index] = completion.texts.get(index, "") + text
                            reason = choice.get("finish_reason")
                            if reason is not None:
                                completion.finish_reasons[index] = reason
                            if text or reason is not None:
                                yield Chunk(index, text, reason)
            except httpx.HTTPError as err:
                raise EndpointError(f"cannot reach {self.base_url}: {err}") from err
