"""What the sync and async clients share, with no I/O: the request payload, the state of a
stream, ``/health`` of any server, and the task result of a reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import tasks
from ..protocol import MAX_N, CompletionRequest, Health
from ..tasks import GenerationRequest
from .errors import StreamCut

#: OpenAI's own completion parameters; everything else (vLLM's extras) goes in ``extra_body``
OPENAI_FIELDS = frozenset(
    {
        "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
        "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
        "suffix", "temperature", "top_p", "user",
    }
)  # fmt: skip
_DEFAULTS = CompletionRequest.model_fields


def request_payload(request: GenerationRequest, model: str | None = None) -> dict[str, Any]:
    """The ``/v1/completions`` JSON of a task's request, for any OpenAI-compatible server.

    Special tokens are kept (``skip_special_tokens: false``: vLLM skips them by default), stops
    go both as strings and token ids (so ``[END_REF]``, id 5, stops on vLLM too), the prompt is
    cut from the left to fit the context (``truncate_prompt_tokens``), beam search is asked for
    with ``use_beam_search`` and ``n`` = the beam width (at most ``MAX_N``), and the decoding
    extras (``num_beam_groups``, ``diversity_penalty``, ``penalty_alpha``, the choice
    constraint as ``structured_outputs``) only when they differ from the defaults, as vLLM
    rejects what it does not know.
    """
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "n": min(request.n, MAX_N),
        "stop": list(request.stop),
        "stop_token_ids": list(request.stop_token_ids),
        "skip_special_tokens": False,
        "truncate_prompt_tokens": request.truncate_prompt_tokens,
    }
    if model:
        payload["model"] = model
    optional = {
        "top_k": request.top_k,
        "seed": request.seed,
        "min_tokens": request.min_tokens,
        "num_beam_groups": request.num_beam_groups,
        "diversity_penalty": request.diversity_penalty,
        "penalty_alpha": request.penalty_alpha,
    }
    for key, value in optional.items():
        if value is not None and value != _DEFAULTS[key].default:
            payload[key] = value
    if request.choices is not None:
        payload["structured_outputs"] = {"choice": list(request.choices)}
    if request.num_beams > 1:
        beams = min(request.num_beams, MAX_N)
        payload.update(use_beam_search=True, n=beams, temperature=0.0, top_p=1.0)
    return payload


def prepare(payload: dict[str, Any], stream: bool) -> dict[str, Any]:
    """A payload as sent: no None values, ``stream`` set, usage asked for when streaming."""
    payload = {k: v for k, v in payload.items() if v is not None}
    payload["stream"] = stream
    if stream:
        payload.setdefault("stream_options", {"include_usage": True})
    else:
        payload.pop("stream_options", None)
    return payload


def openai_arguments(payload: dict[str, Any]) -> dict[str, Any]:
    """``completions.create`` keyword arguments: OpenAI's fields, the rest in ``extra_body``."""
    known = {k: v for k, v in payload.items() if k in OPENAI_FIELDS}
    extra = {k: v for k, v in payload.items() if k not in OPENAI_FIELDS}
    return {**known, "extra_body": extra} if extra else known


# ---------------------------------------------------------------------------- streams


