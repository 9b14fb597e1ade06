"""Run an agent: bind a loopback port, write the runtime file, serve until told to stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .. import openmp
from ..protocol import MAX_BODY_BYTES
from .app import make_app
from .host import ModelHost
from .runtime import AgentInfo, remove_runtime, runtime_file, write_runtime

log = logging.getLogger("galactica_ext.agent")
#: a keep-alive connection with no request for this long is closed (nginx's default is 75 s)
IDLE_TIMEOUT_S = 75.0
#: a request body must arrive within this time (a full-size body takes well under a second)
BODY_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent's options, for ``galactica-ext agent`` and ``python -m galactica_ext.agent``."""
    parser.add_argument(
        "--model",
        help="size (125m, 1.3b, ...; mini, base, ...), hub id or directory "
        "(default: $GALACTICA_MODEL or facebook/galactica-125m)",
    )
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"]
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quantize", choices=["8bit", "4bit"], help="load through bitsandbytes")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--runtime-file",
        type=Path,
        help="where to write URL and token "
        "(default: galactica-agent.json in Jupyter's runtime directory)",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="sequences decoded together")
    parser.add_argument("--max-queue", type=int, default=64, help="waiting requests before 503")
    parser.add_argument(
        "--no-load", action="store_true", help="start empty; load with POST /v1/load"
    )
    parser.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="never reuse the KV cache of earlier prompts (for benchmarks)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch's compute threads on the CPU (default: $OMP_NUM_THREADS or "
        "$GALACTICA_THREADS if set, else measured at load and adapted while serving)",
    )


def set_threads(threads: int | None) -> None:
    """A count given (``--threads``, ``$OMP_NUM_THREADS``, ``$GALACTICA_THREADS``) is kept;
    otherwise each load measures it and the engine adapts it while it serves.

    No fixed rule fits: one thread per core but one suits galactica-125m on a busy 2-core
    machine (with a thread on every core, any other busy process stalls every step), while
    on an idle one two threads decode 1.5x faster and prefill 2x faster, and a 1.3b step
    needs more threads to draw the memory bandwidth (engine/thread_tuner.py).
    """
    from ..engine.threads import THREADS_ENV

    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        os.environ.setdefault(THREADS_ENV, "auto")


async def serve(args: argparse.Namespace) -> None:
    token = os.environ.get("GALACTICA_AGENT_TOKEN") or secrets.token_urlsafe(32)
    set_threads(getattr(args, "threads", None))
    engine_options = {"prefix_cache_bytes": 0} if args.no_prefix_cache else {}
    host = ModelHost(max_batch=args.max_batch, max_queue=args.max_queue, **engine_options)
    if not args.no_load:
        options = {"dtype": args.dtype, "device": args.device, "quantize": args.quantize}
        try:
            host.load(args.model, **options)
        except (ValueError, FileNotFoundError) as err:  # visible in /health, like a failed load
            host.status, host.model, host.error = "failed", args.model, str(err)
    sockets = bind_sockets(args.port, args.host)
    port = sockets[0].getsockname()[1]
    # the handlers check the token and the declared size before reading a body (app.py);
    # idle keep-alive connections and slow bodies are dropped
    server = HTTPServer(
        make_app(host, token),
        idle_connection_timeout=IDLE_TIMEOUT_S,
        body_timeout=BODY_TIMEOUT_S,
        max_body_size=4 * MAX_BODY_BYTES,  # a last stop: the handlers stop at 1x
    )
    server.add_sockets(sockets)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    info = AgentInfo(
        url=f"http://{url_host}:{port}",
        token=token,
        pid=os.getpid(),
        model=host.model or str(args.model or ""),
    )
    path = write_runtime(info, args.runtime_file or runtime_file())
    log.info("GALACTICA agent listening on %s (runtime file %s)", info.url, path)
    log.info("OpenMP: %s", openmp.state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("GALACTICA agent stopping")
        remove_runtime(os.getpid(), path)
        server.stop()
        host.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="galactica-ext agent",
        description="Serve GALACTICA over an OpenAI-compatible API on this machine.",
    )
    add_arguments(parser)
    run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="[galactica-agent %(levelname)s] %(message)s")
    asyncio.run(serve(args))
