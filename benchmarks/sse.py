"""A minimal, timing-aware client for OpenAI-style streamed completions (server-sent events).

Plain ``http.client`` on a socket we own: every chunk is timestamped as it arrives, and a
request can be abandoned right after its first token by closing the socket, which is what an
editor does when the user keeps typing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class StreamResult:
    """Timestamps (``time.perf_counter``) of one streamed completion."""

    sent: float  # request written
    first: float | None = None  # first chunk with text
    last: float | None = None  # last chunk with text
    done: float | None = None  # finish_reason seen (or the socket closed by us)
    chunks: list[float] = field(default_factory=list)  # arrival of every chunk with text
    text: str = ""
    completion_tokens: int | None = None  # from the usage chunk, when the server sends one
    finish_reason: str | None = None
    closed_at: float | None = None  # when we closed the connection early

    @property
    def ttft(self) -> float:
        assert self.first is not None, "no token arrived"
        return self.first - self.sent

    def decode_rate(self, tokens: int) -> float:
        """Tokens per second between the first and the last token of ``tokens`` generated."""
        assert self.first is not None and self.last is not None
        end = self.done if self.done is not None else self.last
        return (tokens - 1) / max(end - self.first, 1e-9)


class Server:
    """Where a completions server listens, and how to authenticate."""

    def __init__(self, url: str, token: str | None = None, model: str | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.model = model

    def with_model(self, body: dict) -> dict:
        """``body`` naming this server's model, where it has one and ``body`` names none."""
        return {**body, "model": self.model} if self.model and "model" not in body else body

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=self.headers())
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def complete(
        self,
        body: dict,
        *,
        close_after_first: bool = False,
        close_after: int = 0,
        timeout: float = 600.0,
    ) -> StreamResult:
        """POST a streamed completion; return its timings. ``close_after_first``: hang up as
        soon as the first text arrives (the server should cancel the generation);
        ``close_after``: hang up after that many chunks with text."""
        if close_after_first:
            close_after = 1
        body = self.with_model({"stream": True, **body})
        payload = json.dumps(body).encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = conn.sock
        result = StreamResult(sent=time.perf_counter())
        try:
            conn.request("POST", "/v1/completions", body=payload, headers=self.headers())
            result.sent = time.perf_counter()
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:500]!r}")
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                now = time.perf_counter()
                chunk = json.loads(data)
                if chunk.get("usage"):
                    result.completion_tokens = chunk["usage"].get("completion_tokens")
                for choice in chunk.get("choices") or []:
                    if choice.get("text"):
                        result.text += choice["text"]
                        result.chunks.append(now)
                        if result.first is None:
                            result.first = now
                        result.last = now
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                        result.done = now
                if close_after and len(result.chunks) >= close_after:
                    result.closed_at = time.perf_counter()
                    break
        finally:
            if close_after:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            conn.close()
        return result
