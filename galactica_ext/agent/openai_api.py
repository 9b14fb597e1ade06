"""OpenAI's legacy completions protocol (with vLLM's extras): validate requests, shape replies."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..engine import ChoiceResult, SamplingParams
from ..engine.sampling import Choice

MAX_N = 16
MAX_STOPS = 16
#: accepted only at their neutral value (we don't implement them, and won't pretend to)
_NEUTRAL = {"presence_penalty": 0, "frequency_penalty": 0, "echo": False, "suffix": None}


class RequestError(ValueError):
    """A bad request: the message says what was wrong and what is accepted."""

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str | None = None
    ):
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), self.param, "invalid_request_error", self.code)


def error_body(
    message: str,
    param: str | None = None,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class CompletionRequest:
    """A validated ``/v1/completions`` body."""

    prompts: list[str | list[int]]
    params: SamplingParams
    n: int
    beams: int
    stream: bool
    include_usage: bool
    model: str | None


def _number(
    body: dict, name: str, default: float, low: float, high: float, *, integer: bool = False
) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise RequestError(f"{name} must be {kind}, got {value!r}", name)
    if not low <= value <= high:
        raise RequestError(f"{name}={value} is out of range: use {low} to {high}", name)
    return value


def _prompts(body: dict) -> list[str | list[int]]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts: list[Any] = [prompt]
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt)
    ):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        prompts = prompt
    else:
        raise RequestError(
            "prompt is required: a string, a list of strings, or a list of token ids", "prompt"
        )
    for p in prompts:
        if isinstance(p, list) and not all(
            isinstance(t, int) and not isinstance(t, bool) for t in p
        ):
            raise RequestError("a token-id prompt must be a list of integers", "prompt")
        if len(p) == 0:
            raise RequestError("prompt is empty: give at least one character or token", "prompt")
    return prompts


def parse_completion_request(body: Any, context: int) -> CompletionRequest:
    """Check every field we accept; raise :class:`RequestError` naming the first bad one."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    prompts = _prompts(body)
    for name, neutral in _NEUTRAL.items():
        if body.get(name, neutral) not in (neutral, None):
            raise RequestError(f"{name} is not supported by this server; leave it out", name)
    max_tokens = _number(body, "max_tokens", 16, 1, context - 1, integer=True)
    n = _number(body, "n", 1, 1, MAX_N, integer=True)
    best_of = body.get("best_of")
    if best_of not in (None, n):
        raise RequestError("best_of is not supported (use n, or use_beam_search)", "best_of")
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or not all(isinstance(s, str) for s in stop)
        or len(stop) > MAX_STOPS
    ):
        raise RequestError(
            f"stop must be a string or a list of at most {MAX_STOPS} strings", "stop"
        )
    stop_ids = body.get("stop_token_ids") or []
    if not isinstance(stop_ids, list) or not all(isinstance(t, int) and t >= 0 for t in stop_ids):
        raise RequestError("stop_token_ids must be a list of token ids", "stop_token_ids")
    logprobs = body.get("logprobs")
    if logprobs is not None:
        logprobs = _number(body, "logprobs", 0, 0, 20, integer=True)
    bias_in = body.get("logit_bias") or {}
    if not isinstance(bias_in, dict):
        raise RequestError("logit_bias must be an object of token id -> bias", "logit_bias")
    try:
        bias = {int(k): float(v) for k, v in bias_in.items()}
    except (TypeError, ValueError):
        raise RequestError("logit_bias must map token ids to numbers", "logit_bias") from None
    if any(not -100 <= v <= 100 for v in bias.values()):
        raise RequestError("logit_bias values must be between -100 and 100", "logit_bias")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("seed must be an integer", "seed")
    top_k = _number(body, "top_k", 0, -1, 1_000_000, integer=True)
    truncate = body.get("truncate_prompt_tokens")
    if truncate is not None:
        truncate = _number(body, "truncate_prompt_tokens", 0, 1, context - 1, integer=True)
    min_tokens = _number(body, "min_tokens", 0, 0, max_tokens, integer=True)
    beams = n if body.get("use_beam_search") else 1
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    skip = body.get("skip_special_tokens", False)
    if not isinstance(skip, bool):
        raise RequestError("skip_special_tokens must be true or false", "skip_special_tokens")
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-9, 1.0),
        top_k=max(0, top_k),
        seed=seed,
        stop=stop,
        stop_token_ids=stop_ids,
        min_tokens=min_tokens,
        logprobs=logprobs,
        skip_special_tokens=skip,
        ignore_eos=bool(body.get("ignore_eos", False)),
        logit_bias=bias,
        truncate_prompt_tokens=truncate,
    )
    if beams > 1:
        params.temperature = 0.0
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("model must be a string", "model")
    return CompletionRequest(
        prompts=prompts,
        params=params,
        n=n,
        beams=beams,
        stream=stream,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        model=model,
    )


def new_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def logprobs_body(choices: list[Choice], tokenizer: Any, offset: int = 0) -> dict[str, Any]:
    """OpenAI's legacy logprobs object for the given token choices."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    for choice in choices:
        text = tokenizer.decode([choice.token_id], skip_special_tokens=False)
        tokens.append(text)
        token_logprobs.append(choice.logprob)
        top.append(
            {
                tokenizer.decode([t], skip_special_tokens=False): lp
                for t, lp in choice.top_logprobs or []
            }
        )
        offsets.append(offset)
        offset += len(text)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


def completion_body(
    cid: str,
    model: str,
    results: list[ChoiceResult],
    tokenizer: Any,
    want_logprobs: bool,
    prompt_tokens: int,
) -> dict[str, Any]:
    """The non-streaming reply."""
    choices = [
        {
            "index": r.index,
            "text": r.text,
            "logprobs": logprobs_body(r.logprobs, tokenizer) if want_logprobs else None,
            "finish_reason": r.finish_reason,
        }
        for r in sorted(results, key=lambda r: r.index)
    ]
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(results, prompt_tokens),
    }


def usage(results: list[ChoiceResult], prompt_tokens: int) -> dict[str, int]:
    completion_tokens = sum(len(r.token_ids) for r in results)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chunk_body(
    cid: str, model: str, index: int, text: str, finish_reason: str | None, logprobs: Any = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        ],
    }
