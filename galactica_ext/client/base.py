"""The configuration both clients share: the server's URL and token, the model id, the
OpenAI library's client options, and the replies of ``/v1/load`` of servers that lack it."""

from __future__ import annotations

import json
from typing import Any

from .core import normalise_url
from .errors import CompletionError

#: a token for servers that need none (the OpenAI library sends one always)
NO_TOKEN = "no-token"


class ClientBase:
    """URL, auth and model id; the sync and async clients add the I/O."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        model: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        #: base URL, without ``/v1``
        self.url = normalise_url(url)
        self.token = token or None
        #: the model id sent with completions; None: the server's first model (``/v1/models``)
        self.model = model
        self._model_id: str | None = None
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        #: the timeout of the short requests (health, models, load)
        self.short = {"timeout": 30.0}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def openai_options(self) -> dict[str, Any]:
        """``OpenAI(...)``/``AsyncOpenAI(...)`` arguments: no retries (a 503 is the caller's
        to handle), our timeouts, the token or a placeholder."""
        return {
            "base_url": self.url + "/v1",
            "api_key": self.token or NO_TOKEN,
            "max_retries": 0,
            "timeout": self._timeout,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def endpoint(self, path: str) -> str:
        return self.url + path

    def cannot_load(self, status: int) -> CompletionError:
        return CompletionError(
            f"the server at {self.url} cannot load models on request: start it with the "
            "model instead",
            status,
        )

    @staticmethod
    def is_unknown_model(err: CompletionError) -> bool:
        return err.status == 404 or (err.param == "model" and err.status in (400, 404))

    def model_from(self, models: list[dict[str, Any]]) -> str | None:
        self._model_id = models[0].get("id") if models else None
        return self._model_id

    def retry_model(self, payload: dict[str, Any], auto: bool, err: CompletionError) -> bool:
        """After a model-not-found error for a model id we looked up: forget it (True: ask
        the server for its model again and retry)."""
        if not (auto and self.is_unknown_model(err)) or self.model or self._model_id is None:
            return False
        self._model_id = None
        payload.pop("model", None)
        return True


def models_of(data: Any) -> list[dict[str, Any]]:
    """The model objects of a ``/v1/models`` reply."""
    return (
        [m for m in data.get("data") or [] if isinstance(m, dict)] if isinstance(data, dict) else []
    )


def reply_json(path: str, lenient: bool, text: str) -> Any:
    """A reply's JSON; a reply that is not JSON is a CompletionError (None when ``lenient``:
    other servers answer ``/health`` with an empty body)."""
    try:
        return json.loads(text)
    except ValueError:
        if lenient:
            return None
        raise CompletionError(
            f"the server answered {path} with something other than JSON: {text[:200]!r}"
        ) from None
