"""The agent's runtime file: how the server extension and kernels find a running agent.

It lives in Jupyter's runtime directory, readable by the user alone (0600), and holds the
agent's URL, bearer token, pid and model. A file whose pid is dead is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

RUNTIME_NAME = "galactica-agent.json"


@dataclass
class AgentInfo:
    """Where a running agent listens and how to authenticate to it."""

    url: str
    token: str
    pid: int
    model: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def runtime_file() -> Path:
    """``$GALACTICA_RUNTIME_FILE``, or ``galactica-agent.json`` in Jupyter's runtime directory."""
    explicit = os.environ.get("GALACTICA_RUNTIME_FILE")
    if explicit:
        return Path(explicit)
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / RUNTIME_NAME


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def write_runtime(info: AgentInfo, path: Path | None = None) -> Path:
    """Write the runtime file atomically, mode 0600 from the start.

    The temporary file is made by :func:`tempfile.mkstemp` beside the target (a fresh random
    name, ``O_EXCL``, 0600: a planted file or symlink is never followed), then renamed over it.
    """
    path = path or runtime_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(info), f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_runtime(path: Path | None = None) -> AgentInfo | None:
    """The running agent's info, or None when there is no file or its process is gone."""
    info = read_runtime_file(path)
    return info if info is not None and pid_alive(info.pid) else None


def read_runtime_file(path: Path | None = None) -> AgentInfo | None:
    """The file's content whether or not its agent still runs (None if absent or unreadable)."""
    path = path or runtime_file()
    try:
        data = json.loads(path.read_text())
        return AgentInfo(**{k: data[k] for k in ("url", "token", "pid", "model")})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(path: Path | None = None) -> bool:
    """A runtime file is there but its agent has died."""
    info = read_runtime_file(path)
    return info is not None and not pid_alive(info.pid)


def remove_runtime(pid: int, path: Path | None = None) -> None:
    """Remove the runtime file if it is this agent's (never another agent's)."""
    path = path or runtime_file()
    info = read_runtime_file(path)
    if info is not None and info.pid == pid:
        path.unlink(missing_ok=True)
