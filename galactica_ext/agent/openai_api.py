"""The agent's side of the completions protocol: a validated request to the engine's sampling
parameters, and the engine's results to the wire models of :mod:`galactica_ext.protocol`.

The schema and its rules live in ``protocol``; this module imports the engine (torch) only
inside :func:`to_sampling_params`.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ..protocol import (
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
    Logprobs,
    RequestError,
    Usage,
)
from ..specs import CONTEXT_LENGTH

if TYPE_CHECKING:
    from ..engine import ChoiceResult, SamplingParams
    from ..engine.sampling import Choice


def to_sampling_params(request: CompletionRequest) -> SamplingParams:
    """The engine's parameters for a validated request (beam search decodes greedily)."""
    from ..engine import SamplingParams

    params = SamplingParams(
        max_tokens=request.max_tokens,
        temperature=0.0 if request.beams > 1 else request.temperature,
        top_p=request.top_p,
        top_k=max(0, request.top_k),
        seed=request.seed,
        stop=request.stops,
        stop_token_ids=list(request.stop_token_ids or []),
        min_tokens=request.min_tokens,
        logprobs=request.logprobs,
        skip_special_tokens=request.skip_special_tokens,
        ignore_eos=request.ignore_eos,
        logit_bias=request.bias,
        truncate_prompt_tokens=request.truncate_prompt_tokens,
        num_beam_groups=request.num_beam_groups,
        diversity_penalty=request.diversity_penalty,
        penalty_alpha=request.penalty_alpha,
        choices=tuple(request.choices) if request.choices is not None else None,
    )
    try:  # the engine's own checks; the protocol's are stricter, so this is a safety net
        params.validate(CONTEXT_LENGTH)
    except ValueError as err:
        raise RequestError(str(err), param_named(str(err))) from None
    return params


def param_named(message: str, default: str | None = None) -> str | None:
    """The request field an engine's ValueError message starts with ("n=3 must ..."), if any."""
    name = message.split("=")[0].split(" ")[0]
    return name if name in CompletionRequest.model_fields else default


def new_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def logprobs_body(choices: list[Choice], tokenizer: Any, offset: int = 0) -> Logprobs:
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
    return Logprobs(
        tokens=tokens, token_logprobs=token_logprobs, top_logprobs=top, text_offset=offsets
    )


def completion_body(
    cid: str,
    model: str,
    results: list[ChoiceResult],
    tokenizer: Any,
    want_logprobs: bool,
    prompt_tokens: int,
) -> CompletionResponse:
    """The non-streaming reply."""
    choices = [
        CompletionChoice(
            index=r.index,
            text=r.text,
            logprobs=logprobs_body(r.logprobs, tokenizer) if want_logprobs else None,
            finish_reason=r.finish_reason,
        )
        for r in sorted(results, key=lambda r: r.index)
    ]
    return CompletionResponse(
        id=cid,
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=usage(results, prompt_tokens),
    )


def usage(results: list[ChoiceResult], prompt_tokens: int) -> Usage:
    completion_tokens = sum(len(r.token_ids) for r in results)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def chunk_body(
    cid: str,
    model: str,
    index: int,
    text: str,
    finish_reason: str | None,
    logprobs: Logprobs | None = None,
) -> CompletionChunk:
    return CompletionChunk(
        id=cid,
        created=int(time.time()),
        model=model,
        choices=[
            CompletionChoice(index=index, text=text, logprobs=logprobs, finish_reason=finish_reason)
        ],
    )
