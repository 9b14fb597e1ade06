"""A client for OpenAI-compatible completions servers: our agent, vLLM, ``transformers serve``.

Built on the ``openai`` library (``OpenAI``/``AsyncOpenAI`` with our ``base_url``; vLLM's
fields through ``extra_body``; ``/health`` and ``/v1/load`` through its raw requests; its
errors mapped to ours). The modules, in the order of the data flow:

- :mod:`.core`: the payload of a task's request, a stream's state (a stream that ends before
  every choice finished raises :class:`StreamCut`), ``/health`` of any server, task results;
- :mod:`.sync` and :mod:`.aio`: :class:`CompletionsClient` and :class:`AsyncCompletionsClient`,
  thin shells that do the I/O; closing a stream closes its connection, which cancels the
  generation on the server; :func:`run_task` / :func:`arun_task` run the GALACTICA tasks;
- :mod:`galactica_ext.discovery`: :func:`connect` finds the agent (``$GALACTICA_URL``, the
  server extension's ``remote_url``, a running agent's runtime file) or starts one.

No torch is imported here. Example::

    from galactica_ext.client import connect, run_task

    client = connect()
    run_task(client, "cite", "The Transformer architecture")["suggestions"]
"""

from __future__ import annotations

from typing import Any

from .aio import AsyncCompletionsClient, AsyncCompletionStream, arun_task
from .core import request_payload
from .errors import (
    API_KEY_ENV,
    HOW_TO_START,
    STREAM_CUT,
    URL_ENV,
    AgentUnavailable,
    ClientError,
    CompletionError,
    StreamCut,
)
from .sync import CompletionsClient, CompletionStream, run_task

__all__ = [
    "API_KEY_ENV",
    "HOW_TO_START",
    "STREAM_CUT",
    "URL_ENV",
    "AgentClient",
    "AgentUnavailable",
    "AsyncCompletionStream",
    "AsyncCompletionsClient",
    "ClientError",
    "CompletionError",
    "CompletionStream",
    "CompletionsClient",
    "StreamCut",
    "arun_task",
    "connect",
    "locate",
    "request_payload",
    "run_task",
    "started_agents",
]

#: found in :mod:`galactica_ext.discovery` (imported when first asked for: it imports us)
_DISCOVERY = {"AgentClient", "configured_remote", "connect", "locate", "started_agents"}


def __getattr__(name: str) -> Any:
    if name in _DISCOVERY:
        from .. import discovery

        return getattr(discovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
