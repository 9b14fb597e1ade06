"""Property tests of the builders' option checks and of the library's prompts: any option
values give either a request within the limits every server accepts, or a ValueError /
TypeError that names the option; any text in a template's field leaves the form's own tokens
after it intact (on the real tokenizer)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from galactica_ext import prompts, tasks
from galactica_ext.prompts import escape_sequences
from galactica_ext.specs import CONTEXT_LENGTH

numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
OPTIONS = {
    "cite": ["n", "max_tokens", "top_p", "seed"],
    "complete": ["max_tokens", "temperature", "top_p", "top_k", "seed"],
    "ask": ["max_tokens"],
    "wiki": ["max_tokens", "temperature", "top_p", "top_k", "seed"],
    "literature_review": ["max_tokens", "top_k", "penalty_alpha", "temperature"],
    "molecule": ["max_tokens", "top_p", "temperature"],
}


def check_request(request: tasks.GenerationRequest) -> None:
    """What every completions server accepts (and what our agent's limits allow)."""
    assert 1 <= request.max_tokens <= CONTEXT_LENGTH - 1
    assert request.truncate_prompt_tokens >= 1
    assert 0 <= request.min_tokens <= request.max_tokens
    assert 1 <= request.n <= 16 and 1 <= request.num_beams <= 16
    assert request.num_beams % request.num_beam_groups == 0
    assert request.temperature >= 0 and 0 < request.top_p <= 1 and request.top_k >= 0
    assert request.penalty_alpha >= 0 and request.diversity_penalty >= 0
    assert request.prompt == escape_sequences(request.prompt)  # escaped once, for good


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.sampled_from(sorted(OPTIONS)),
    st.data(),
)
def test_any_option_values_give_a_valid_request_or_a_clear_error(name: str, data: Any) -> None:
    keys = data.draw(st.lists(st.sampled_from(OPTIONS[name]), unique=True, max_size=4))
    options = {key: data.draw(numbers, label=key) for key in keys}
    text = "CC" if name == "molecule" else "Proteins fold"
    try:
        request = tasks.build(name, text, **options)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert any(key in message for key in options) or "must be" in message, message
        return
    check_request(request)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(1, 16), st.booleans(), st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_citation_search_settings_stay_within_limits(
    n: int, diverse: bool, top_p: float | None
) -> None:
    request = tasks.cite("Proteins fold", n=n, diverse=diverse, top_p=top_p)
    check_request(request)
    if top_p is not None:  # sampling: no beams
        assert request.num_beams == 1 and request.temperature > 0
    elif diverse and n > 1:
        assert request.num_beam_groups == n == request.num_beams
        assert request.diversity_penalty > 0


# ---- the library's forms on the real tokenizer ------------------------------------------

_FREE_TEXT = [t for t in prompts.templates() if t.fields[0].kind == "text" and t.task is None]
field_text = st.lists(
    st.one_of(
        st.sampled_from(["[START_DNA]", "[START_I_SMILES]CC", "[END_AMINO]", "</s>", "\n", " "]),
        st.text(alphabet=string.printable + "αβé²", max_size=8),
    ),
    min_size=1,
    max_size=8,
).map("".join)


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(_FREE_TEXT), field_text)
def test_a_fields_text_never_changes_the_forms_tokens_after_it(
    tok: Any, template: prompts.Template, text: str
) -> None:
    assume(text.strip())
    form = template.forms[-1] if len(template.forms) > 1 else template.form
    after = form.split("{" + template.fields[0].name + "}", 1)[1]
    assume("{" not in after)  # the form's own text follows the field
    request = prompts.build(template.name, text, new_doc=False)
    ids = tok.encode(request.prompt, add_special_tokens=False).ids
    again = tok.encode(escape_sequences(request.prompt), add_special_tokens=False).ids
    assert ids == again  # vLLM and our engine see the same tokens
    if after.strip():
        suffix = tok.encode(after, add_special_tokens=False).ids
        assert ids[-len(suffix) :] == suffix


@pytest.mark.parametrize("task", [*tasks.TASKS, "wiki", "question"])
@pytest.mark.parametrize("value", ["false", 1, None])
def test_yes_no_options_must_be_booleans(task: str, value: Any) -> None:
    with pytest.raises(TypeError, match="new_doc must be true or false"):
        tasks.build(task, "Proteins fold", new_doc=value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"temperature": 3e-39}, "too small|out of range"),  # issue 8.1's NaN sampler
        ({"temperature": float("nan")}, "finite"),
        ({"temperature": 2.5}, "out of range"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": 50_001}, "top_k"),
        ({"seed": 2**63}, "64-bit"),
        ({"seed": "7"}, "seed must be an integer"),
    ],
)
def test_sampling_limits_are_the_protocols(options: dict[str, Any], says: str) -> None:
    with pytest.raises((ValueError, TypeError), match=says):
        tasks.complete("x", **options)


def test_cite_refuses_a_zero_top_p() -> None:
    with pytest.raises(ValueError, match="top_p"):
        tasks.cite("x", top_p=0.0)
