"""The citation library's routes through a real Jupyter server (pytest-jupyter).

The model is our real agent on the random-weight ``tiny`` checkpoint (``agent_server``), used
as the extension's OpenAI-compatible backend, as in ``tests/server/test_handlers.py``. The
notebook and its bibliographies are real files in the server's root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_fixtures import Server
from tornado.httpclient import HTTPClientError

pytest_plugins = ("pytest_jupyter.jupyter_server",)

DATA = Path(__file__).parent / "data"


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


@pytest.fixture
def project(jp_root_dir: Path) -> Path:
    """A notebook naming two bibliographies (one broken) in its metadata, and a file
    outside the root that a path tries to reach."""
    folder = jp_root_dir / "paper"
    folder.mkdir()
    shutil.copy(DATA / "broken.bib", folder / "broken.bib")
    shutil.copy(DATA / "mne-references.bib", folder / "mne.bib")
    (jp_root_dir.parent / "secret.bib").write_text("@book{secret, title={Secret}}\n")
    metadata = {"bibliography": ["broken.bib", "mne.bib", "../../secret.bib"]}
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "Sources [@GramfortEtAl2014; "
         "@nope], mail x@y.org, then {cite:p}`schrodinger1926` and [@GramfortEtAl2014]."},
    ]  # fmt: skip
    nb = {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    (folder / "nb.ipynb").write_text(json.dumps(nb))
    return jp_root_dir


async def post(jp_fetch: Any, *path: str, body: Any) -> dict[str, Any]:
    response = await jp_fetch("galactica", *path, method="POST", body=json.dumps(body))
    return json.loads(response.body)


async def refused(jp_fetch: Any, *path: str, body: Any = None, params: Any = None) -> tuple:
    with pytest.raises(HTTPClientError) as err:
        if body is None:
            await jp_fetch("galactica", *path, params=params)
        else:
            await jp_fetch("galactica", *path, method="POST", body=json.dumps(body))
    return err.value.code, json.loads(err.value.response.body)["message"]


async def test_library_lists_entries_and_problems(jp_fetch: Any, project: Path) -> None:
    response = await jp_fetch("galactica", "library", params={"path": "paper/nb.ipynb"})
    got = json.loads(response.body)
    assert got["origin"] == "notebook"
    assert got["sources"] == ["paper/broken.bib", "paper/mne.bib"]
    assert got["size"] == len(got["entries"]) == 3 + 233
    first = got["entries"][0]
    assert {k: first[k] for k in ("key", "title", "author", "year", "doi")} == {
        "key": "vaswani2017attention",
        "title": "Attention Is All You Need",
        "author": "Vaswani",
        "year": "2017",
        "doi": "10.48550/arXiv.1706.03762",
    }
    problems = [(p["source"], p["line"]) for p in got["problems"]]
    assert problems == [
        ("paper/broken.bib", 10),
        ("paper/broken.bib", 21),
        ("paper/broken.bib", 27),
        ("../../secret.bib", None),
    ]
    secret = next(p for p in got["problems"] if p["source"] == "../../secret.bib")
    assert secret["message"] == "outside the Jupyter root, not read"
    assert all(e["key"] != "secret" for e in got["entries"])


async def test_library_summary_has_no_entries(jp_fetch: Any, project: Path) -> None:
    params = {"path": "paper/nb.ipynb", "summary": "1"}
    got = json.loads((await jp_fetch("galactica", "library", params=params)).body)
    assert set(got) == {"origin", "sources", "size", "problems"}
    assert (got["origin"], got["sources"], got["size"]) == (
        "notebook", ["paper/broken.bib", "paper/mne.bib"], 3 + 233,
    )  # fmt: skip
    assert len(got["problems"]) == 4
    params["summary"] = "0"
    assert "entries" in json.loads((await jp_fetch("galactica", "library", params=params)).body)
    params["summary"] = "maybe"
    code, message = await refused(jp_fetch, "library", params=params)
    assert (code, message) == (400, "summary must be 1 (counts only) or 0 (every entry)")


async def test_user_paths_win(jp_fetch: Any, project: Path) -> None:
    params = {"path": "paper/nb.ipynb", "library": "broken.bib"}
    got = json.loads((await jp_fetch("galactica", "library", params=params)).body)
    assert (got["origin"], got["size"]) == ("user", 3)


async def test_a_missing_notebook_is_404(jp_fetch: Any, project: Path) -> None:
    code, message = await refused(jp_fetch, "library", params={"path": "paper/none.ipynb"})
    assert (code, message) == (404, "no notebook at paper/none.ipynb")


async def test_the_cited_keys(jp_fetch: Any, project: Path) -> None:
    body = {"path": "paper/nb.ipynb", "keys": "cited"}
    got = await post(jp_fetch, "library", "format", body={**body, "format": "markdown"})
    assert [r["key"] for r in got["references"]] == ["GramfortEtAl2014", "schrodinger1926"]
    assert got["missing"] == []
    got = await post(jp_fetch, "library", "export", body={**body, "filename": "cited.bib"})
    assert got["written"] == ["GramfortEtAl2014", "schrodinger1926"]
    assert (project / "paper" / "cited.bib").read_text().count("@") == 2


@pytest.mark.parametrize("path", ["../outside.ipynb", "/../../etc/passwd", "", ".hidden/nb.ipynb"])
async def test_notebook_paths_outside_the_root_are_400(
    jp_fetch: Any, project: Path, path: str
) -> None:
    code, message = await refused(jp_fetch, "library", params={"path": path})
    assert code == 400
    assert any(w in message for w in ("outside the Jupyter root", "hidden", "notebook's path"))


async def test_format_references_with_citeproc(jp_fetch: Any, project: Path) -> None:
    body = {
        "path": "paper/nb.ipynb",
        "keys": ["vaswani2017attention", "GramfortEtAl2013a", "nope"],
        "format": "html",
    }
    got = await post(jp_fetch, "library", "format", body=body)
    assert got["style"] == "harvard-cite-them-right"
    assert got["missing"] == ["nope"]
    texts = {r["key"]: r["text"] for r in got["references"]}
    assert list(texts) == ["GramfortEtAl2013a", "vaswani2017attention"]  # the style's order
    assert texts["vaswani2017attention"].startswith(
        "Vaswani, A., Shazeer, N. and Parmar, N. (2017)"
    )
    assert (
        "<i>Advances in Neural Information Processing Systems</i>" in texts["vaswani2017attention"]
    )
    code, message = await refused(
        jp_fetch, "library", "format", body={**body, "style": "no-such-style"}
    )
    assert code == 400 and "unknown style 'no-such-style'" in message


async def test_export_writes_beside_the_notebook_never_over_a_file(
    jp_fetch: Any, project: Path
) -> None:
    body = {"path": "paper/nb.ipynb", "keys": ["schrodinger1926", "GramfortEtAl2013a", "x"]}
    got = await post(jp_fetch, "library", "export", body=body)
    assert got == {
        "path": "paper/nb.bib",
        "written": ["schrodinger1926", "GramfortEtAl2013a"],
        "missing": ["x"],
    }
    written = (project / "paper" / "nb.bib").read_text()
    assert written.startswith("% exported by galactica-ext from nb.ipynb\n")
    assert "@book{schrodinger1926," in written and 'Schr{\\"o}dinger' in written
    code, message = await refused(jp_fetch, "library", "export", body=body)
    assert code == 409 and "paper/nb.bib exists" in message
    again = await post(
        jp_fetch, "library", "export", body={**body, "keys": ["vaswani2017attention"],
                                             "overwrite": True},
    )  # fmt: skip
    assert again["written"] == ["vaswani2017attention"]
    assert "schrodinger1926" not in (project / "paper" / "nb.bib").read_text()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("library/format", {"path": "paper/nb.ipynb", "keys": "k"}, "keys must be a list"),
        ("library/format", {"path": "paper/nb.ipynb", "keys": [], "x": 1}, "unknown field"),
        ("library/format", {"path": 3, "keys": []}, "notebook's path"),
        ("library/format", {"path": "paper/nb.ipynb", "keys": [], "format": "pdf"}, "format"),
        ("library/export", {"path": "paper/nb.ipynb", "keys": []}, "no keys"),
        ("library/export", {"path": "paper/nb.ipynb", "keys": ["x"]}, "none of the keys"),
        (
            "library/export",
            {"path": "paper/nb.ipynb", "keys": ["x"], "filename": "../up.bib"},
            "plain file name",
        ),
        (
            "library/export",
            {"path": "paper/nb.ipynb", "keys": ["x"], "overwrite": "yes"},
            "overwrite",
        ),
        ("cite", {"text": ""}, "empty"),
        ("cite", {"text": "x", "n": 99}, "n must be"),
        ("cite", {"text": "x", "grounded": "yes"}, "grounded"),
        ("cite", {"text": "x", "path": "../x.ipynb"}, "outside the Jupyter root"),
        ("cite", {"text": "x", "bogus": 1, "a": 2}, "unknown field(s): a, bogus"),
        ("library/export", {"path": "paper/nb.ipynb", "keys": [], "to": 1}, "field(s): to"),
    ],
)
async def test_bad_input_is_a_400(
    jp_fetch: Any, project: Path, path: str, body: Any, message: str
) -> None:
    code, got = await refused(jp_fetch, *path.split("/"), body=body)
    assert code == 400
    assert message in got


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "library?path=x"), ("POST", "library/format"), ("POST", "library/export"),
     ("POST", "cite")],
)  # fmt: skip
async def test_every_route_needs_credentials(
    jp_fetch: Any, jp_base_url: str, jp_http_port: int, method: str, path: str
) -> None:
    url = f"http://localhost:{jp_http_port}{jp_base_url}galactica/{path}"
    async with httpx.AsyncClient() as client:
        response = await client.request(method, url, content=None if method == "GET" else "{}")
    assert response.status_code in (401, 403)


async def test_free_cite_is_marked_unverified(jp_fetch: Any, project: Path) -> None:
    # random weights write no real title: every free suggestion is marked, none is a key
    got = await post(jp_fetch, "cite", body={"text": "Source localization", "grounded": False,
                                             "path": "paper/nb.ipynb"})  # fmt: skip
    assert got["grounded"] is False and got["library"]["size"] == 236
    assert got["suggestions"]
    for suggestion in got["suggestions"]:
        if suggestion["source"] == "library":  # a match, by chance: it is the entry
            assert suggestion["verified"] is True and suggestion["key"]
            continue
        assert suggestion["verified"] is False and suggestion["key"] is None
        assert suggestion["insert"].endswith("]{.unverified}")


def client_sends_choices() -> bool:
    from galactica_ext import tasks
    from galactica_ext.client import request_payload

    request = tasks.cite("x", n=1)
    request.choices = [" A, B"]
    return "structured_outputs" in request_payload(request)


@pytest.mark.skipif(
    not client_sends_choices(), reason="the client does not send choices yet (issue 10 item 2)"
)
async def test_grounded_cite_suggests_only_library_entries(jp_fetch: Any, project: Path) -> None:
    got = await post(
        jp_fetch, "cite", body={"text": "Source localization with MNE", "path": "paper/nb.ipynb",
                                "n": 3},
    )  # fmt: skip
    assert got["grounded"] is True and got["offered"] == 236
    keys = [s["key"] for s in got["suggestions"]]
    assert 1 <= len(keys) <= 3 and len(set(keys)) == len(keys)
    listing = json.loads(
        (await jp_fetch("galactica", "library", params={"path": "paper/nb.ipynb"})).body
    )
    entries = {e["key"]: e for e in listing["entries"]}
    for suggestion in got["suggestions"]:
        assert suggestion["source"] == "library" and suggestion["verified"] is True
        entry = entries[suggestion["key"]]
        assert (suggestion["title"], suggestion["author"], suggestion["year"]) == (
            entry["title"], entry["author"], entry["year"],
        )  # fmt: skip
        assert suggestion["insert"] == f"[@{suggestion['key']}]"


async def test_a_citation_being_typed(jp_fetch: Any, project: Path) -> None:
    # after "[@Gram" only keys starting with "Gram" are candidates; the text is cited from
    # before the bracket
    body = {"text": "Source imaging [@Gram", "path": "paper/nb.ipynb", "grounded": False}
    got = await post(jp_fetch, "cite", body=body)
    assert got["library"]["prefix"] == "Gram"
    assert all(s["key"] is None or s["key"].startswith("Gram") for s in got["suggestions"])
    none = await post(jp_fetch, "cite", body={**body, "text": "Imaging [@zzz", "grounded": True})
    assert (none["suggestions"], none["offered"], none["library"]["prefix"]) == ([], 0, "zzz")
    code, message = await refused(jp_fetch, "cite", body={"text": "[@Gram"})
    assert code == 400 and "the text before the citation is empty" in message


async def test_cite_without_a_library_is_free(jp_fetch: Any, project: Path) -> None:
    (project / "empty").mkdir()
    (project / "empty" / "nb.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    got = await post(jp_fetch, "cite", body={"text": "A study", "path": "empty/nb.ipynb"})
    assert got["grounded"] is False and got["library"]["origin"] == "none"
    assert all(s["verified"] is False for s in got["suggestions"])
