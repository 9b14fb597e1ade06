"""The agent's HTTP API (tornado): OpenAI completions, models, health, load and unload."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from .. import __version__
from ..engine import Delta, Finished, PromptTooLong, QueueFull
from ..specs import CONTEXT_LENGTH
from .host import ModelBusy, ModelHost
from .openai_api import (
    RequestError,
    chunk_body,
    completion_body,
    error_body,
    logprobs_body,
    new_id,
    parse_completion_request,
    usage,
)

log = logging.getLogger(__name__)


class BaseHandler(web.RequestHandler):
    """Bearer-token auth and JSON errors for every route."""

    def initialize(self, host: ModelHost, token: str) -> None:
        self.host = host
        self.token = token

    def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            self.set_header("WWW-Authenticate", "Bearer")
            self.fail(
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                "with the token from the agent's runtime file",
                kind="authentication_error",
            )
            raise web.Finish()

    def fail(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(message, param, kind, code))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        if "exc_info" in kwargs:
            message = f"{message}: {kwargs['exc_info'][1]}"
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(message, kind="server_error"))

    def json_body(self) -> Any:
        if not self.request.body:
            return {}
        try:
            return json.loads(self.request.body)
        except ValueError as err:
            raise RequestError(f"the body is not valid JSON ({err})") from None

    def not_ready(self) -> None:
        health = self.host.health()
        status = health["status"]
        if status == "loading":
            progress = health["progress"] or {}
            message = (
                f"model {health['model']} is loading ({progress.get('phase')} "
                f"{100 * progress.get('fraction', 0):.0f}%); try again shortly"
            )
        elif status == "failed":
            message = f"the model failed to load: {health['error']}; load one with POST /v1/load"
        else:
            message = "no model is loaded: load one with POST /v1/load"
        self.set_header("Retry-After", "2")
        self.fail(503, message, kind="service_unavailable", code="model_not_ready")


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.finish({**self.host.health(), "pid": os.getpid(), "version": __version__})


class ModelsHandler(BaseHandler):
    def get(self) -> None:
        data = []
        if self.host.model:
            data.append(
                {
                    "id": self.host.model,
                    "object": "model",
                    "owned_by": "galactica-ext",
                    "max_model_len": CONTEXT_LENGTH,
                    "status": self.host.status,
                }
            )
        self.finish({"object": "list", "data": data})


class LoadHandler(BaseHandler):
    def post(self) -> None:
        try:
            body = self.json_body()
            if not isinstance(body, dict):
                raise RequestError("the body must be a JSON object")
            options = {k: body[k] for k in ("dtype", "device", "quantize") if body.get(k)}
            from ..engine.loading import LoadOptions

            LoadOptions(**options).validate()
            self.host.load(body.get("model"), **options)
        except RequestError as err:
            return self.fail(err.status, str(err), err.param)
        except (ValueError, FileNotFoundError) as err:
            return self.fail(400, str(err), "model")
        except ModelBusy as err:
            return self.fail(409, str(err), "model", code="busy")
        self.set_status(202)
        self.finish(self.host.health())


class UnloadHandler(BaseHandler):
    def post(self) -> None:
        try:
            self.host.unload()
        except ModelBusy as err:
            return self.fail(409, str(err), code="busy")
        self.finish(self.host.health())


class CompletionsHandler(BaseHandler):
    """``POST /v1/completions``: streamed or whole; a closed connection cancels generation."""

    completions: list[Any]

    def on_connection_close(self) -> None:
        for completion in getattr(self, "completions", []):
            completion.cancel()

    async def post(self) -> None:
        self.completions = []
        try:
            request = parse_completion_request(self.json_body(), CONTEXT_LENGTH)
        except RequestError as err:
            return self.fail(err.status, str(err), err.param, code=err.code)
        engine = self.host.engine
        if engine is None or self.host.status != "ready":
            return self.not_ready()
        if request.model and not _same_model(request.model, self.host.model):
            return self.fail(
                404,
                f"model {request.model!r} is not served here: this agent serves "
                f"{self.host.model!r} (load another with POST /v1/load)",
                "model",
                code="model_not_found",
            )
        loop = asyncio.get_running_loop()
        try:
            for prompt in request.prompts:
                self.completions.append(
                    engine.submit(
                        prompt, request.params, n=request.n, num_beams=request.beams, loop=loop
                    )
                )
        except QueueFull as err:
            self._cancel_all()
            self.set_header("Retry-After", "1")
            return self.fail(503, str(err), kind="service_unavailable", code="queue_full")
        except PromptTooLong as err:
            self._cancel_all()
            return self.fail(400, str(err), "prompt", code="context_length_exceeded")
        except ValueError as err:
            self._cancel_all()
            return self.fail(400, str(err), "prompt")
        model = self.host.model or ""
        try:
            if request.stream:
                await self._stream(request, model, engine.tokenizer)
            else:
                await self._whole(request, model, engine.tokenizer)
        except StreamClosedError:
            self._cancel_all()
        except asyncio.CancelledError:
            self._cancel_all()
            raise
        except Exception as err:
            self._cancel_all()
            log.exception("completion failed")
            if not self._headers_written:
                self.fail(500, f"generation failed: {err}", kind="server_error")

    def _cancel_all(self) -> None:
        for completion in self.completions:
            completion.cancel()

    async def _events(self):
        """Events of every prompt's completion, merged, with choice indexes made global."""
        queue: asyncio.Queue = asyncio.Queue()
        n = self.completions[0].n if self.completions else 1

        async def pump(offset: int, completion: Any) -> None:
            try:
                async for event in completion:
                    await queue.put((offset, event))
            except Exception as err:
                await queue.put((offset, err))
            await queue.put((offset, None))

        tasks = [asyncio.create_task(pump(i * n, c)) for i, c in enumerate(self.completions)]
        remaining = len(tasks)
        try:
            while remaining:
                offset, event = await queue.get()
                if event is None:
                    remaining -= 1
                elif isinstance(event, Exception):
                    raise event
                else:
                    yield offset, event
        finally:
            for task in tasks:
                task.cancel()

    async def _whole(self, request: Any, model: str, tokenizer: Any) -> None:
        results = []
        async for offset, event in self._events():
            if isinstance(event, Finished):
                event.result.index += offset
                results.append(event.result)
        prompt_tokens = sum(c.results[0].prompt_tokens for c in self.completions if c.results[0])
        self.set_header("Content-Type", "application/json")
        self.finish(
            completion_body(
                new_id(),
                model,
                results,
                tokenizer,
                request.params.logprobs is not None,
                prompt_tokens,
            )
        )

    async def _stream(self, request: Any, model: str, tokenizer: Any) -> None:
        cid = new_id()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        want_logprobs = request.params.logprobs is not None
        results = []
        offsets: dict[int, int] = {}
        async for offset, event in self._events():
            if isinstance(event, Delta):
                if not event.text and not (want_logprobs and event.logprobs):
                    continue
                index = event.index + offset
                logprobs = None
                if want_logprobs:
                    logprobs = logprobs_body(event.logprobs, tokenizer, offsets.get(index, 0))
                offsets[index] = offsets.get(index, 0) + len(event.text)
                await self._send(chunk_body(cid, model, index, event.text, None, logprobs))
            elif isinstance(event, Finished):
                results.append(event.result)
                await self._send(
                    chunk_body(
                        cid, model, event.result.index + offset, "", event.result.finish_reason
                    )
                )
        if request.include_usage:
            prompt_tokens = sum(
                c.results[0].prompt_tokens for c in self.completions if c.results[0]
            )
            body = {
                "id": cid,
                "object": "text_completion",
                "model": model,
                "choices": [],
                "usage": usage(results, prompt_tokens),
            }
            await self._send(body)
        self.write("data: [DONE]\n\n")
        await self.flush()
        self.finish()

    async def _send(self, body: dict[str, Any]) -> None:
        self.write(f"data: {json.dumps(body)}\n\n")
        await self.flush()


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        self.fail(
            404,
            f"no route {self.request.method} {self.request.path}: this agent serves "
            "/health, /v1/models, /v1/completions, /v1/load and /v1/unload",
        )
        raise web.Finish()


def _same_model(asked: str, served: str | None) -> bool:
    if served is None:
        return False
    if asked == served or os.path.basename(served.rstrip("/")) == asked:
        return True
    try:
        from ..specs import resolve_model_spec

        return resolve_model_spec(asked) == served
    except (ValueError, FileNotFoundError):
        return False


def make_app(host: ModelHost, token: str) -> web.Application:
    """The tornado application of an agent serving ``host`` behind ``token``."""
    args = {"host": host, "token": token}
    return web.Application(
        [
            (r"/health", HealthHandler, args),
            (r"/v1/models", ModelsHandler, args),
            (r"/v1/completions", CompletionsHandler, args),
            (r"/v1/load", LoadHandler, args),
            (r"/v1/unload", UnloadHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
    )
