"""The science prompt library's routes under ``{base_url}/galactica/``.

- ``GET  prompts``: the templates (:func:`galactica_ext.prompts.catalog`) and whether
  molecules can be checked and drawn here (RDKit, the ``chem`` extra);
- ``POST prompts/<name>/fill``: ``{"values": {field: text}}`` -> ``{"prompt"}``, the filled
  template as the user sees and edits it before running;
- ``POST prompts/<name>``: run the template, streamed as server-sent events exactly as
  ``tasks/<task>`` is (``token`` events, then one ``result`` or ``error``); the body holds
  the edited ``prompt`` (or the field ``values``) and the options ``max_tokens``,
  ``temperature``, ``top_p``, ``seed``;
- ``GET  molecule?smiles=S``: RDKit's check of a SMILES and its 2D drawing as SVG (``svg``
  is null, and ``check.error`` says why, when it does not parse or RDKit is missing).

Bad input is a 400 whose message names what was wrong and what is accepted.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized

from .. import prompts
from ..notices import MAKES_THINGS_UP
from ..prompts import chem
from .handlers import TASK_OPTIONS, GalacticaHandler, TaskHandler, check_fields, read_options

__all__ = ["prompt_routes", "run_request"]

#: options a browser may set on a template run (a task's but ``n``), and their types
RUN_OPTIONS: dict[str, tuple[type, ...]] = {k: v for k, v in TASK_OPTIONS.items() if k != "n"}
#: the longest SMILES drawn (longer ones are not molecules a sidebar can show)
MAX_SMILES = 2000


def run_request(name: str, body: dict[str, Any], config: Any) -> prompts.GenerationRequest:
    """The generation request of template ``name`` from a browser's body; ValueError (or
    TypeError) saying what was wrong for bad input."""
    prompts.get(name)  # ValueError listing the templates
    hint = f"; a template run takes prompt (or values) and {', '.join(RUN_OPTIONS)}"
    check_fields(body, {"prompt", "values", *RUN_OPTIONS}, hint)
    prompt, values = body.get("prompt"), body.get("values")
    if (prompt is None) == (values is None):
        raise ValueError("give the edited prompt (a string) or the field values, one of them")
    options = read_options(body, RUN_OPTIONS, config)
    if prompt is not None:
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string: the filled template, edited")
        request = prompts.build(name, prompt=prompt, **options)
        request.suffix = continued(prompts.get(name), prompt)
        return request
    return prompts.build(name, **_values(values), **options)


def continued(template: prompts.Template, prompt: str) -> str:
    """The start of a sequence an edited prompt ends in, for a template whose result
    continues it (``molecule``: the SMILES after the last ``[START_I_SMILES]``), so the result
    holds the whole sequence as it does when the fields are given."""
    if not template.continues:
        return ""
    opening = template.form.split("{" + template.continues + "}", 1)[0]
    at = prompt.rfind(opening) if opening else -1
    return prompt[at + len(opening) :].strip() if at != -1 else ""


def _values(values: Any) -> dict[str, str]:
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise ValueError("values must be an object of field names to strings")
    return values


class PromptListHandler(GalacticaHandler):
    """``GET /galactica/prompts``."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(
            json.dumps(
                {
                    "templates": prompts.catalog(),
                    "rdkit": chem.rdkit_available(),
                    "notice": MAKES_THINGS_UP,
                }
            )
        )


class PromptFillHandler(GalacticaHandler):
    """``POST /galactica/prompts/<name>/fill``."""

    @tornado.web.authenticated
    @authorized
    def post(self, name: str) -> None:
        body = self.json_body()
        try:
            check_fields(body, {"values"}, "; send values")
            filled = prompts.fill(name, **_values(body.get("values", {})))
        except (ValueError, TypeError) as err:
            return self.fail(400, str(err))
        self.finish(json.dumps({"prompt": filled}))


class PromptRunHandler(TaskHandler):
    """``POST /galactica/prompts/<name>``: a template run, streamed as a task is."""

    def build(self, task: str, body: dict[str, Any]) -> prompts.GenerationRequest:
        return run_request(task, body, self.service.config)


class MoleculeHandler(GalacticaHandler):
    """``GET /galactica/molecule?smiles=S``."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        smiles = self.get_query_argument("smiles", "").strip()
        if not smiles or len(smiles) > MAX_SMILES:
            return self.fail(400, f"smiles must be a SMILES string of 1 to {MAX_SMILES} characters")
        check = await asyncio.to_thread(chem.check_smiles, smiles)
        svg = None
        if check.get("valid"):
            try:
                svg = await asyncio.to_thread(chem.smiles_svg, smiles)
            except ValueError as err:
                check = {**check, "error": str(err)}
        self.finish(json.dumps({"smiles": smiles, "check": check, "svg": svg}))


def prompt_routes() -> list[tuple[str, type[GalacticaHandler]]]:
    """The prompt library's routes (the app puts ``{base_url}`` in front)."""
    return [
        ("/galactica/prompts", PromptListHandler),
        (r"/galactica/prompts/([a-z_]+)/fill", PromptFillHandler),
        (r"/galactica/prompts/([a-z_]+)", PromptRunHandler),
        ("/galactica/molecule", MoleculeHandler),
    ]
