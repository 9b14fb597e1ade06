"""The model's and the tasks' routes under ``{base_url}/galactica/``, and what every route
shares (:class:`GalacticaHandler`, reading a browser's fields and options):

- ``GET  status``: the model's state, load progress and placement;
- ``POST model``: load or switch the model (or switch to a remote server), 202;
- ``DELETE model``: unload;
- ``POST tasks/<task>``: run a GALACTICA task, streamed as server-sent events
  (``token`` events, then one ``result`` or ``error``); closing the connection cancels it.

Every route needs Jupyter's authentication (and XSRF for writes: APIHandler checks it)
and is authorized against the ``galactica`` resource.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado.iostream import StreamClosedError

from .. import tasks
from ..client import CompletionError
from .backend import LOAD_FIELDS, ModelService, ModelUnavailable

#: the extension's name: the settings key of its app (see :mod:`.app`)
EXTENSION_NAME = "galactica_ext"
#: the authorization resource of every route
AUTH_RESOURCE = "galactica"
#: options a browser may set on a task, and their types
TASK_OPTIONS: dict[str, tuple[type, ...]] = {
    "max_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "n": (int,),
    "seed": (int,),
}


class GalacticaHandler(APIHandler):
    """Base class: the model service and JSON errors."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, service: ModelService | None = None) -> None:
        self._service = service

    @property
    def service(self) -> ModelService:
        """The model service, from the extension app (its settings key is its name)."""
        return self._service or self.settings[EXTENSION_NAME].service

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object; a 400 for anything else."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise tornado.web.HTTPError(400, f"the body is not valid JSON: {err}") from None
        except RecursionError:
            raise tornado.web.HTTPError(400, "the body is nested too deeply") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        return body

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message}))

    def fail_upstream(self, err: CompletionError | ModelUnavailable) -> None:
        """The model server's refusal (its 4xx status, e.g. 409 while loading), else 502."""
        status = getattr(err, "status", None)
        self.fail(status if status and status < 500 else 502, str(err))


class StatusHandler(GalacticaHandler):
    """``GET /galactica/status``."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(json.dumps(self.service.status()))


class ModelHandler(GalacticaHandler):
    """``POST /galactica/model`` loads (202), ``DELETE`` unloads."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        try:
            check_fields(body, LOAD_FIELDS)
            status = await self.service.load(body)
        except (ValueError, FileNotFoundError) as err:
            return self.fail(400, str(err))
        except (CompletionError, ModelUnavailable) as err:
            return self.fail_upstream(err)
        self.set_status(202)
        self.finish(json.dumps(status))

    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        try:
            status = await self.service.unload()
        except (CompletionError, ModelUnavailable) as err:
            return self.fail_upstream(err)
        self.finish(json.dumps(status))


def check_fields(body: dict[str, Any], accepted: Any, hint: str = "") -> None:
    """ValueError naming the fields of ``body`` outside ``accepted`` (then ``hint``)."""
    unknown = set(body) - set(accepted)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}{hint}")


def read_options(
    body: dict[str, Any], accepted: dict[str, tuple[type, ...]], config: Any
) -> dict[str, Any]:
    """The options of ``accepted`` (name -> types) that ``body`` gives, each of its type (a
    bool is no number) and ``max_tokens`` within the server's limit; ValueError otherwise."""
    options: dict[str, Any] = {}
    for key, types in accepted.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(
                f"{key} must be a number" if float in types else f"{key} must be an integer"
            )
        options[key] = value
    if options.get("max_tokens", 0) > config.max_tokens_limit:
        raise ValueError(
            f"max_tokens={options['max_tokens']} is over this server's limit of "
            f"{config.max_tokens_limit}"
        )
    return options


def build_request(task: str, body: dict[str, Any], config: Any) -> tasks.GenerationRequest:
    """The task's generation request from a browser's body; ValueError for bad input."""
    if task not in tasks.TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(tasks.TASKS)}")
    text = body.get("text")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    check_fields(body, {"text", *TASK_OPTIONS})
    options = read_options(body, TASK_OPTIONS, config)
    # each task takes the options that make sense for it; the others are dropped
    accepted = inspect.signature(getattr(tasks, task)).parameters
    if task == "cite" and "temperature" in options:
        options.pop("temperature")
    if task == "complete" and "temperature" not in options and config.temperature:
        options["temperature"] = config.temperature
    options = {k: v for k, v in options.items() if k in accepted}
    if task != "cite" and "max_tokens" in accepted and "max_tokens" not in options:
        options["max_tokens"] = min(config.max_tokens, tasks.CONTEXT_LENGTH - 1)
    return tasks.build(task, text, **options)


class TaskHandler(GalacticaHandler):
    """``POST /galactica/tasks/<task>``: a task streamed as server-sent events."""

    _closed = False
    _job: asyncio.Future[Any] | None = None

    def on_connection_close(self) -> None:
        """The browser went away (or aborted): cancel the generation."""
        self._closed = True
        if self._job is not None:
            self._job.cancel()

    @tornado.web.authenticated
    @authorized
    async def post(self, task: str) -> None:
        body = self.json_body()
        try:
            # tokenising and escaping a large text takes a while: never on the event loop
            request = await asyncio.to_thread(self.build, task, body)
        except (ValueError, TypeError) as err:
            return self.fail(400, str(err))
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self._job = asyncio.ensure_future(self._run(request))
        try:
            await self._job
        except (asyncio.CancelledError, StreamClosedError):
            self.log.info("galactica_ext: %s request cancelled by the browser", task)
            return
        if not self._closed:
            self.finish()

    def build(self, task: str, body: dict[str, Any]) -> tasks.GenerationRequest:
        """The generation request of a browser's body (a subclass builds its own)."""
        return build_request(task, body, self.service.config)

    async def _send(self, event: str, data: Any) -> None:
        if self._closed:
            raise StreamClosedError()
        self.write(f"event: {event}\ndata: {json.dumps(data)}\n\n")
        await self.flush()

    async def _run(self, request: tasks.GenerationRequest) -> None:
        try:
            async for status in self.service.wait_ready():
                await self._send("status", status)

            async def token(index: int, text: str) -> None:
                await self._send("token", {"text": text, "index": index})

            result = await self.service.run(request, token)
        except ModelUnavailable as err:
            await self._send("error", {"message": str(err)})
            return
        except CompletionError as err:
            await self._send("error", {"message": f"the model server failed: {err}"})
            return
        await self._send("result", result)


def routes() -> list[tuple[str, type[GalacticaHandler]]]:
    """The extension's routes (the app puts ``{base_url}`` in front)."""
    return [
        ("/galactica/status", StatusHandler),
        ("/galactica/model", ModelHandler),
        (r"/galactica/tasks/([a-z]+)", TaskHandler),
    ]