class StreamState:
    """What a stream has seen so far: the text of each choice, finish reasons, usage."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.expected = int(payload.get("n") or 1)
        self.wants_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        self.texts: dict[int, str] = {}
        self.finish_reasons: dict[int, str | None] = {}
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.done = False

    def add(self, chunk: dict[str, Any]) -> None:
        """Take in one chunk (a dict, as the server sent it)."""
        self.model = chunk.get("model") or self.model
        for choice in chunk.get("choices") or []:
            i = choice.get("index", 0)
            self.texts[i] = self.texts.get(i, "") + (choice.get("text") or "")
            if choice.get("finish_reason") is not None or i not in self.finish_reasons:
                self.finish_reasons[i] = choice.get("finish_reason")
        if chunk.get("usage"):
            self.usage = chunk["usage"]

    def finish(self) -> None:
        """The stream ended: complete (every choice finished, the usage came) or cut.

        The OpenAI library ends a stream quietly at ``[DONE]`` and at a closed connection
        alike, so a stream is judged by what it carried: a server that finished sent a
        finish reason for every choice, then the usage it was asked for.
        """
        finished = [i for i, reason in self.finish_reasons.items() if reason is not None]
        if len(finished) < self.expected or (self.wants_usage and self.usage is None):
            raise StreamCut()
        self.done = True

    @property
    def outputs(self) -> list[str]:
        return [self.texts[i] for i in sorted(self.texts)]


class StreamView:
    """The read-only properties both stream classes show (from their :class:`StreamState`)."""

    _state: StreamState
    _closed: bool

    @property
    def closed(self) -> bool:
        return self._closed

    texts = property(lambda self: dict(self._state.texts), doc="text so far, by choice index")
    outputs = property(lambda self: self._state.outputs, doc="text so far, in choice order")
    finish_reasons = property(lambda self: dict(self._state.finish_reasons))
    usage = property(lambda self: self._state.usage, doc="the usage chunk, when one came")
    done = property(lambda self: self._state.done, doc="the stream ended complete")
    model = property(lambda self: self._state.model, doc="the model named in the chunks")


# ----------------------------------------------------------------------------- health


def health_document(body: Any, ok: bool, models: list[dict] | None, url: str) -> dict[str, Any]:
    """``/health`` of our agent as is; of other servers (an empty 200) made to look alike."""
    if isinstance(body, dict) and "status" in body and "queue" in body:
        return Health.model_validate(body).model_dump() | {
            k: v for k, v in body.items() if k not in Health.model_fields
        }
    model = models[0].get("id") if models else None
    return {
        "status": "ready" if ok and model else "failed",
        "model": model,
        "progress": None,
        "error": None if ok else f"{url}/health did not answer OK",
        "device": None,
        "dtype": None,
        "memory_bytes": None,
        "queue": None,
        "pid": None,
        "version": None,
        "server": "openai-compatible",
    }


def is_ours(health: dict[str, Any]) -> bool:
    return health.get("server") != "openai-compatible"


def unready_error(health: dict[str, Any], url: str) -> Exception | None:
    """Why a model that is not ready will not become ready (None: it may yet)."""
    from .errors import CompletionError

    status = health.get("status")
    if status == "failed":
        model = f" {health['model']}" if health.get("model") else ""
        return CompletionError(f"the model{model} failed to load: {health.get('error')}")
    if status == "empty":
        return CompletionError(
            f"the agent at {url} has no model loaded: load one with `%galactica load 125m` "
            "or `client.load('125m')`"
        )
    return None


# ------------------------------------------------------------------------------ tasks


def build(task: str | GenerationRequest, text: str, options: dict[str, Any]) -> GenerationRequest:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__} (pass on_text by name)")
    if isinstance(task, GenerationRequest):
        if options:
            raise TypeError(f"options {sorted(options)} go to the task's builder, not a request")
        return task
    return tasks.build(task, text, **options)


def display_text(request: GenerationRequest, raw: str) -> str:
    """A raw continuation as it should show while streaming: cut at stops, unescaped."""
    cut = len(raw)
    for stop in [*request.stop, tasks.EOS]:
        at = raw.find(stop)
        if at != -1:
            cut = min(cut, at)
    return raw[:cut].replace(tasks.SPLIT_MARKER, "")


class Shower:
    """Hands the first choice's display text to ``on_text`` whenever it changes."""

    def __init__(self, request: GenerationRequest, on_text: Callable[[str], None] | None) -> None:
        self.request, self.on_text, self.shown = request, on_text, None

    def __call__(self, stream: Any) -> None:
        if self.on_text is not None:
            text_now = display_text(self.request, stream.texts.get(0, ""))
            if text_now != self.shown:
                self.shown = text_now
                self.on_text(text_now)


def result(
    request: GenerationRequest,
    outputs: list[str],
    usage: dict[str, Any] | None,
    finish_reasons: list[str | None],
    model: str | None,
) -> dict[str, Any]:
    """:func:`tasks.parse`'s result, with ``task``, ``model``, ``usage``, ``finish_reasons``
    and the raw ``outputs``."""
    prompt_tokens = (usage or {}).get("prompt_tokens")
    truncated = prompt_tokens is not None and prompt_tokens >= request.truncate_prompt_tokens
    parsed = tasks.parse(request, outputs or [""], truncated)
    if request.task == "cite" and "suggestions" in parsed:
        parsed["suggestions"] = parsed["suggestions"][: request.n]
    parsed.update(
        task=request.task, model=model, usage=usage, finish_reasons=finish_reasons, outputs=outputs
    )
    return parsed


def whole_result(
    request: GenerationRequest, response: dict[str, Any], on_text: Callable[[str], None] | None
) -> dict[str, Any]:
    """The task result of a whole (non-streamed) reply, e.g. beam search."""
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    outputs = [c.get("text") or "" for c in choices]
    if on_text is not None and outputs:
        on_text(display_text(request, outputs[0]))
    reasons = [c.get("finish_reason") for c in choices]
    return result(request, outputs, response.get("usage"), reasons, response.get("model"))


def stream_result(request: GenerationRequest, stream: Any) -> dict[str, Any]:
    """The task result of a finished stream."""
    reasons = [stream.finish_reasons[i] for i in sorted(stream.finish_reasons)]
    return result(request, stream.outputs, stream.usage, reasons, stream.model)


def normalise_url(url: str) -> str:
    """A server's base URL, without ``/v1``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url[: -len("/v1")] if url.endswith("/v1") else url
