"""Choice constraints (issue 10.2, engine side): every generated choice is exactly one of the
strings, greedy, sampled and with beams (distinct, ranked by the model's summed
log-probability), in the continuous batch; the trie is built once per distinct list."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from galactica_ext.engine import Engine, GalacticaModel, SamplingParams

END_REF = 5
PROMPTS = [
    "The Transformer architecture [START_REF]",
    "Residual connections make deep networks trainable [START_REF]",
    "Protein structure prediction reached atomic accuracy [START_REF]",
    "Language models can be few-shot learners [START_REF]",
]
LIBRARY = (
    " Attention Is All You Need, Vaswani",
    " Deep Residual Learning for Image Recognition, He",
    " Highly accurate protein structure prediction with AlphaFold, Jumper",
    " Language Models are Few-Shot Learners, Brown",
    " BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding, Devlin",
    " Attention Is All You Need",  # a prefix of the first
)


@pytest.fixture
def engine(tiny_model: GalacticaModel) -> Engine:
    return tiny_model.engine


def cite(**options: Any) -> SamplingParams:
    """A grounded cite's decoding, as the tasks write it."""
    return SamplingParams(
        max_tokens=40, stop=["[END_REF]"], stop_token_ids=[END_REF], choices=LIBRARY, **options
    )


def choice_logprob(engine: Engine, prompt: str, choice: str) -> float:
    """log P(choice, then [END_REF] | prompt), from the whole model without a cache."""
    ids = engine.encode(prompt)
    tokens = [*engine.encode(choice), END_REF]
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([ids + tokens])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
    return float(logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].sum())


def test_a_choice_tokenises_alone_as_it_follows_start_ref(engine: Engine) -> None:
    for choice in LIBRARY:
        after = engine.encode("Some text [START_REF]" + choice)
        assert engine.encode(choice) == after[after.index(4) + 1 :]


def test_greedy_choices_are_always_one_of_the_strings(engine: Engine) -> None:
    for prompt in PROMPTS:
        (result,) = engine.generate(prompt, cite())
        assert result.text in LIBRARY
        assert result.finish_reason == "stop" and result.token_ids[-1] == END_REF
        assert result.token_ids[:-1] == engine.encode(result.text)


def test_sampled_choices_are_always_one_of_the_strings(engine: Engine) -> None:
    for seed, prompt in enumerate(PROMPTS):
        results = engine.generate(prompt, cite(temperature=1.5, seed=seed), n=4)
        for result in results:
            assert result.text in LIBRARY and result.finish_reason == "stop"


def test_beams_return_distinct_choices_ranked_by_log_probability(engine: Engine) -> None:
    for prompt in PROMPTS:
        results = engine.generate(prompt, cite(logprobs=0), n=3, num_beams=len(LIBRARY))
        texts = [r.text for r in results]
        assert len(set(texts)) == 3 and set(texts) <= set(LIBRARY)
        sums = [sum(c.logprob for c in r.logprobs) for r in results]
        exact = [choice_logprob(engine, prompt, t) for t in texts]
        assert sums == pytest.approx(exact, abs=1e-3)
        # beams as wide as the library search it all: the three best of every choice
        ranked = sorted(LIBRARY, key=lambda c: choice_logprob(engine, prompt, c), reverse=True)
        assert texts == ranked[:3]


def test_greedy_n_gives_distinct_choices(engine: Engine) -> None:
    results = engine.generate(PROMPTS[0], cite(), n=3)
    assert len({r.text for r in results}) == 3 and {r.text for r in results} <= set(LIBRARY)


def test_a_choice_that_is_a_prefix_of_another(engine: Engine) -> None:
    """At the shorter choice's last token both its end and the longer one go on are allowed."""
    short, long = " Attention Is All You Need", " Attention Is All You Need, Vaswani"
    first = engine.encode(short)[0]
    ends = engine.generate(PROMPTS[0], cite(logit_bias={first: 100, END_REF: 100}))[0]
    assert ends.text == short  # the end token is forced as soon as it is allowed
    comma = engine.encode(", Vaswani")[0]
    bias = {first: 100, END_REF: -100, comma: 100}
    goes_on = engine.generate(PROMPTS[0], cite(logit_bias=bias))[0]
    assert goes_on.text == long


