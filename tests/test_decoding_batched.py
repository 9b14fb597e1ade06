"""Greedy tokens chosen for every plain row of a decoding step at once (issue 13): the same
tokens and log-probabilities as choosing row by row, and a NaN row left to fail alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from galactica_ext.engine import Engine, GalacticaModel, SamplingParams
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
    assert plain_greedy(SamplingParams())
    assert not plain_greedy(SamplingParams(temperature=0.5))
    assert not plain_greedy(SamplingParams(logit_bias={5: 1.0}))
    assert plain_greedy(SamplingParams(min_tokens=3))  # its ends banned in the batch
    assert not plain_greedy(SamplingParams(choices=("a",)))


def test_batched_greedy_bans_the_ends_of_rows_under_min_tokens() -> None:
    """Rows whose argmax is an end token, under ``min_tokens`` (ends banned) and past it:
    the same tokens and log-probabilities (the model's, before the ban) as ``choose``, and
    the caller's logits unchanged."""
    logits = torch.randn(4, 1_000, generator=torch.Generator().manual_seed(2)) * 4
    ends = (2, 7)
    logits[:, 7] = 50.0  # every row's argmax is an end
    before = logits.clone()
    params = SamplingParams(min_tokens=5, logprobs=2)
    generated = [0, 4, 5, 9]  # under min_tokens, under, at it, past it
    banned = [ends if g < params.min_tokens else () for g in generated]
    picked = choose_greedy(logits, [2] * 4, banned)
    assert torch.equal(logits, before)
    for row, g, got in zip(logits, generated, picked, strict=True):
        one = choose(row, params, None, None, g, ends)
        assert got is not None and got.token_id == one.token_id
        assert (got.token_id == 7) == (g >= params.min_tokens)
        assert got.logprob == pytest.approx(one.logprob, abs=1e-6)
        assert [t for t, _ in got.top_logprobs] == [t for t, _ in one.top_logprobs]


def test_a_row_with_every_token_banned_is_left_to_the_row_by_row_path() -> None:
    logits = torch.randn(2, 4)
    picked = choose_greedy(logits, [None, 1], [(0, 1, 2, 3), ()])
    assert picked[0] is None and picked[1] is not None


@pytest.mark.parametrize("min_tokens", [0, 8])
def test_a_batch_of_greedy_requests_matches_each_alone(
    tiny_model: GalacticaModel, min_tokens: int
) -> None:
    engine: Engine = tiny_model.engine
    prompts = ["One", "Two prompts", "Three prompts here", "Four"]
    params = [
        # with min_tokens, the end is not ignored but banned until then
        SamplingParams(max_tokens=8, logprobs=k, ignore_eos=not min_tokens, min_tokens=min_tokens)
        for k in (None, 0, 2, 1)
    ]
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


def reference(model: Any, ids: list[int], steps: int) -> list[tuple[int, float]]:
    """Greedy (token, log-probability) pairs recomputing the whole sequence at every step."""
    ids, out = list(ids), []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            token = int(torch.argmax(logprobs))
            out.append((token, float(logprobs[token])))
            ids.append(token)
    return out


def test_cold_prompts_admitted_together_share_one_prefill(tiny_model: GalacticaModel) -> None:
    engine: Engine = tiny_model.engine
    reached, released = threading.Event(), threading.Event()

    def hold(batch_id: int, ids: torch.Tensor) -> list[int]:
        if not released.is_set():
            reached.set()
            released.wait(timeout=60)
        return []

    blocker = engine.submit(
        "Hold the worker", SamplingParams(max_tokens=2, prefix_allowed_tokens_fn=hold)
    )
    assert reached.wait(timeout=60)
    # token ids no cached prompt starts with, of different lengths
    prompts = [[40_000 + i, *range(1_000 + 50 * i, 1_000 + 50 * i + 5 + 9 * i)] for i in range(4)]
    before = engine.batched_prefills
    completions = [
        engine.submit(p, SamplingParams(max_tokens=6, logprobs=0, ignore_eos=True)) for p in prompts
    ]
    released.set()
    blocker.wait()
    for prompt, completion in zip(prompts, completions, strict=True):
        (result,) = completion.wait()
        expected = reference(engine.model, prompt, 6)
        assert result.token_ids == [t for t, _ in expected]
        assert [c.logprob for c in result.logprobs] == pytest.approx(
            [lp for _, lp in expected], abs=1e-4
        )
        assert result.reused_tokens == 0
    assert engine.batched_prefills == before + 1


def test_prompts_are_packed_within_the_prefill_budget() -> None:
    from galactica_ext.engine.prefill import packed

    lengths = [10, 1000, 30, 999, 2000, 5]
    groups = packed(lengths, lambda n: n, budget=2048)
    assert sorted(n for g in groups for n in g) == sorted(lengths)
    for group in groups:
        assert max(group) * len(group) <= 2048 or len(group) == 1


def test_bfloat16_fast_paths_agree_with_the_plain_model(tiny_checkpoint: Any) -> None:
    """In bfloat16 the batched prefill, batched greedy choice and in-place cache give
    log-probabilities within bfloat16 rounding of the plain model's on the same tokens."""
    from transformers import OPTForCausalLM

    model = GalacticaModel.load(str(tiny_checkpoint), dtype="bfloat16", device="cpu")
    plain = OPTForCausalLM.from_pretrained(str(tiny_checkpoint), dtype=torch.bfloat16).eval()
    try:
        engine = model.engine
        prompts = [
            [41_000 + i, *range(2_000 + 40 * i, 2_000 + 40 * i + 4 + 7 * i)] for i in range(3)
        ]
        params = SamplingParams(max_tokens=12, logprobs=0, ignore_eos=True)
        completions = [engine.submit(p, params) for p in prompts]
        for prompt, completion in zip(prompts, completions, strict=True):
            (result,) = completion.wait()
            sequence = torch.tensor([prompt + result.token_ids])
            with torch.inference_mode():
                logits = plain(input_ids=sequence).logits[0, len(prompt) - 1 : -1].float()
            replay = torch.log_softmax(logits, dim=-1)
            expected = replay[torch.arange(12), torch.tensor(result.token_ids)]
            got = torch.tensor([c.logprob for c in result.logprobs])
            assert torch.allclose(got, expected, atol=5e-2, rtol=5e-2)
    finally:
        model.close()
