"""Group (diverse) beam search and contrastive search (issue 11.4), each checked token for
token against a plain reference loop over the whole model (no cache) in float32.

transformers 5 moved both to hub code (``custom_generate``), which cannot run here, so the
references follow the removed transformers code: ``_group_beam_search`` with
``BeamSearchScorer`` and ``HammingDiversityLogitsProcessor``, and ``_contrastive_search`` with
``_ranking_fast``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from galactica_ext.engine import Delta, Engine, Finished, GalacticaModel, SamplingParams

EOS = 2


@pytest.fixture
def engine(tiny_model: GalacticaModel) -> Engine:
    return tiny_model.engine


def last_logprobs(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)


def reference_group_beams(
    model: Any,
    prompt: list[int],
    beams: int,
    groups: int,
    penalty: float,
    max_tokens: int,
    n: int,
    bias: dict[int, float] | None = None,
) -> list[list[int]]:
    """Group beam search with Hamming diversity, early stopping, length penalty 1."""
    size = beams // groups
    vocab = model.config.vocab_size
    seqs = [list(prompt) for _ in range(beams)]
    scores = [0.0 if i % size == 0 else -1e9 for i in range(beams)]
    hyps: list[list[tuple[float, list[int]]]] = [[] for _ in range(groups)]
    done = [False] * groups

    def keep(group: int, score: float, seq: list[int]) -> None:
        hyps[group].append((score, seq))
        hyps[group].sort(key=lambda h: h[0], reverse=True)
        del hyps[group][size:]

    for step in range(max_tokens):
        logprobs = [last_logprobs(model, s) for s in seqs]
        for lp in logprobs:
            for token, value in (bias or {}).items():
                lp[token] += value
        current: list[int] = []
        next_seqs, next_scores = [], []
        for group in range(groups):
            rows = range(group * size, (group + 1) * size)
            if done[group]:
                next_seqs += [seqs[group * size] + [1]] * size
                next_scores += [0.0] * size
                current += [1] * size
                continue
            used = torch.bincount(torch.tensor(current, dtype=torch.long), minlength=vocab)
            summed = torch.cat([logprobs[r] - penalty * used + scores[r] for r in rows])
            top, index = torch.topk(summed, 2 * size)
            chosen = []
            for rank, (score, i) in enumerate(zip(top.tolist(), index.tolist(), strict=True)):
                row, token = group * size + i // vocab, i % vocab
                if token == EOS:
                    if rank < size:
                        keep(group, score / (step + 1), seqs[row] + [token])
                else:
                    chosen.append((score, seqs[row] + [token]))
                if len(chosen) == size:
                    break
            next_seqs += [s for _, s in chosen]
            next_scores += [score for score, _ in chosen]
            current += [s[-1] for _, s in chosen]
            done[group] = done[group] or len(hyps[group]) >= size
        seqs, scores = next_seqs, next_scores
        if all(done):
            break
    for group in range(groups):
        if not done[group]:
            for row in range(group * size, (group + 1) * size):
                keep(group, scores[row] / (len(seqs[row]) - len(prompt)), seqs[row])
    pool = sorted((h for group_hyps in hyps for h in group_hyps), key=lambda h: h[0])
    return [pool.pop()[1][len(prompt) :] for _ in range(n)]


@pytest.mark.parametrize(
    ("prompt", "beams", "groups", "penalty", "n", "bias"),
    [
        ("The Transformer architecture [START_REF]", 4, 4, 0.9, 4, None),  # galai's cite
        ("Proteins fold into", 6, 2, 1.5, 3, None),
        ("Hello", 4, 2, 0.5, 4, {EOS: 6.0}),  # some beams end early
    ],
)
def test_group_beam_search_matches_the_reference(
    engine: Engine,
    prompt: str,
    beams: int,
    groups: int,
    penalty: float,
    n: int,
    bias: dict[int, float] | None,
) -> None:
    params = SamplingParams(
        max_tokens=7, num_beam_groups=groups, diversity_penalty=penalty, logit_bias=bias or {}
    )
    got = [r.token_ids for r in engine.generate(prompt, params, n=n, num_beams=beams)]
    expected = reference_group_beams(
        engine.model, engine.encode(prompt), beams, groups, penalty, 7, n, bias
    )
    assert got == expected


def test_diversity_changes_the_beams(engine: Engine) -> None:
    prompt = "The Transformer architecture [START_REF]"
    plain = engine.generate(prompt, SamplingParams(max_tokens=6), n=4, num_beams=4)
    diverse = engine.generate(
        prompt,
        SamplingParams(max_tokens=6, num_beam_groups=4, diversity_penalty=50.0),
        n=4,
        num_beams=4,
    )
    firsts = {r.token_ids[0] for r in diverse}
    assert len(firsts) == 4  # a huge penalty: every group starts with another token
    assert [r.token_ids for r in plain] != [r.token_ids for r in diverse]


def reference_contrastive(
    model: Any, prompt: list[int], alpha: float, top_k: int, max_tokens: int
) -> list[int]:
    ids, out = list(prompt), []
    with torch.inference_mode():
        for _ in range(max_tokens):
            result = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            context = result.hidden_states[-1][0].float()
            probs = torch.softmax(result.logits[0, -1].float(), dim=-1)
            top_probs, top_ids = torch.topk(probs, top_k)
            best: tuple[float, int] | None = None
            for p, token in zip(top_probs.tolist(), top_ids.tolist(), strict=True):
                hidden = (
                    model(input_ids=torch.tensor([[*ids, token]]), output_hidden_states=True)
                    .hidden_states[-1][0, -1]
                    .float()
                )
                similarity = torch.nn.functional.cosine_similarity(context, hidden[None], dim=-1)
                score = (1 - alpha) * p - alpha * float(similarity.max())
                if best is None or score > best[0]:
                    best = (score, token)
            assert best is not None
            ids.append(best[1])
            out.append(best[1])
            if best[1] == EOS:
                break
    return out


@pytest.mark.parametrize(("prompt", "alpha", "top_k"), [("Hello", 0.6, 4), ("Lecture 1:", 0.9, 6)])
def test_contrastive_search_matches_the_reference(
    engine: Engine, prompt: str, alpha: float, top_k: int
) -> None:
    params = SamplingParams(max_tokens=8, penalty_alpha=alpha, top_k=top_k, logprobs=0)
    events = list(engine.submit(prompt, params))
    result = events[-1].result
    assert isinstance(events[-1], Finished)
    assert result.token_ids == reference_contrastive(
        engine.model, engine.encode(prompt), alpha, top_k, 8
    )
    deltas = [e for e in events if isinstance(e, Delta)]
    assert "".join(d.text for d in deltas) == result.text  # it streams like greedy
    assert len(result.logprobs) == len(result.token_ids)
    greedy = engine.generate(prompt, SamplingParams(max_tokens=8))[0].token_ids
    assert result.token_ids != greedy  # the degeneration penalty changed something


def test_contrastive_search_with_no_penalty_is_greedy(engine: Engine) -> None:
    greedy = engine.generate("Graphene", SamplingParams(max_tokens=6))[0].token_ids
    tiny = SamplingParams(max_tokens=6, penalty_alpha=1e-9, top_k=3)
    assert engine.generate("Graphene", tiny)[0].token_ids == greedy


@pytest.mark.parametrize(
    ("params", "n", "beams", "match"),
    [
        ({"num_beam_groups": 3, "diversity_penalty": 1.0}, 4, 4, "divide"),
        ({"num_beam_groups": 2}, 2, 2, "diversity_penalty"),
        ({"num_beam_groups": 0}, 1, 1, "num_beam_groups"),
        ({"diversity_penalty": -1.0}, 1, 1, "diversity_penalty"),
        ({"penalty_alpha": 1.5}, 1, 1, "penalty_alpha"),
        ({"penalty_alpha": 0.6, "top_k": 4}, 2, 1, "contrastive"),
        ({"penalty_alpha": 0.6, "top_k": 4}, 1, 2, "contrastive"),
        ({"temperature": float("nan")}, 1, 1, "temperature"),
        ({"logit_bias": {50_000: 1.0}}, 1, 1, "logit_bias"),
        ({"stop_token_ids": [2, 60_000]}, 1, 1, "stop_token_ids"),
    ],
)
def test_bad_decoding_modes_are_refused(
    engine: Engine, params: dict, n: int, beams: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        engine.submit("Hello", SamplingParams(max_tokens=4, **params), n=n, num_beams=beams)


def test_cancel_a_contrastive_search(engine: Engine) -> None:
    prompt_len = len(engine.encode("Cancel me"))
    holder: list[Any] = []

    def cancel_at_three(batch_id: int, ids: torch.Tensor) -> list[int]:
        if len(ids) - prompt_len == 3:
            holder[0].cancel()
        return []

    params = SamplingParams(
        max_tokens=200,
        penalty_alpha=0.6,
        top_k=3,
        ignore_eos=True,
        prefix_allowed_tokens_fn=cancel_at_three,
    )
    holder.append(engine.submit("Cancel me", params))
    (result,) = holder[0].wait()
    assert result.finish_reason == "cancelled" and len(result.token_ids) == 4


def test_penalty_alpha_with_sampling_is_plain_sampling(engine: Engine) -> None:
    """As in transformers: contrastive search only when not sampling."""
    sampled = SamplingParams(max_tokens=6, temperature=1.0, top_k=4, seed=7, ignore_eos=True)
    both = SamplingParams(
        max_tokens=6, temperature=1.0, top_k=4, seed=7, ignore_eos=True, penalty_alpha=0.6
    )
    assert not both.contrastive
    assert (
        engine.generate("Same", both)[0].token_ids == engine.generate("Same", sampled)[0].token_ids
    )
