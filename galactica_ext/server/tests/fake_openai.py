"""A small OpenAI-compatible completions server with scripted answers, for tests.

It answers like a GALACTICA model would, by the prompt's last marker: references after
``[START_REF]``, LaTeX after ``\\[``, a summary after ``TLDR:``, an answer after ``Answer:``,
prose otherwise. It honours ``stop``, ``n`` and ``stream``, and counts streams that the
client closed early (``cancelled``), so tests can check that aborting reaches the model.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REFERENCES = [
    "Attention is all you need, Ashish Vaswani",
    "BERT: Pre-training of Deep Bidirectional Transformers, Jacob Devlin",
    "Language Models are Few-Shot Learners, Tom Brown",
    "Deep Residual Learning for Image Recognition, Kaiming He",
]
SUMMARY = " The cell explains how the fake model answers.\n\nMore text"
EQUATION = " E = m c^{2} \\]\n\nMore"
ANSWER = " Forty-two.\n\nQuestion"
WORK = " 6 * 7 = 42 </work>"
PROSE = " and the ghost text continues here.\n\nNext paragraph"
MODEL_ID = "fake-galactica"


def answers(prompt: str, n: int) -> list[str]:
    """The raw continuations of ``prompt`` (before stops)."""
    ref_at = prompt.rfind("[START_REF]")
    if ref_at != -1 and prompt.rfind("[END_REF]") < ref_at:
        typed = prompt[ref_at + len("[START_REF]") :].lstrip().lower()
        matching = [r for r in REFERENCES if r.lower().startswith(typed)] or REFERENCES
        return [r[len(typed) :] + "[END_REF] more" for r in (matching * n)[:n]]
    if prompt.rstrip().endswith("TLDR:"):
        text = SUMMARY
    elif prompt.rfind("\\[") > prompt.rfind("\\]"):
        text = EQUATION
    elif prompt.rstrip().endswith("Answer:"):
        text = ANSWER
    elif prompt.rstrip().endswith("<work>"):
        text = WORK
    else:
        text = PROSE
    return [text] * n


def cut(text: str, stops: list[str]) -> tuple[str, str]:
    at = min((i for i in (text.find(s) for s in stops) if i != -1), default=-1)
    return (text, "length") if at == -1 else (text[:at], "stop")


class FakeOpenAI:
    """Run the fake server on a free loopback port in a background thread."""

    def __init__(self, chunk_delay: float = 0.02, chunk_chars: int = 4) -> None:
        self.chunk_delay = chunk_delay
        self.chunk_chars = chunk_chars
        self.requests: list[dict[str, Any]] = []
        self.cancelled = 0
        self.completed = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(
                        200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}
                    )
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._json(400, {"error": {"message": "bad JSON"}})
                if self.path.rstrip("/") != "/v1/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                fake.requests.append(body)
                prompt = body.get("prompt", "")
                n = int(body.get("n", 1))
                stops = body.get("stop") or []
                stops = [stops] if isinstance(stops, str) else stops
                results = [cut(a, stops) for a in answers(prompt, n)]
                if not body.get("stream"):
                    choices = [
                        {"index": i, "text": t, "finish_reason": r}
                        for i, (t, r) in enumerate(results)
                    ]
                    fake.completed += 1
                    return self._json(200, {"object": "text_completion", "choices": choices})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for i, (text, reason) in enumerate(results):
                        for start in range(0, len(text), fake.chunk_chars):
                            piece = text[start : start + fake.chunk_chars]
                            self._event(
                                {"choices": [{"index": i, "text": piece, "finish_reason": None}]}
                            )
                            time.sleep(fake.chunk_delay)
                        self._event(
                            {"choices": [{"index": i, "text": "", "finish_reason": reason}]}
                        )
                    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 1}
                    self._event({"choices": [], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    fake.completed += 1
                except (BrokenPipeError, ConnectionResetError):
                    fake.cancelled += 1
                self.close_connection = True

            def _event(self, body: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    fake = FakeOpenAI()
    if port:
        fake.server.server_close()
        fake.server = ThreadingHTTPServer(("127.0.0.1", port), fake.server.RequestHandlerClass)
        fake.url = f"http://127.0.0.1:{port}/v1"
        fake._thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    fake.start()
    print(fake.url, flush=True)
    threading.Event().wait()
