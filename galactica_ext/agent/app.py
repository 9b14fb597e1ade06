"""The agent's HTTP API (tornado): OpenAI completions, models, health, load and unload."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
from typing import Any

from pydantic import BaseModel
from tornado import web
from tornado.iostream import StreamClosedError

from ..engine import Delta, Finished, PromptTooLong, QueueFull
from ..protocol import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_PROMPT_CHARS,
    CompletionChunk,
    CompletionRequest,
    ErrorBody,
    RequestError,
    error_body,
    parse_completion,
    parse_load,
)
from ..specs import CONTEXT_LENGTH
from .host import ModelBusy, ModelHost
from .openai_api import (
    chunk_body,
    completion_body,
    logprobs_body,
    new_id,
    param_named,
    to_sampling_params,
    usage,
)

log = logging.getLogger(__name__)
TOO_LARGE = (
    f"the request body is larger than {MAX_BODY_BYTES // 2**20} MiB: a prompt may be "
    f"{MAX_PROMPT_CHARS // 1024} KiB of text (GALACTICA reads {CONTEXT_LENGTH} tokens)"
)


@web.stream_request_body
class BaseHandler(web.RequestHandler):
    """Bearer-token auth, a bounded body and JSON errors for every route.

    The body is streamed in (``stream_request_body``) so that the token and the declared size
    are checked in :meth:`prepare`, before a byte of the body is read; a request refused there
    (401, 413) has its connection closed once the error is sent. Every other answer comes after
    the body, on a connection that stays open.
    """

    def initialize(self, host: ModelHost, token: str) -> None:
        self.host = host
        self.token = token
        self._body = bytearray()

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
        declared = self.request.headers.get("Content-Length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            self.too_large()
            raise web.Finish()

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        if len(self._body) + len(chunk) > MAX_BODY_BYTES:  # a chunked body without a length
            self._body.clear()
            self.too_large()  # the connection closes once this is sent: no more is read
            return
        self._body += chunk

    def too_large(self) -> None:
        self.fail(413, TOO_LARGE, code="body_too_large")

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
        """Every error is JSON; a RequestError says what was wrong, anything else is a bug in
        the agent (logged with its traceback, never sent)."""
        err = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if isinstance(err, RequestError):
            self.set_status(err.status)
            body = err.body()
        elif status_code < 500:
            body = error_body(f"{status_code} {self._reason}")
        else:
            body = error_body(
                "the agent failed on this request (a bug: its log has the details)",
                kind="server_error",
            )
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, (RequestError, StreamClosedError)):
            super().log_exception(typ, value, tb)

    def json_body(self) -> Any:
        """The body as JSON (``{}`` when empty); RequestError if it is not JSON we accept."""
        if not self._body:
            return {}
        try:
            body = json.loads(self._body)
        except RecursionError:
            body = None
        except ValueError as err:
            raise RequestError(f"the body is not valid JSON ({err})") from None
        if body is None or _depth(body) > MAX_JSON_DEPTH:
            raise RequestError(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
        return body

    def not_ready(self) -> None:
        health = self.host.health()
        if health.status == "loading":
            progress = health.progress
            phase, fraction = (progress.phase, progress.fraction) if progress else ("start", 0)
            message = (
                f"model {health.model} is loading ({phase} {100 * fraction:.0f}%); "
                "try again shortly"
            )
        elif health.status == "failed":
            message = f"the model failed to load: {health.error}; load one with POST /v1/load"
        else:
            message = "no model is loaded: load one with POST /v1/load"
        self.set_header("Retry-After", "2")
        self.fail(503, message, kind="service_unavailable", code="model_not_ready")

    def finish_health(self, status: int = 200) -> None:
        self.set_status(status)
        self.finish(self.host.health().model_dump())


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.finish_health()


class ModelsHandler(BaseHandler):
    def get(self) -> None:
        data = []
        model = self.host.serving or self.host.model  # the model loading, until one serves
        if model:
            data.append(
                {
                    "id": model,
                    "object": "model",
                    "owned_by": "galactica-ext",
                    "max_model_len": CONTEXT_LENGTH,
                    "status": self.host.status,
                }
            )
        self.finish({"object": "list", "data": data})


class LoadHandler(BaseHandler):
    """``POST /v1/load``: checks the spec, then loads in the background (202); the current
    model keeps serving until the new one is ready."""

    def post(self) -> None:
        request = parse_load(self.json_body())
        try:
            self.host.load(request.model, **request.options())
        except (ValueError, FileNotFoundError) as err:
            raise RequestError(str(err), "model") from None
        except ModelBusy as err:
            raise RequestError(str(err), "model", status=409, code="busy") from None
        self.finish_health(202)


class UnloadHandler(BaseHandler):
    """``POST /v1/unload``: cancels running work, frees the model (off the event loop)."""

    async def post(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.host.unload)
        except ModelBusy as err:
            raise RequestError(str(err), status=409, code="busy") from None
        self.finish_health()


class CompletionsHandler(BaseHandler):
    """``POST /v1/completions``: streamed or whole; a closed connection cancels generation."""

    completions: list[Any]
    closed = False

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.closed = True
        self._client_gone()

    async def post(self) -> None:
        self.completions = []
        request = parse_completion(self.json_body())
        params = to_sampling_params(request)
        engine = self.host.engine
        if engine is None:
            return self.not_ready()
        served = self.host.serving or ""
        if request.model and not _same_model(request.model, served):
            if self.host.status != "ready" and _same_model(request.model, self.host.model):
                return self.not_ready()  # the model asked for is loading, or failed to
            raise RequestError(
                f"model {request.model!r} is not served here: this agent serves "
                f"{served!r} (load another with POST /v1/load)",
                "model",
                status=404,
                code="model_not_found",
            )
        try:
            followed = await self._submit_or_follow(engine, request, params)
        except QueueFull as err:
            self._cancel_all()
            self.set_header("Retry-After", "1")
            return self.fail(503, str(err), kind="service_unavailable", code="queue_full")
        except PromptTooLong as err:
            self._cancel_all()
            raise RequestError(str(err), "prompt", code="context_length_exceeded") from None
        except ValueError as err:
            self._cancel_all()
            raise RequestError(str(err), param_named(str(err), "prompt")) from None
        except RuntimeError as err:
            self._cancel_all()
            if self.host.engine is engine:
                raise  # a bug, not an engine closed under us (unloaded or replaced)
            self.set_header("Retry-After", "2")
            return self.fail(503, str(err), kind="service_unavailable", code="model_not_ready")
        if followed is not engine:
            engine, served = followed, self.host.serving or ""
        try:
            if request.stream:
                await self._stream(request, served, engine)
            else:
                await self._whole(request, served, engine)
        except StreamClosedError:
            self._client_gone()
        except asyncio.CancelledError:
            self._cancel_all()
            raise

    async def _submit_or_follow(self, engine: Any, request: CompletionRequest, params: Any) -> Any:
        """Submit to ``engine``; if a model swap closed it meanwhile, once more to the model
        that replaced it. Returns the engine that took the request."""
        try:
            await self._submit(engine, request, params)
            return engine
        except RuntimeError:
            self._cancel_all()
            current = self.host.engine
            if current is engine or current is None:
                raise
            self.completions = []
            await self._submit(current, request, params)
            return current

    async def _submit(self, engine: Any, request: CompletionRequest, params: Any) -> None:
        """Queue every prompt; tokenising runs in a thread, never on the event loop."""
        loop = asyncio.get_running_loop()
        for prompt in request.prompts:
            if isinstance(prompt, str) and len(prompt) > MAX_PROMPT_CHARS:
                # only with truncate_prompt_tokens (protocol): its end holds the tokens kept
                prompt = prompt[-MAX_PROMPT_CHARS:]
            submit = functools.partial(
                engine.submit, prompt, params, n=request.n, num_beams=request.beams, loop=loop
            )
            self.completions.append(await loop.run_in_executor(None, submit))
            if self.closed:
                self._cancel_all()
                raise StreamClosedError()

    def _client_gone(self) -> None:
        """The client disconnected (seen by a failed write or by the close itself, whichever
        comes first): count the requests it cut off mid-generation, once, and cancel them."""
        running = getattr(self, "completions", [])
        if not getattr(self, "_gone_counted", False):
            self._gone_counted = True
            self.host.disconnected += sum(not c.done.is_set() for c in running)
        self._cancel_all()

    def _cancel_all(self) -> None:
        for completion in getattr(self, "completions", []):
            completion.cancel()

    def _failure(self, err: BaseException, engine: Any) -> str:
        if self.host.engine is not engine:
            return "the model was unloaded or replaced while generating; send the request again"
        return f"generation failed: {err}"

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

    def _prompt_tokens(self) -> int:
        return sum(c.results[0].prompt_tokens for c in self.completions if c.results[0])

    async def _whole(self, request: CompletionRequest, model: str, engine: Any) -> None:
        results = []
        try:
            async for offset, event in self._events():
                if isinstance(event, Finished):
                    event.result.index += offset
                    results.append(event.result)
        except Exception as err:  # a failed generation: the engine's message, as JSON
            self._cancel_all()
            log.warning("completion failed: %s", err)
            return self.fail(500, self._failure(err, engine), kind="server_error")
        body = completion_body(
            new_id(),
            model,
            results,
            engine.tokenizer,
            request.logprobs is not None,
            self._prompt_tokens(),
        )
        self.set_header("Content-Type", "application/json")
        self.finish(body.model_dump_json())

    async def _stream(self, request: CompletionRequest, model: str, engine: Any) -> None:
        """SSE chunks, then ``data: [DONE]``; a failure is an error event, then ``[DONE]``."""
        cid = new_id()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        want_logprobs = request.logprobs is not None
        tokenizer = engine.tokenizer
        results = []
        offsets: dict[int, int] = {}
        try:
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
                    index = event.result.index + offset
                    finish = event.result.finish_reason
                    await self._send(chunk_body(cid, model, index, "", finish))
        except StreamClosedError:
            raise
        except Exception as err:  # the engine failed this request: say so, then end the stream
            self._cancel_all()
            log.warning("streamed completion failed: %s", err)
            error = ErrorBody.model_validate(
                error_body(
                    self._failure(err, engine), kind="server_error", code="generation_failed"
                )
            )
            await self._send(error)
        else:
            if request.include_usage:
                chunk = CompletionChunk(
                    id=cid, model=model, choices=[], usage=usage(results, self._prompt_tokens())
                )
                await self._send(chunk)
        self.write("data: [DONE]\n\n")
        await self.flush()
        self.finish()

    async def _send(self, body: BaseModel) -> None:
        # a chunk carries usage only at the end (include_usage), as OpenAI's do
        exclude = {"usage"} if getattr(body, "usage", 0) is None else None
        self.write(f"data: {body.model_dump_json(exclude=exclude)}\n\n")
        await self.flush()


class NotFoundHandler(BaseHandler):
    """Any other path: a JSON 404 (answered after the body, so the connection stays open)."""

    def not_found(self, *args: Any) -> None:
        self.fail(
            404,
            f"no route {self.request.method} {self.request.path}: this agent serves "
            "/health, /v1/models, /v1/completions, /v1/load and /v1/unload",
        )

    get = post = put = delete = patch = options = head = not_found


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


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in item)
    return deepest


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
