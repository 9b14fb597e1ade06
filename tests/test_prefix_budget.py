"""The prefix cache keeps several documents warm within a budget that ``/health`` reports.

An editor user moves between documents: prompts alternate between two documents, each a
little longer every time. A real agent on the tiny checkpoint, the real tokenizer; prompts
are sent as token ids so that the shared prefix is exactly the earlier prompt.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from galactica_ext.engine.kvcache import PrefixCache

DOC_A = (
    "We study the scaling of the free energy of a lattice model with the size of the system. "
    "The Hamiltonian couples nearest neighbours with a strength $J$ and an external field $h$; "
)
DOC_B = (
    "The enzyme catalyses the hydrolysis of the ester bond at room temperature. Its active "
    "site binds the substrate through two hydrogen bonds and a salt bridge with Arg-112. "
)


def health(http: httpx.Client) -> dict[str, Any]:
    return http.get("/health").json()["prefix_cache"]


def document_ids(tokenizer: Any, text: str, tokens: int = 200) -> list[int]:
    """The first ``tokens`` tokens of ``text`` repeated (each text is ~40 tokens)."""
    return tokenizer(text * 8, add_special_tokens=False)["input_ids"][:tokens]


@pytest.fixture
def http(agent_server) -> httpx.Client:
    headers = {"Authorization": f"Bearer {agent_server.token}"} if agent_server.token else {}
    with httpx.Client(base_url=agent_server.url, headers=headers, timeout=120) as client:
        yield client


def test_health_reports_the_prefix_budget(http: httpx.Client) -> None:
    stats = health(http)
    assert stats["max_bytes"] > 0  # reuse is on by default, with a budget
    assert 0 <= stats["bytes"] <= stats["max_bytes"]
    assert stats["entries"] >= 0


def test_two_documents_alternating_both_stay_warm(http: httpx.Client, tokenizer: Any) -> None:
    a = document_ids(tokenizer, DOC_A)
    b = document_ids(tokenizer, DOC_B)
    assert len(a) == len(b) == 200 and a[:8] != b[:8]
    suffix_a = tokenizer(" with periodic", add_special_tokens=False)["input_ids"]
    suffix_b = tokenizer(" in water", add_special_tokens=False)["input_ids"]

    def send(prompt: list[int]) -> int:
        """Complete ``prompt``; the tokens the agent reused for it (from /health)."""
        before = health(http)["reused_tokens"]
        reply = http.post(
            "/v1/completions",
            json={"prompt": prompt, "max_tokens": 4, "temperature": 0, "ignore_eos": True},
        )
        assert reply.status_code == 200, reply.text
        return health(http)["reused_tokens"] - before

    send(a)
    send(b)
    # A was sent before B: it is still cached, and its extension reuses all of it
    assert send(a + suffix_a) >= len(a)
    assert send(b + suffix_b) >= len(b)
    # both grown documents again: the caches of the previous turn are used, not recomputed
    assert send(a + suffix_a + suffix_a) >= len(a) + len(suffix_a)
    assert send(b + suffix_b + suffix_b) >= len(b) + len(suffix_b)
    stats = health(http)
    assert stats["entries"] >= 2
    assert 0 < stats["bytes"] <= stats["max_bytes"]


def test_prefix_cache_counts_entries_and_stays_within_budget() -> None:
    import torch

    def kv(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.ones(1, 2, n, 4), torch.ones(1, 2, n, 4)) for _ in range(2)]

    one = 2 * 2 * (1 * 2 * 4 * 4) * 4  # layers x (k, v) x 4 tokens' floats x 4 bytes
    cache = PrefixCache(max_bytes=2 * one)  # room for two documents of 4 tokens, not three
    assert (cache.entries, cache.bytes) == (0, 0)
    cache.put([1, 1, 1, 1], kv(4))
    cache.put([2, 2, 2, 2], kv(4))
    assert (cache.entries, cache.bytes) == (2, 2 * one)
    cache.put([3, 3, 3, 3], kv(4))  # the least recently used goes
    assert (cache.entries, cache.bytes) == (2, 2 * one)
    cache.put([3, 3, 3, 3, 3], kv(5))  # extends an entry: replaces it, then evicts to fit
    assert cache.entries == 1 and cache.bytes == one * 5 // 4 <= cache.max_bytes
