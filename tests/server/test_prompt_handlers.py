"""The prompt library's routes through a real Jupyter server (pytest-jupyter).

The model is our real agent on the random-weight ``tiny`` checkpoint (``agent_server``),
used as the extension's OpenAI-compatible backend, as in ``test_handlers.py``. Its text is
meaningless, so the tests check what the routes do with it: the template list, the filled
prompt a user edits, a run streamed and parsed by the template's parser, RDKit's drawing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import Server
from server_helpers import events, post, streamed
from tornado.httpclient import HTTPClientError

from galactica_ext import prompts
from galactica_ext.prompts import chem

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config(
    agent_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "remote_url": agent_server.url + "/v1",
            "remote_api_key": agent_server.token,
            "reuse_agent": False,
        },
    }


async def refused(jp_fetch: Any, *path: str, body: Any = None, method: str = "POST") -> str:
    """The 400 message of a request that must be refused."""
    with pytest.raises(HTTPClientError) as info:
        if method == "POST":
            await post(jp_fetch, *path, body=body)
        else:
            await jp_fetch("galactica", *path, method=method)
    assert info.value.code == 400
    return json.loads(info.value.response.body)["message"]


async def test_lists_every_template(jp_fetch: Any) -> None:
    answer = json.loads((await jp_fetch("galactica", "prompts")).body)
    assert [t["name"] for t in answer["templates"]] == list(prompts.TEMPLATES)
    molecule = next(t for t in answer["templates"] if t["name"] == "molecule")
    assert molecule["result"] == "molecule"
    assert molecule["form"] == "[START_I_SMILES]{prefix}"
    assert answer["rdkit"] is chem.rdkit_available()
    assert "make things up" in answer["notice"]


async def test_fills_a_template_as_the_user_edits_it(jp_fetch: Any) -> None:
    body = {"values": {"title": "Attention Is All You Need", "authors": "Vaswani"}}
    answer = json.loads((await post(jp_fetch, "prompts", "paper", "fill", body=body)).body)
    assert answer["prompt"] == "Title: Attention Is All You Need\n\nAuthors: Vaswani\n\n"
    # an optional field left out drops its part of the form
    body = {"values": {"title": "Attention"}}
    answer = json.loads((await post(jp_fetch, "prompts", "paper", "fill", body=body)).body)
    assert answer["prompt"] == "Title: Attention"


async def test_bad_fills_say_what_is_accepted(jp_fetch: Any) -> None:
    message = await refused(jp_fetch, "prompts", "nope", "fill", body={"values": {}})
    assert "unknown prompt template 'nope'" in message and "iupac_name" in message
    message = await refused(
        jp_fetch, "prompts", "iupac_name", "fill", body={"values": {"smiles": "C C"}}
    )
    assert "SMILES string without spaces" in message
    message = await refused(jp_fetch, "prompts", "paper", "fill", body={"values": {"x": "1"}})
    assert "unknown field(s) x" in message
    message = await refused(jp_fetch, "prompts", "paper", "fill", body={"values": ["a"]})
    assert "values must be an object" in message


async def test_runs_an_edited_prompt_streamed(jp_fetch: Any) -> None:
    body = {"prompt": "# Multi-Head Attention\n\nIn brief,", "max_tokens": 8, "seed": 1}
    response = await post(jp_fetch, "prompts", "wiki", body=body)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    got = events(response.body)
    names = [name for name, _ in got]
    assert names[-1] == "result" and "error" not in names
    result = got[-1][1]
    assert result["template"] == "wiki"
    assert result["truncated"] is False
    # what streamed is what the document parser read (unescaped, stripped)
    assert result["text"] == prompts.unescape(streamed(got).get(0, "")).strip()


async def test_runs_a_molecule_from_its_fields(jp_fetch: Any) -> None:
    body = {"values": {"prefix": "CC"}, "max_tokens": 6}
    got = events((await post(jp_fetch, "prompts", "molecule", body=body)).body)
    result = got[-1][1]
    assert got[-1][0] == "result"
    assert result["template"] == "molecule"
    assert result["smiles"].startswith("CC")  # the result continues the user's prefix
    assert result["check"]["valid"] in (True, False, None)
    # an edited prompt keeps the start of the sequence it ends in
    body = {"prompt": "[START_I_SMILES]CC(=O)", "max_tokens": 6}
    got = events((await post(jp_fetch, "prompts", "molecule", body=body)).body)
    assert got[-1][0] == "result"
    assert got[-1][1]["smiles"].startswith("CC(=O)")


async def test_bad_runs_are_refused_before_any_generation(jp_fetch: Any) -> None:
    message = await refused(jp_fetch, "prompts", "wiki", body={"prompt": "x", "n": 2})
    assert "unknown field(s): n" in message
    message = await refused(jp_fetch, "prompts", "wiki", body={"max_tokens": 4})
    assert "give the edited prompt" in message
    message = await refused(
        jp_fetch, "prompts", "wiki", body={"prompt": "x", "values": {"topic": "y"}}
    )
    assert "one of them" in message
    message = await refused(jp_fetch, "prompts", "wiki", body={"prompt": "x", "top_p": "1"})
    assert "top_p must be a number" in message
    message = await refused(jp_fetch, "prompts", "wiki", body={"prompt": "x", "max_tokens": 10**6})
    assert "over this server's limit" in message
    message = await refused(jp_fetch, "prompts", "nope", body={"prompt": "x"})
    assert "unknown prompt template" in message


@pytest.mark.skipif(not chem.rdkit_available(), reason="RDKit (the chem extra) is missing")
async def test_draws_a_molecule_or_says_why_not(jp_fetch: Any) -> None:
    answer = json.loads(
        (await jp_fetch("galactica", "molecule", params={"smiles": "CC(=O)O"})).body
    )
    assert answer["check"]["valid"] is True
    assert answer["check"]["formula"] == "C2H4O2"
    assert answer["svg"].lstrip().startswith(("<?xml", "<svg"))
    answer = json.loads((await jp_fetch("galactica", "molecule", params={"smiles": "C1CC"})).body)
    assert answer["check"]["valid"] is False
    assert answer["svg"] is None
    assert "does not parse" in answer["check"]["error"]
    message = await refused(jp_fetch, "molecule", method="GET")
    assert "smiles must be a SMILES string" in message
