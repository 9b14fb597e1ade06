"""The client's errors, and OpenAI library errors mapped to them."""

from __future__ import annotations

import json
from typing import Any

import openai

#: How to get an agent, said once (every "cannot reach the agent" message ends with it).
URL_ENV = "GALACTICA_URL"
API_KEY_ENV = "GALACTICA_API_KEY"
HOW_TO_START = (
    "start one with `galactica-ext agent --model 125m` (or `%galactica load 125m` in a "
    f"notebook), or set {URL_ENV} to an OpenAI-compatible server such as vLLM"
)
#: what a stream that ends without ``data: [DONE]`` (or breaks off) is reported as
STREAM_CUT = (
    "the stream ended before the model finished: the agent may have crashed or cut the connection"
)


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


class StreamCut(CompletionError):
    """The stream ended (or broke off) before the model finished every choice."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(f"{STREAM_CUT} ({detail})" if detail else STREAM_CUT)


def unavailable(url: str, err: BaseException | None = None) -> AgentUnavailable:
    """The one sentence for a server that does not answer at ``url``."""
    cause = err.__cause__ if isinstance(err, openai.APIConnectionError) else err
    why = f" ({type(cause).__name__})" if cause is not None else ""
    return AgentUnavailable(f"No GALACTICA agent answers at {url}{why}: {HOW_TO_START}.")


def error_from_body(status: int, text: str, retry: str | None = None) -> CompletionError:
    """An OpenAI-style ``{"error": {...}}`` body (or anything else) as a CompletionError."""
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
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
        message = text.strip() or f"HTTP {status}"
    if status == 401:
        message = f"the server refused the credentials: {message}"
    return CompletionError(message, status, retry_after=retry_after, **fields)


def from_openai(err: openai.OpenAIError, url: str, *, streaming: bool = False) -> ClientError:
    """The OpenAI library's error as ours (the server's own words, its status and fields)."""
    if isinstance(err, openai.APIStatusError):
        response = err.response
        return error_from_body(
            response.status_code, response.text, response.headers.get("retry-after")
        )
    if isinstance(err, openai.APIConnectionError):
        if streaming:  # the connection broke while the tokens came
            return StreamCut(type(err.__cause__ or err).__name__)
        return unavailable(url, err)
    if isinstance(err, openai.APIError):  # an error event in a stream
        body = err.body if isinstance(err.body, dict) else {}
        code = body.get("code")
        return CompletionError(
            body.get("message") or err.message,
            code if isinstance(code, int) else None,
            type=body.get("type"),
            param=body.get("param"),
            code=code,
        )
    return CompletionError(str(err))
