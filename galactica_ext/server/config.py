"""Server-side configuration, set in ``jupyter_server_config.py`` or on the command line.

Example::

    c.Galactica.model = "1.3b"
    c.Galactica.remote_url = "http://gpu-node:8000/v1"   # use vLLM instead of a local agent

or ``jupyter lab --Galactica.model=1.3b --Galactica.start=server``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable


class Galactica(LoggingConfigurable):
    """How the server extension finds or starts the model agent, and its default limits."""

    model = Unicode(
        "",
        config=True,
        help=(
            "Model to serve: a size (125m, 1.3b, 6.7b, 30b, 120b or mini..huge), a Hugging Face "
            "hub id or a local directory. Empty: $GALACTICA_MODEL, else facebook/galactica-125m."
        ),
    )
    dtype = Unicode("auto", config=True, help="Weights dtype: auto, float32, bfloat16 or float16.")
    device = Unicode("auto", config=True, help="Device: auto, cpu, cuda or cuda:N.")
    quantize = Enum(
        ["", "8bit", "4bit"],
        default_value="",
        config=True,
        help="Quantized loading through bitsandbytes (needs the quantize extra and a GPU).",
    )
    remote_url = Unicode(
        "",
        config=True,
        help=(
            "Base URL of an OpenAI-compatible completions server (vLLM, transformers serve, "
            "TGI), e.g. http://host:8000/v1. When set, no local agent is started."
        ),
    )
    remote_api_key = Unicode(
        "", config=True, help="Bearer token for remote_url, if the remote server needs one."
    )
    remotes = Dict(
        default_value={},
        config=True,
        help=(
            "Named OpenAI-compatible servers a user may switch to from the sidebar, e.g. "
            "{'gpu': {'url': 'http://gpu-node:8000/v1', 'api_key': '...'}} (or {'gpu': URL}). "
            "remote_url, when set, is the remote named 'default'. A browser chooses among "
            "these by name only: it can never name a URL."
        ),
    )
    start = Enum(
        ["server", "first-use", "manual"],
        default_value="first-use",
        config=True,
        help=(
            "When the local agent starts: with the Jupyter server, on the first task request, "
            "or only when the user loads a model from the sidebar."
        ),
    )
    reuse_agent = Bool(
        True,
        config=True,
        help="Reuse an agent already running for this user (found through its runtime file).",
    )
    agent_command = List(
        Unicode(),
        default_value=[],
        config=True,
        help=(
            "Command that starts the agent; empty means "
            "[sys.executable, '-m', 'galactica_ext.cli', 'agent']. Model options are appended."
        ),
    )
    max_restarts = Int(
        5, config=True, help="How many times a crashed agent is restarted before giving up."
    )
    restart_backoff = Float(
        1.0, config=True, help="Seconds before the first restart; doubled after each crash."
    )
    startup_timeout = Float(
        120.0,
        config=True,
        help="Seconds the agent may take to answer /health after it starts (not the model load).",
    )
    max_tokens = Int(256, config=True, help="Default number of new tokens for a task request.")
    max_tokens_limit = Int(
        1024, config=True, help="Largest max_tokens a browser request may ask for."
    )
    temperature = Float(0.0, config=True, help="Default sampling temperature (0 is greedy).")

    @validate("remotes")
    def _valid_remotes(self, proposal: Any) -> dict[str, Any]:
        for name, entry in proposal["value"].items():
            url = entry.get("url") if isinstance(entry, dict) else entry
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise TraitError(f"c.Galactica.remotes[{name!r}]: its url must be http(s)://")
        return proposal["value"]

    def remote_servers(self) -> dict[str, Remote]:
        """The remote servers the admin configured, by name (``default``: ``remote_url``)."""
        found: dict[str, Remote] = {}
        if self.remote_url.strip():
            found[DEFAULT_REMOTE] = Remote(
                DEFAULT_REMOTE, self.remote_url.strip(), self.remote_api_key or None
            )
        for name, entry in self.remotes.items():
            url, key = (
                (entry.get("url"), entry.get("api_key"))
                if isinstance(entry, dict)
                else (entry, None)
            )
            found[str(name)] = Remote(str(name), str(url).strip(), key or None)
        return found


#: the name of the remote configured by ``c.Galactica.remote_url``
DEFAULT_REMOTE = "default"


@dataclass(frozen=True)
class Remote:
    """A remote completions server the admin configured: its name, URL and bearer token."""

    name: str
    url: str
    api_key: str | None = None

    def __repr__(self) -> str:  # never the key
        return f"Remote({self.name!r}, {self.url!r})"
