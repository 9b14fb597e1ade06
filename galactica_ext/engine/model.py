"""A loaded GALACTICA model with its tasks, in-process: the engine's public face (galai-like)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import tasks
from ..tasks import GenerationRequest
from .events import Delta
from .loading import LoadedModel, LoadOptions, ProgressCallback, load_model
from .sampling import SamplingParams
from .scheduler import Engine


def sampling_params(request: GenerationRequest) -> SamplingParams:
    """The decoding of a task request, for the engine."""
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        seed=request.seed,
        stop=list(request.stop),
        stop_token_ids=list(request.stop_token_ids),
        min_tokens=request.min_tokens,
        skip_special_tokens=False,
        truncate_prompt_tokens=request.truncate_prompt_tokens,
        num_beam_groups=request.num_beam_groups,
        diversity_penalty=request.diversity_penalty if request.num_beam_groups > 1 else 0.0,
        penalty_alpha=request.penalty_alpha,
        choices=tuple(request.choices) if request.choices else None,
    )


class GalacticaModel:
    """A loaded GALACTICA model and its engine, with the tasks: ``cite``, ``equation``,
    ``summarise``, ``complete``, ``ask``, ``work``, and free ``generate``."""

    def __init__(self, loaded: LoadedModel, **engine_options: Any) -> None:
        self.loaded = loaded
        self.engine = Engine(loaded, **engine_options)

    @classmethod
    def load(
        cls,
        spec: str | None = None,
        *,
        dtype: str = "auto",
        device: str = "auto",
        quantize: str | None = None,
        progress: ProgressCallback | None = None,
        **engine_options: Any,
    ) -> GalacticaModel:
        """Load a model (size alias, hub id or directory) and start its engine."""
        options = LoadOptions(dtype=dtype, device=device, quantize=quantize)  # type: ignore[arg-type]
        return cls(load_model(spec, options, progress), **engine_options)

    def run(
        self,
        request: GenerationRequest,
        on_text: Callable[[str], None] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Generate for a task request and parse the result; ``on_text`` sees the text of the
        first choice as it streams. ``extra`` goes to the decoding (e.g. a constraint)."""
        params = sampling_params(request)
        for name, value in extra.items():
            setattr(params, name, value)
        completion = self.engine.submit(
            request.prompt, params, n=request.n, num_beams=request.num_beams
        )
        try:
            for event in completion:
                if on_text and isinstance(event, Delta) and event.index == 0 and event.text:
                    on_text(event.text)
        except BaseException:
            completion.cancel()
            raise
        results = [r for r in completion.results if r is not None]
        parsed = tasks.parse(request, [r.text for r in results], any(r.truncated for r in results))
        if "suggestions" in parsed:
            parsed["suggestions"] = parsed["suggestions"][: request.n]
        parsed["finish_reason"] = results[0].finish_reason
        return parsed

    def _task(self, name: str, text: str, on_text=None, **options: Any) -> dict[str, Any]:
        return self.run(tasks.build(name, text, **options), on_text)

    def cite(self, text: str, **options: Any) -> dict[str, Any]:
        """Reference suggestions for the end of ``text``."""
        return self._task("cite", text, **options)

    def equation(self, text: str, **options: Any) -> dict[str, Any]:
        """LaTeX for a description."""
        return self._task("equation", text, **options)

    def summarise(self, text: str, **options: Any) -> dict[str, Any]:
        """A TL;DR of ``text``."""
        return self._task("summarise", text, **options)

    def complete(self, text: str, **options: Any) -> dict[str, Any]:
        """A continuation of ``text`` up to the end of the paragraph."""
        return self._task("complete", text, **options)

    def ask(self, question: str, **options: Any) -> dict[str, Any]:
        """An answer to a question."""
        return self._task("ask", question, **options)

    def work(self, question: str, **options: Any) -> dict[str, Any]:
        """Step-by-step working for a question."""
        return self._task("work", question, **options)

    def generate(self, text: str, max_tokens: int = 64, **sampling: Any) -> str:
        """Free continuation of ``text`` (no stops but the end of document)."""
        params = SamplingParams(max_tokens=max_tokens, **sampling)
        return self.engine.generate(text, params)[0].text

    def close(self) -> None:
        self.engine.close()
