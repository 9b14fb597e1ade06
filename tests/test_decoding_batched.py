"""Greedy tokens chosen for every plain row of a decoding step at once (issue 13): the same
tokens and log-probabilities as choosing row by row, and a NaN row left to fail alone."""

from __future__ import annotations

import pytest
import torch

from galactica_ext.engine import Engine, Galactica, SamplingParams
from galactica_ext.engine.sampling import choose, choose_greedy, plain_greedy


def test_batched_greedy_equals_row_by_row() -> None:
    logits = torch.randn(6, 50_000, generator=torch.Generator().manual_seed(1)) * 4
    wanted = [None, 0, 3, None, 20, 1]
    batched = choose_greedy(logits, wanted)
    for row, k, got in zip(logits, wanted, batched, strict=True):
        one = choose(row, SamplingParams(logprobs=k), None, None, 0, [2])
        assert got is not None and got.token_id == one.token_id
        if k is None:
            assert got.logprob is None
        else:
            assert got.logprob == pytest.approx(one.logprob, abs=1e-6)
            assert [t for t, _ in got.top_logprobs] == [t for t, _ in one.top_logprobs]
            assert [v for _, v in got.top_logprobs] == pytest.approx(
                [v for _, v in one.top_logprobs], abs=1e-6
            )


def test_a_nan_row_is_left_to_the_row_by_row_path() -> None:
    logits = torch.randn(3, 100)
    logits[1, 5] = float("nan")
    picked = choose_greedy(logits, [0, 0, None])
    assert picked[1] is None and picked[0] is not None and picked[2] is not None


def test_only_plain_greedy_rows_take_the_batched_path() -> None:
    assert plain_greedy(SamplingParams(), 0)
    assert not plain_greedy(SamplingParams(temperature=0.5), 0)
    assert not plain_greedy(SamplingParams(logit_bias={5: 1.0}), 0)
    assert not plain_greedy(SamplingParams(min_tokens=3), 2)
    assert plain_greedy(SamplingParams(min_tokens=3), 3)
    assert not plain_greedy(SamplingParams(choices=("a",)), 0)


def test_a_batch_of_greedy_requests_matches_each_alone(tiny_model: Galactica) -> None:
    engine: Engine = tiny_model.engine
    prompts = ["One", "Two prompts", "Three prompts here", "Four"]
    params = [SamplingParams(max_tokens=8, logprobs=k, ignore_eos=True) for k in (None, 0, 2, 1)]
    alone = [engine.generate(p, s)[0] for p, s in zip(prompts, params, strict=True)]
    before = engine.steps
    together = [engine.submit(p, s) for p, s in zip(prompts, params, strict=True)]
    results = [c.wait()[0] for c in together]
    assert engine.steps - before < 4 * 7  # they shared steps
    for a, b in zip(alone, results, strict=True):
        assert a.token_ids == b.token_ids
        assert [c.logprob for c in a.logprobs] == pytest.approx(
            [c.logprob for c in b.logprobs], abs=1e-4
        )
