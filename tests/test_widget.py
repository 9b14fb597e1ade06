"""The Assistant widget driven with Button.click(), against a real agent subprocess."""

from __future__ import annotations

import re
import time

import pytest
from agent_fixtures import *  # noqa: F403 - the fixtures
from agent_fixtures import FORCE_END_REF, RawServer, Server
from IPython.core.interactiveshell import InteractiveShell
from task_cases import wait_idle

from galactica_ext import tasks
from galactica_ext.client import STREAM_CUT, CompletionsClient, run_task
from galactica_ext.widget import Assistant


@pytest.fixture
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance()
    shell.rl_next_input = None
    return shell


def click(assistant: Assistant, task: str) -> None:
    assistant.buttons[task].click()
    assert assistant.wait(60), "the task did not finish"
    assert not any(b.disabled for b in assistant.buttons.values())
    assert assistant.stop_button.disabled


def test_panel_shows_the_model_status(agent_env: Server) -> None:
    panel = Assistant()  # finds the agent through its runtime file, like the magics
    assert ": ready" in panel.status.value and agent_env.model in panel.status.value
    assert [b.description for b in panel.buttons.values()] == [
        "Cite",
        "Equation",
        "Summarise",
        "Ask",
    ]
    assert panel.insert_button.disabled and panel.stop_button.disabled


def test_cite_button_lists_suggestions_and_inserts_them_below(
    agent_env: Server, ip: InteractiveShell
) -> None:
    panel = Assistant(shell=ip, options={"cite": {"n": 2, "max_tokens": 8}})
    panel.text.value = "Transformers rely on self-attention"
    click(panel, "cite")
    assert panel.error is None
    suggestions = panel.result["suggestions"]
    direct = run_task(agent_env.client(), "cite", panel.text.value, n=2, max_tokens=8)
    assert suggestions == direct["suggestions"]
    assert panel.output.value.startswith("<ol><li>") and "made up" in panel.output.value
    assert not panel.insert_button.disabled
    panel.insert_button.click()
    assert ip.rl_next_input == panel.insert_text
    assert panel.insert_text.startswith("1. ") and "scholar.google.com" in panel.insert_text


def test_equation_summarise_and_ask_stream_into_the_panel(
    agent_env: Server, ip: InteractiveShell
) -> None:
    options = {task: {"max_tokens": 6} for task in ("equation", "summarise", "ask")}
    panel = Assistant(shell=ip, options=options, extra={"ignore_eos": True}, interval=0)
    panel.text.value = "The energy of a photon"
    click(panel, "equation")
    latex = panel.result["latex"]
    assert panel.result["usage"]["completion_tokens"] <= 6
    if latex:
        assert panel.output.value.startswith("$$") and panel.insert_text == f"$$\n{latex}\n$$"
    click(panel, "summarise")
    assert panel.result["task"] == "summarise" and panel.insert_text == panel.result["text"]
    click(panel, "ask")
    assert panel.result["task"] == "ask"
    assert panel.insert_below() is bool(panel.insert_text)


def test_stop_cancels_the_generation_on_the_agent(agent_env: Server) -> None:
    client = agent_env.client()
    panel = Assistant(
        client, options={"ask": {"max_tokens": 2000}}, extra={"ignore_eos": True}, interval=0
    )
    panel.text.value = "Tell me a very long story"
    panel.buttons["ask"].click()
    assert panel.busy and all(b.disabled for b in panel.buttons.values())
    deadline = time.monotonic() + 60
    # this panel's own stream has begun (not "the shared agent runs something")
    while not re.fullmatch(r"<pre[^>]*>.+▌</pre>", panel.output.value, re.DOTALL):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not panel.stop_button.disabled
    panel.stop_button.click()
    assert panel.wait(30)
    assert panel.error == "stopped" and "cancelled" in panel.output.value
    assert panel.result is None and panel.insert_button.disabled
    assert wait_idle(client, timeout=5) == {"running": 0, "waiting": 0}


def test_forced_citation_stop_and_bad_input(agent_env: Server) -> None:
    panel = Assistant(
        agent_env.client(), options={"cite": {"n": 1, "top_p": 0.9, "seed": 3}}, extra=FORCE_END_REF
    )
    panel.text.value = "Attention is all you need"
    click(panel, "cite")
    assert panel.result["finish_reasons"] == ["stop"]
    assert tasks.END_REF not in panel.result["outputs"][0]
    panel.text.value = "   "
    click(panel, "summarise")
    assert panel.error == "type or paste some text first" and "text first" in panel.output.value


def test_no_agent_shows_the_sentence_in_the_panel(closed_url: str) -> None:
    panel = Assistant(CompletionsClient(closed_url))
    assert "No GALACTICA agent answers" in panel.status.value
    assert "GALACTICA_URL" in panel.status.value
    panel.text.value = "Anything"
    click(panel, "cite")
    assert panel.error and panel.error.startswith("No GALACTICA agent answers")
    assert "No GALACTICA agent answers" in panel.output.value


@pytest.mark.parametrize(
    ("mode", "says"), [("cut", STREAM_CUT), ("error", "the sampler failed on this sequence")]
)
def test_a_failed_stream_shows_its_error_not_a_result(
    raw_server: RawServer, mode: str, says: str
) -> None:
    raw_server.mode = mode
    panel = Assistant(CompletionsClient(raw_server.url))
    panel.text.value = "Anything"
    click(panel, "ask")
    assert panel.result is None and panel.error and says in panel.error
    assert says.split(":")[0] in panel.output.value and panel.insert_button.disabled
