"""One OpenMP runtime for torch and numba in the agent's process (galactica_ext/openmp.py):
the system's, loaded before torch, in a real process each time (this test process imported
torch long ago)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from agent_fixtures import Server

from galactica_ext import openmp

#: a fresh process: share (or not), then run a torch product and a numba kernel, then say
#: which runtimes are mapped
PROBE = """
import json
from galactica_ext import openmp
state = openmp.share_one_runtime()
import torch
from galactica_ext.engine import few_rows
linear = torch.nn.Linear(64, 300).requires_grad_(False)
assert few_rows.FewRows(linear.weight, linear.bias)(torch.randn(1, 64)) is not None
torch.randn(256, 256) @ torch.randn(256, 256)
print(json.dumps({"state": state, "runtimes": openmp.loaded_runtimes()}))
"""


def probe(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_and_numba_share_the_system_runtime() -> None:
    result = probe()
    if "no system runtime" in result["state"]:
        pytest.skip(result["state"])
    assert result["state"].startswith("one OpenMP runtime"), result
    assert len(result["runtimes"]) == 1, result


def test_bundled_keeps_torchs_own_runtime() -> None:
    result = probe(**{openmp.OPENMP_ENV: "bundled"})
    assert "bundled" in result["state"]
    assert any("torch" in path for path in result["runtimes"]), result


def test_too_late_once_torch_is_imported_and_a_bad_value_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch  # noqa: F401  (already imported by the suite; said for the reader)

    assert "torch was imported first" in openmp.share_one_runtime()
    monkeypatch.setenv(openmp.OPENMP_ENV, "gnu")
    with pytest.raises(ValueError, match=r"GALACTICA_OPENMP='gnu'.*shared, bundled"):
        openmp.share_one_runtime()


def test_the_agent_process_runs_one_runtime(agent_server: Server) -> None:
    """The agent's entry point shares before it imports torch, and says so in its log."""
    client = agent_server.client()
    # the few-row kernel and oneDNN both run
    client.complete(prompt="Proteins fold", max_tokens=4, temperature=0)
    runtimes = openmp.loaded_runtimes(agent_server.proc.pid)
    assert agent_server.log is not None
    # logged at start-up, before many other tests' requests: the whole log, not its tail
    said = next(line for line in agent_server.log.read_text().splitlines() if "OpenMP:" in line)
    if "no system runtime" in said:
        pytest.skip(said)
    assert "one OpenMP runtime" in said
    assert len(runtimes) == 1, runtimes
