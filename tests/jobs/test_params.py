"""The one serializer of generation parameters: strict JSON types (no coercion), OpenAI's param
paths, codes and wording, for every face."""

from __future__ import annotations

import pytest

from jobs.faces.common.errors import FaceError
from jobs.faces.common.params import GenerationParams, accepted, build_request

KNOWN = frozenset(
    {"temperature", "n", "seed", "stop", "store", "metadata", "logprobs", "user", "max_tokens", "tools",
     "response_format"}
)  # fmt: skip
HI = [{"role": "user", "content": "hi"}]


def refusal(params):
    with pytest.raises(FaceError) as caught:
        build_request(HI, params, known=KNOWN)
    return caught.value.message, caught.value.param, caught.value.code


TYPE = "Invalid type for '{}': expected {}, but got {} instead."
RANGE = "Invalid '{}': {} {} value. Expected a value {} {}, but got {} instead."
WRONG = [
    ({"temperature": "0.5"}, TYPE.format("temperature", "a decimal", "a string"), "temperature",
     "invalid_type"),
    ({"n": "2"}, TYPE.format("n", "an integer", "a string"), "n", "invalid_type"),
    ({"n": 2.0}, TYPE.format("n", "an integer", "a decimal"), "n", "invalid_type"),
    ({"store": "true"}, TYPE.format("store", "a boolean", "a string"), "store", "invalid_type"),
    ({"store": 1}, TYPE.format("store", "a boolean", "an integer"), "store", "invalid_type"),
    ({"temperature": 10**400}, TYPE.format("temperature", "a decimal", "an integer"), "temperature",
     "invalid_type"),
    ({"temperature": 2.5}, RANGE.format("temperature", "decimal", "above maximum", "<=", 2, 2.5),
     "temperature",
     "decimal_above_max_value"),
    ({"n": 0}, RANGE.format("n", "integer", "below minimum", ">=", 1, 0), "n", "integer_below_min_value"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "message", "param", "code"), WRONG)
def test_a_value_of_the_wrong_json_type_or_range_is_refused_in_openai_words(params, message, param, code):
    assert refusal(params) == (message, param, code)


def test_nested_errors_name_their_path():
    assert refusal({"metadata": {"k": 1}})[1:] == ("metadata.k", "invalid_type")
    assert refusal({"metadata": {"k": "v" * 513}})[1:] == ("metadata.k", "string_above_max_length")
    assert refusal({"stop": ["a", "b", "c", "d", "e"]})[1:] == ("stop", "array_above_max_length")
    assert refusal({"stop": ["a", 5]})[1:] == ("stop", "invalid_type")


def test_strings_are_kept_as_sent():
    request, options = build_request(HI, {"stop": ["\n\n", ""], "user": " me ", "metadata": {"k": " v "}},
                                      known=KNOWN)  # fmt: skip
    assert request.stop == ["\n\n"] and request.user == " me " and options.metadata == {"k": " v "}


@pytest.mark.parametrize("value", [[None, None], "json", {"schema": {}}])
def test_a_response_format_that_is_not_an_object_with_a_type_is_a_400(value):
    assert refusal({"response_format": value})[1:] == ("response_format", "invalid_type")


@pytest.mark.parametrize("value", [{"type": "function"}, [1], "tool"])
def test_tools_that_are_not_an_array_of_objects_are_a_400(value):
    assert refusal({"tools": value})[1:] == ("tools", "invalid_type")


def test_the_faces_that_name_fewer_parameters_name_only_ones_the_serializer_validates():
    """Chat, native and SEMOSS take their sets from the serializer (less what they leave out);
    legacy completions and Responses list theirs, and a name the serializer does not know would
    pass unchecked."""
    from jobs.faces.openai import legacy
    from jobs.faces.openai.responses import create

    assert accepted() > legacy.ENGINE_PARAMS | {"logprobs", "top_logprobs"}
    assert accepted(create.MAX_TOKENS_ALIASES) > create.GENERATION_PARAMS


def test_the_fields_are_built_once_for_every_check_with_the_same_aliases():
    context = {"max_tokens_aliases": ("max_tokens",)}
    first, second = GenerationParams(data={}, context=context), GenerationParams(data={}, context=context)
    assert first.fields is second.fields
    other = GenerationParams(data={}, context={"max_tokens_aliases": ("max_new_tokens",)})
    assert "max_new_tokens" in other.fields and "max_new_tokens" not in first.fields


def test_a_check_after_a_refused_one_keeps_nothing_of_it():
    assert refusal({"n": 0})[1] == "n"
    request, options = build_request(HI, {"temperature": 0.5, "store": True}, known=KNOWN)
    assert (request.n, request.temperature, options.store) == (1, 0.5, True)


def test_the_output_cap_is_read_when_it_changes(settings, spool_env):
    build_request(HI, {"max_tokens": 500}, known=KNOWN)
    spool_env(SPOOL_MAX_OUTPUT_TOKENS="100")
    assert refusal({"max_tokens": 500})[2] == "integer_above_max_value"
