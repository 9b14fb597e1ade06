"""OpenAI's error object, and pydantic's validation errors turned into one that names the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from .limits import MAX_MODEL_BYTES

M = TypeVar("M", bound=BaseModel)


class RequestError(ValueError):
    """A bad request: the message says what was wrong and what is accepted."""

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str | None = None
    ):
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), self.param, "invalid_request_error", self.code)


class ErrorDetail(BaseModel):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's (and vLLM's) error reply, also sent as an SSE event when a stream fails."""

    error: ErrorDetail


def error_body(
    message: str,
    param: str | None = None,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def fail(param: str, message: str) -> PydanticCustomError:
    """A validation error that names its field (``param``) and says what is accepted."""
    return PydanticCustomError("bad_field", message, {"param": param})


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_body(model: type[M], body: Any) -> M:
    """``body`` validated as ``model``; :class:`RequestError` naming the bad field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise request_error(err, model) from None


def request_error(err: ValidationError, model: type[BaseModel]) -> RequestError:
    """The first problem of a :class:`ValidationError`, as a RequestError naming its field."""
    first = err.errors(include_url=False)[0]
    ctx = first.get("ctx") or {}
    if first["type"] == "bad_field":
        return RequestError(first["msg"], ctx.get("param"))
    loc = [str(part) for part in first["loc"]]
    name = loc[0] if loc else None
    # a nested model's field is named with dots (structured_outputs.choice)
    field = model.model_fields.get(name) if name else None
    param = name
    if field is not None and len(loc) > 1 and loc[1] in _nested_fields(field.annotation):
        param = f"{name}.{loc[1]}"
    if first["type"] == "missing":
        message = f"{param} is required"
    elif first["type"] == "extra_forbidden":
        message = f"{'.'.join(loc)} is not supported by this server; leave it out"
    else:
        message = f"{param}={short(first.get('input'))} is not accepted: {first['msg']}"
    accepted = field.description if field is not None else None
    if accepted and first["type"] != "extra_forbidden":
        message += f" (accepted: {accepted})"
    return RequestError(message, param)


def _nested_fields(annotation: Any) -> set[str]:
    for arg in (*getattr(annotation, "__args__", ()), annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return set(arg.model_fields)
    return set()


def check_utf8(text: str, param: str) -> None:
    """A string with a lone surrogate can't be encoded (nor tokenised): reject it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise fail(
            param, f"{param} holds a lone surrogate (not valid Unicode): send UTF-8 text"
        ) from None


def check_model(value: str | None) -> str | None:
    """A model name: valid Unicode, at most MAX_MODEL_BYTES bytes."""
    if value is not None:
        check_utf8(value, "model")
        if len(value.encode("utf-8")) > MAX_MODEL_BYTES:
            raise fail("model", f"model is longer than {MAX_MODEL_BYTES} bytes")
    return value
