"""The settings every protocol has read one way everywhere (protocols/fields.py).

Each test sends the same value under each protocol's own name for the field and expects the same
answer: the same neutral value, or a 400 naming the field in the protocol's spelling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import pytest

from kiroproxy import chat, errors
from kiroproxy.protocols import anthropic, fields, gemini, openai, responses


@dataclass(frozen=True)
class Protocol:
    name: str
    parse: Callable[[Dict[str, Any]], chat.ChatRequest]
    error_body: Callable[[errors.ProxyError], Any]
    base: Callable[[], Dict[str, Any]]


PROTOCOLS = {
    "anthropic": Protocol("anthropic", anthropic.parse, anthropic.error_body,
                          lambda: {"model": "claude-sonnet-4-5", "max_tokens": 64,
                                   "messages": [{"role": "user", "content": "hi"}]}),
    "openai": Protocol("openai", openai.parse, openai.error_body,
                       lambda: {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    "responses": Protocol("responses", lambda body: responses.parse(body, None), responses.error_body,
                          lambda: {"model": "gpt-5", "input": "hi"}),
    "gemini": Protocol("gemini", lambda body: gemini.parse(body, model="gemini-2.5-pro", stream=False),
                       gemini.error_body,
                       lambda: {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}


def put(body: Dict[str, Any], path: str, value: Any) -> Dict[str, Any]:
    """`body` with `value` at a dotted path, creating the objects on the way."""
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
    return body


# field -> {protocol: (where the value goes, the param a 400 names)}
NAMES = {
    "temperature": {"anthropic": ("temperature", "temperature"), "openai": ("temperature", "temperature"),
                    "responses": ("temperature", "temperature"),
                    "gemini": ("generationConfig.temperature", "generationConfig")},
    "top_p": {"anthropic": ("top_p", "top_p"), "openai": ("top_p", "top_p"), "responses": ("top_p", "top_p"),
              "gemini": ("generationConfig.topP", "generationConfig")},
    "max_tokens": {"anthropic": ("max_tokens", "max_tokens"), "openai": ("max_tokens", "max_tokens"),
                   "responses": ("max_output_tokens", "max_output_tokens"),
                   "gemini": ("generationConfig.maxOutputTokens", "generationConfig")},
    "flag": {"anthropic": ("stream", "stream"), "openai": ("stream", "stream"), "responses": ("stream", "stream"),
             "gemini": ("generationConfig.thinkingConfig.includeThoughts", "generationConfig")},
    "stops": {"anthropic": ("stop_sequences", "stop_sequences"), "openai": ("stop", "stop"),
              "gemini": ("generationConfig.stopSequences", "generationConfig")},
    "effort": {"anthropic": ("output_config.effort", "output_config"),
               "openai": ("reasoning_effort", "reasoning_effort"),
               "responses": ("reasoning.effort", "reasoning"),
               "gemini": ("generationConfig.thinkingConfig.thinkingLevel", "generationConfig")},
}


def cases(field: str, values: list) -> list:
    return [pytest.param(name, value, id=f"{name}-{value!r}") for name in NAMES[field] for value in values]


def parse_with(protocol: str, field: str, value: Any, **extra: Any) -> chat.ChatRequest:
    proto = PROTOCOLS[protocol]
    where = NAMES[field][protocol][0]
    return proto.parse(put({**proto.base(), **extra}, where, value))


def assert_rejected(protocol: str, field: str, value: Any, **extra: Any) -> str:
    where, param = NAMES[field][protocol]
    with pytest.raises(errors.BadRequest) as info:
        parse_with(protocol, field, value, **extra)
    assert str(info.value).startswith(f"{where}: must be"), str(info.value)
    assert info.value.param == param
    assert PROTOCOLS[protocol].error_body(info.value)[0] == 400
    return str(info.value)[len(where):]


NOT_NUMBERS = [True, "hot", "0.5", [0.5], {"v": 1}, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("protocol, value", cases("temperature", NOT_NUMBERS))
def test_temperature_that_is_not_a_finite_number_is_a_400_everywhere(protocol, value):
    assert assert_rejected(protocol, "temperature", value) == ": must be a number"


@pytest.mark.parametrize("protocol, value", cases("temperature", [0, 0.5, 2, None]))
def test_a_numeric_temperature_is_read_the_same_everywhere(protocol, value):
    assert parse_with(protocol, "temperature", value).temperature == value


@pytest.mark.parametrize("protocol, value", cases("top_p", NOT_NUMBERS))
def test_top_p_that_is_not_a_finite_number_is_a_400_everywhere(protocol, value):
    assert assert_rejected(protocol, "top_p", value) == ": must be a number"


@pytest.mark.parametrize("protocol, value", cases("top_p", [0, 0.9, 1, None]))
def test_a_numeric_top_p_is_accepted_everywhere(protocol, value):
    assert parse_with(protocol, "top_p", value).messages


@pytest.mark.parametrize("protocol, value", cases("max_tokens", [0, -1, 1.5, True, "9", [9], math.inf]))
def test_max_tokens_that_is_not_a_positive_integer_is_a_400_everywhere(protocol, value):
    assert assert_rejected(protocol, "max_tokens", value) == ": must be a positive integer"


@pytest.mark.parametrize("protocol, value", cases("max_tokens", [1, 4096]))
def test_max_tokens_is_read_the_same_everywhere(protocol, value):
    assert parse_with(protocol, "max_tokens", value).max_tokens == value


@pytest.mark.parametrize("protocol, value", cases("flag", ["false", "true", 1, 0, [], {}]))
def test_a_boolean_that_is_not_true_or_false_is_a_400_everywhere(protocol, value):
    assert assert_rejected(protocol, "flag", value) == ": must be true or false"


@pytest.mark.parametrize("protocol, value", cases("flag", [True, False, None]))
def test_true_false_and_null_are_booleans_everywhere(protocol, value):
    req = parse_with(protocol, "flag", value)
    if protocol != "gemini":  # Gemini streams by path; its boolean here is includeThoughts
        assert req.stream is bool(value)


@pytest.mark.parametrize("protocol, value", cases("stops", [["END", 3], [None], 7, {"s": "x"}, True]))
def test_stop_sequences_that_are_not_strings_are_a_400_everywhere(protocol, value):
    assert assert_rejected(protocol, "stops", value).startswith(": must be ")


@pytest.mark.parametrize("protocol, value", cases("stops", [["END", "", "STOP"], [], None]))
def test_stop_sequences_are_read_the_same_everywhere(protocol, value):
    assert parse_with(protocol, "stops", value).stop == tuple(s for s in value or () if s)


def test_a_single_stop_string_is_accepted_only_where_the_api_defines_it():
    # OpenAI's `stop` is "string or array"; Anthropic's and Gemini's are arrays only.
    assert parse_with("openai", "stops", "END").stop == ("END",)
    for protocol in ("anthropic", "gemini"):
        assert assert_rejected(protocol, "stops", "END") == ": must be a list of strings"


THINKING_ON = {"anthropic": {"thinking": {"type": "adaptive"}}}


@pytest.mark.parametrize("protocol, value", cases("effort", [3, True, ["high"], {"level": "high"}]))
def test_an_effort_that_is_not_a_word_is_a_400_everywhere(protocol, value):
    extra = THINKING_ON.get(protocol, {})
    assert assert_rejected(protocol, "effort", value, **extra).startswith(": must be a string")


@pytest.mark.parametrize("protocol, value", cases("effort", ["HIGH", " low "]))
def test_an_effort_word_is_read_the_same_everywhere(protocol, value):
    req = parse_with(protocol, "effort", value, **THINKING_ON.get(protocol, {}))
    assert req.thinking == chat.ThinkingConfig("adaptive", None, value.strip().lower())


@pytest.mark.parametrize("reader, value, expected", [
    (fields.number, 3, 3.0), (fields.number, None, None), (fields.positive_int, 7, 7),
    (fields.flag, False, False), (fields.flag, None, None), (fields.word, "  ", None),
    (fields.stops, None, ()),
])
def test_readers_read_missing_values_as_none_and_good_ones_as_themselves(reader: Callable, value: Any,
                                                                         expected: Optional[Any]):
    assert reader(value, "f") == expected


def test_choice_names_the_options_and_the_param():
    assert fields.choice("b", "x.kind", ("a", "b"), "x") == "b"
    with pytest.raises(errors.BadRequest) as info:
        fields.choice("c", "x.kind", ("a", "b"), "x")
    assert (str(info.value), info.value.param) == ("x.kind: must be one of 'a', 'b'", "x")
