"""The wire schema (galactica_ext.protocol): property tests of request validation, no torch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galactica_ext.protocol import (
    CONTEXT_LENGTH,
    INT64_MAX,
    INT64_MIN,
    MAX_LOGIT_BIAS,
    MAX_N,
    VOCAB_SIZE,
    CompletionRequest,
    ErrorBody,
    Health,
    LoadRequest,
    RequestError,
    parse_completion,
    parse_load,
)

FIELDS = set(CompletionRequest.model_fields) | {"structured_outputs.choice"}
#: the same examples every run unless GALACTICA_FUZZ_EXPLORE is set (then new ones each run)
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=not os.environ.get("GALACTICA_FUZZ_EXPLORE"),
    suppress_health_check=[HealthCheck.too_slow],
)

token = st.integers(0, VOCAB_SIZE - 1)
text = st.text(min_size=1, max_size=40)  # hypothesis never draws lone surrogates here

valid_request = st.fixed_dictionaries(
    {
        "prompt": st.one_of(
            text,
            st.lists(token, min_size=1, max_size=30),
            st.lists(text, min_size=1, max_size=4),
            st.lists(st.lists(token, min_size=1, max_size=5), min_size=1, max_size=3),
        ),
    },
    optional={
        "model": st.text(max_size=60),
        "max_tokens": st.integers(1, CONTEXT_LENGTH - 1),
        "temperature": st.one_of(st.just(0), st.floats(0.01, 2.0)),
        "top_p": st.floats(0.001, 1.0),
        "top_k": st.one_of(st.sampled_from([-1, 0]), st.integers(1, VOCAB_SIZE)),
        "n": st.integers(1, MAX_N),
        "stop": st.one_of(text, st.lists(text, max_size=16)),
        "stop_token_ids": st.lists(token, max_size=64),
        "logprobs": st.integers(0, 20),
        "logit_bias": st.dictionaries(token.map(str), st.floats(-100, 100), max_size=30),
        "seed": st.integers(INT64_MIN, INT64_MAX),
        "truncate_prompt_tokens": st.integers(1, CONTEXT_LENGTH - 1),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "skip_special_tokens": st.booleans(),
        "ignore_eos": st.booleans(),
        "use_beam_search": st.booleans(),
        "guided_choice": st.lists(text, min_size=1, max_size=5),
        "penalty_alpha": st.floats(0, 1),
        "presence_penalty": st.just(0),
        "user": st.text(max_size=10),  # unknown fields are ignored
    },
)

json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["\ud800", "x" * 300, "50000", "-1", ""]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
edge_int = st.sampled_from(
    [-(2**63) - 1, -1, 0, 1, 16, 17, 20, 21, 2047, 2048, VOCAB_SIZE, 2**63, 2**64]
)
any_request = st.dictionaries(
    st.sampled_from([*sorted(CompletionRequest.model_fields), "user", "extra"]),
    st.one_of(json_value, edge_int, st.floats(0, 3e-2)),
    max_size=8,
)


def check_error(err: RequestError) -> None:
    assert err.status == 400 and str(err)
    body = ErrorBody.model_validate(err.body())
    assert body.error.type == "invalid_request_error"
    assert body.error.param is None or body.error.param in FIELDS or "." in body.error.param


@SETTINGS
@given(body=valid_request)
def test_valid_requests_are_accepted_and_round_trip(body: dict) -> None:
    if body.get("min_tokens", 0) > body.get("max_tokens", 16):
        body.pop("min_tokens")
    if body.get("n", 1) > 1 or body.get("use_beam_search"):
        body.pop("penalty_alpha", None)  # contrastive search gives one sequence
    request = parse_completion(body)
    again = parse_completion(json.loads(request.model_dump_json(exclude_none=True)))
    assert again == request
    assert request.prompts and all(len(p) for p in request.prompts)
    assert request.beams in (1, request.n)
    assert all(0 <= t < VOCAB_SIZE for t in request.bias)


@SETTINGS
@given(body=st.one_of(any_request, json_value))
def test_any_body_is_accepted_or_a_400_naming_a_field(body: object) -> None:
    try:
        request = parse_completion(body)
    except RequestError as err:
        check_error(err)
        return
    # whatever is accepted obeys every limit
    assert 1 <= request.max_tokens < CONTEXT_LENGTH and 1 <= request.n <= MAX_N
    assert request.temperature == 0 or 0.01 <= request.temperature <= 2
    assert len(request.bias) <= MAX_LOGIT_BIAS
    assert request.seed is None or INT64_MIN <= request.seed <= INT64_MAX
    for prompt in request.prompts:
        if isinstance(prompt, str):
            prompt.encode("utf-8")
        else:
            assert all(0 <= t < VOCAB_SIZE for t in prompt)


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(["model", "dtype", "device", "quantize"]), json_value))
def test_load_bodies_are_accepted_or_a_400(body: dict) -> None:
    try:
        request = parse_load(body)
    except RequestError as err:
        assert err.status == 400 and err.param in LoadRequest.model_fields
        return
    assert request.model is None or isinstance(request.model, str)
    assert set(request.options()) <= {"dtype", "device", "quantize"}


@pytest.mark.parametrize(
    ("temperature", "accepted"),
    [
        (0, True),
        (0.01, True),
        (2, True),
        (3e-39, False),
        (0.009, False),
        (2.01, False),
        (-1, False),
        (math.nan, False),
        (math.inf, False),
    ],
)
def test_temperature_is_zero_or_in_range(temperature: float, accepted: bool) -> None:
    body = {"prompt": "x", "temperature": temperature}
    if accepted:
        assert parse_completion(body).temperature == temperature
    else:
        with pytest.raises(RequestError) as caught:
            parse_completion(body)
        assert caught.value.param == "temperature" and "use 0 for greedy" in str(caught.value)


def test_nulls_mean_defaults_and_the_choice_fields() -> None:
    request = parse_completion({"prompt": "x", "max_tokens": None, "n": None, "stop": None})
    assert (request.max_tokens, request.n, request.stops) == (16, 1, [])
    assert parse_completion({"prompt": "x", "guided_choice": ["a", "b"]}).choices == ["a", "b"]
    request = parse_completion({"prompt": "x", "structured_outputs": {"choice": [" T, A"]}})
    assert request.choices == [" T, A"]
    with pytest.raises(RequestError) as caught:
        parse_completion({"prompt": "x", "structured_outputs": {"regex": "a+"}})
    assert caught.value.param == "structured_outputs"


def test_health_parses_what_other_servers_lack() -> None:
    health = Health.model_validate({"status": "ready"})
    assert health.queue.running == 0 and health.model is None
    assert Health.model_validate_json(health.model_dump_json()) == health


def test_protocol_and_agent_api_import_no_torch() -> None:
    code = (
        "import sys, galactica_ext.protocol, galactica_ext.agent.openai_api;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