def test_choices_too_long_for_max_tokens_are_never_started(engine: Engine) -> None:
    long = " A very long title that needs many more tokens than allowed here, Author"
    params = SamplingParams(
        max_tokens=4, stop_token_ids=[END_REF], choices=(long, " Short, Lee"), logit_bias={}
    )
    first_long = engine.encode(long)[0]
    params.logit_bias = {first_long: 100}  # the model would love to start the long one
    for result in engine.generate(PROMPTS[0], params, n=1):
        assert result.text == " Short, Lee" and result.finish_reason == "stop"
    with pytest.raises(ValueError, match="no choice fits"):
        engine.submit(PROMPTS[0], SamplingParams(max_tokens=3, choices=(long,)))
    with pytest.raises(ValueError, match="distinct choices"):
        engine.submit(PROMPTS[0], SamplingParams(max_tokens=4, choices=(long, " Short, Lee")), n=2)


def test_bad_choices_are_refused(engine: Engine) -> None:
    for choices in ((), ("",), ("x" * 513,), "a string"):
        with pytest.raises(ValueError, match="choice"):
            engine.submit("Hello", SamplingParams(max_tokens=8, choices=choices))  # type: ignore[arg-type]


def test_the_trie_is_built_once_per_distinct_list(engine: Engine) -> None:
    before = engine.tries.builds
    for prompt in PROMPTS:
        engine.generate(prompt, cite())
    engine.generate(PROMPTS[0], cite(), n=2, num_beams=2)
    assert engine.tries.builds - before <= 1  # at most once (an earlier test may have built it)
    engine.generate(PROMPTS[0], SamplingParams(max_tokens=40, choices=LIBRARY[:3]))
    assert engine.tries.builds - before <= 2
    again = engine.tries.builds
    engine.generate(PROMPTS[0], SamplingParams(max_tokens=40, choices=LIBRARY[:3]))
    assert engine.tries.builds == again


def test_choices_run_in_the_continuous_batch_beside_free_requests(engine: Engine) -> None:
    free = SamplingParams(max_tokens=12, ignore_eos=True, logprobs=0)
    alone = engine.generate("Free text", free)[0].token_ids
    completions = [engine.submit(p, cite()) for p in PROMPTS]
    other = engine.submit("Free text", free)
    assert other.wait()[0].token_ids == alone
    for completion in completions:
        assert completion.wait()[0].text in LIBRARY


def test_ten_thousand_choices(engine: Engine) -> None:
    words = ["protein", "graph", "neural", "quantum", "catalyst", "genome", "lattice", "sparse"]
    library = tuple(
        f" {words[i % 8].title()} {words[(i // 8) % 8]} study number {i}, Author{i % 97}"
        for i in range(10_000)
    )
    start = time.perf_counter()
    trie = engine.choice_trie(library)
    built = time.perf_counter() - start
    print(f"10,000 choices: trie of {trie.nodes} nodes built in {built:.2f} s")
    params = SamplingParams(max_tokens=30, stop_token_ids=[END_REF], choices=library)
    for result in engine.generate(PROMPTS[1], params, n=2, num_beams=4):
        assert result.text in library
    sampled = engine.generate(
        PROMPTS[1], SamplingParams(**{**params.__dict__, "temperature": 1.0, "seed": 3})
    )
    assert sampled[0].text in library


def test_a_grounded_cite_task_suggests_library_entries(tiny_model: GalacticaModel) -> None:
    import dataclasses

    from galactica_ext import tasks

    for diverse in (False, True):
        request = tasks.cite("The Transformer architecture", n=3, diverse=diverse)
        request = dataclasses.replace(request, choices=list(LIBRARY))
        result = tiny_model.run(request)
        texts = [s["text"] for s in result["suggestions"]]
        assert len(texts) == 3 and {" " + t for t in texts} <= set(LIBRARY)


def test_contrastive_search_keeps_to_the_choices(engine: Engine) -> None:
    for prompt in PROMPTS:
        (result,) = engine.generate(prompt, cite(penalty_alpha=0.6, top_k=4))
        assert result.text in LIBRARY and result.finish_reason == "stop"


def test_a_shortlist_from_the_same_library_tokenises_only_new_strings(engine: Engine) -> None:
    library = [f" A study of topic {i}, Writer{i}" for i in range(60)]
    first = engine.choice_trie(library[:40])
    encoded = engine.tries.encoded
    second = engine.choice_trie(library[20:60])  # another shortlist: 20 strings are new
    assert engine.tries.encoded - encoded == 20
    assert second is not first and second.choices == tuple(library[20:60])
    for choice in library[20:60]:  # the trie holds each choice's own tokens
        node = second.root
        for token in engine.encode(choice):
            node = node.children[token]
        assert second.choices[node.choice] == choice
