"""The server extension as a jupyter_server ``ExtensionApp``: ``c.Galactica.*`` from the
command line, the app found through its entry point and listed by ``jupyter server extension
list``, handlers reaching the service through the app.

Run: ``pytest tests/server``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from galactica_ext import _jupyter_server_extension_points
from galactica_ext.server import GalacticaServerExtension, ModelService
from galactica_ext.specs import resolve_model_spec

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_argv() -> list[str]:
    """The command line as ``jupyter lab --Galactica.model=1.3b --Galactica.start=manual``."""
    return ["--Galactica.model=1.3b", "--Galactica.start=manual", "--Galactica.max_tokens=77"]


@pytest.fixture
def jp_server_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {"reuse_agent": False},
    }


async def test_command_line_traits_configure_the_extension(
    jp_serverapp: Any, jp_fetch: Any
) -> None:
    apps = jp_serverapp.extension_manager.extension_apps["galactica_ext"]
    (app,) = apps
    assert isinstance(app, GalacticaServerExtension)
    assert app.galactica.model == "1.3b" and app.galactica.max_tokens == 77
    assert app.galactica.start == "manual" and app.galactica.reuse_agent is False
    assert isinstance(app.service, ModelService)
    status = json.loads((await jp_fetch("galactica", "status")).body)
    assert status["model"] == resolve_model_spec("1.3b") and status["state"] == "stopped"
    assert status["backend"] == "local" and status["remotes"] == []


def test_the_entry_point_is_the_extension_app() -> None:
    (point,) = _jupyter_server_extension_points()
    assert point == {"module": "galactica_ext.server", "app": GalacticaServerExtension}
    assert GalacticaServerExtension.name == "galactica_ext"


def test_jupyter_lists_the_extension_enabled_and_valid() -> None:
    jupyter = Path(sys.executable).with_name("jupyter")
    out = subprocess.run(
        [str(jupyter), "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # no colours
    lines = [line.strip() for line in text.splitlines()]
    assert any(line.startswith("galactica_ext") and "enabled" in line for line in lines), text
    assert any(line.startswith("galactica_ext") and line.endswith("OK") for line in lines), text


async def test_every_route_is_registered_through_the_apps_handler_list(
    jp_serverapp: Any, jp_fetch: Any
) -> None:
    (app,) = jp_serverapp.extension_manager.extension_apps["galactica_ext"]
    assert [handler[0] for handler in app.handlers] == [
        "/galactica/status",
        "/galactica/model",
        r"/galactica/tasks/([a-z]+)",
        "/galactica/prompts",
        r"/galactica/prompts/([a-z_]+)/fill",
        r"/galactica/prompts/([a-z_]+)",
        "/galactica/molecule",
        "/galactica/library",
        "/galactica/library/format",
        "/galactica/library/export",
        "/galactica/cite",
    ]
    # each answers under {base_url} (a 404 would be tornado's, without our JSON message)
    gets = {"status": 200, "prompts": 200, "molecule": 400, "library": 400}
    for path, code in gets.items():
        response = await jp_fetch("galactica", path, raise_error=False)
        assert response.code == code, (path, response.body)
        assert "message" in json.loads(response.body) or code == 200
    posts = ["model", "tasks/nosuch", "prompts/nosuch/fill", "prompts/nosuch"]
    posts += ["library/format", "library/export", "cite"]
    for path in posts:
        response = await jp_fetch(
            "galactica", *path.split("/"), method="POST", body="[]", raise_error=False
        )
        assert response.code == 400, (path, response.body)
        assert json.loads(response.body)["message"], path
