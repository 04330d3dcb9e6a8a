"""The one protocol interface (protocols/interface.py) as each of the four client protocols implements it.

The options each parse returns are read from the body once and carry all the render and encode
steps need; the Responses API keeps and finds its responses in the store it was built with.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List

import pytest

from kiroproxy import chat, errors
from kiroproxy.kiro.models import ModelInfo
from kiroproxy.protocols import anthropic, gemini, openai
from kiroproxy.protocols.interface import PLAIN, Call, ClientProtocol, CountingProtocol
from kiroproxy.protocols.responses_api import ResponsesAPI
from kiroproxy.store.responses import ResponseStore

HI = [{"role": "user", "content": "hi"}]
GEMINI_HI = [{"role": "user", "parts": [{"text": "hi"}]}]
INFO = ModelInfo("claude-sonnet-4.5", "Claude Sonnet 4.5", context_window=200_000, max_output=64_000)


def stream_of(*events: chat.Event) -> chat.Stream:
    return chat.Stream(iter(events), model="m", input_tokens=3)


def reply(text: str = "Hello") -> chat.Reply:
    return chat.collect(stream_of(chat.TextDelta(text), chat.Finish("end_turn")))


@pytest.fixture
def api(tmp_path) -> ResponsesAPI:
    ids = iter(f"resp_{n}" for n in range(1, 100))
    return ResponsesAPI(ResponseStore(tmp_path / "responses"), clock=lambda: 1767225600.5, new_id=lambda: next(ids))


def test_every_protocol_implements_the_interface(api):
    for proto in (anthropic.PROTOCOL, openai.PROTOCOL, gemini.PROTOCOL, api):
        assert isinstance(proto, ClientProtocol)
    assert {p.name for p in (anthropic.PROTOCOL, openai.PROTOCOL, gemini.PROTOCOL, api)} == {
        "anthropic", "openai", "gemini", "responses"}
    assert isinstance(anthropic.PROTOCOL, CountingProtocol) and isinstance(gemini.PROTOCOL, CountingProtocol)


def test_chat_options_are_read_from_the_body_once():
    body = {"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": {"include_usage": True},
            "functions": [{"name": "f"}], "response_format": {"type": "json_object"}}
    req, options = openai.PROTOCOL.parse(body, PLAIN)
    assert (req.stream, options) == (True, openai.ChatOptions(include_usage=True, legacy_functions=True,
                                                              json_mode=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.json_mode = False  # type: ignore[misc]
    _, plain = openai.PROTOCOL.parse({"model": "gpt-4o", "messages": HI}, PLAIN)
    assert plain == openai.ChatOptions()


def test_chat_render_and_stream_follow_the_options():
    call = chat.ToolUse("c1", "f", {"a": 1})
    answer = chat.Reply(model="m", parts=[call], finish="tool_use")
    req, options = openai.PROTOCOL.parse({"model": "gpt-4o", "messages": HI, "functions": [{"name": "f"}]}, PLAIN)
    message = openai.PROTOCOL.render(answer, req, options)["choices"][0]
    assert message["finish_reason"] == "function_call" and message["message"]["function_call"]["name"] == "f"
    _, usage = openai.PROTOCOL.parse({"model": "gpt-4o", "messages": HI, "stream_options": {"include_usage": True}},
                                     PLAIN)
    body = b"".join(openai.PROTOCOL.encode_stream(stream_of(chat.TextDelta("x"), chat.Finish("end_turn")), req,
                                                  usage))
    assert b'"usage":{"prompt_tokens"' in body and body.endswith(openai.DONE)


def test_gemini_options_come_from_the_call_and_the_body():
    body = {"contents": GEMINI_HI, "generationConfig": {"thinkingConfig": {"includeThoughts": True},
                                                        "responseMimeType": "application/json"}}
    req, options = gemini.PROTOCOL.parse(body, Call(model="gemini-2.5-pro", stream=True, sse=False))
    assert req.stream and options == gemini.GeminiOptions("gemini-2.5-pro", sse=False, json_mode=True,
                                                           include_thoughts=True)
    assert gemini.PROTOCOL.mimetype(options) == "application/json"
    array = b"".join(gemini.PROTOCOL.encode_stream(stream_of(chat.TextDelta("{}"), chat.Finish("end_turn")),
                                                   req, options))
    assert json.loads(array)[-1]["modelVersion"] == "gemini-2.5-pro"
    _, sse = gemini.PROTOCOL.parse({"contents": GEMINI_HI}, Call(model="gemini-2.5-pro"))
    assert gemini.PROTOCOL.mimetype(sse) == "text/event-stream" and not sse.include_thoughts


def test_counting_protocols_parse_and_answer_a_count():
    req = anthropic.PROTOCOL.parse_count({"model": "claude-sonnet-4-5", "messages": HI}, PLAIN)
    assert req.max_tokens is None and anthropic.PROTOCOL.count_body(12) == {"input_tokens": 12}
    req = gemini.PROTOCOL.parse_count({"generateContentRequest": {"contents": GEMINI_HI}},
                                      Call(model="gemini-2.5-pro"))
    assert req.model == "gemini-2.5-pro" and gemini.PROTOCOL.count_body(7)["totalTokens"] == 7


def test_responses_store_on_complete_and_follow_up(api):
    first, options = api.parse({"model": "gpt-5", "input": "Weather in Paris?", "instructions": "Be brief."}, PLAIN)
    assert (options.response_id, options.created, options.store) == ("resp_1", 1767225600, True)
    document = api.render(reply("Sunny."), first, options)
    assert document["id"] == "resp_1" and api.retrieve("resp_1") == document
    follow, again = api.parse({"input": "And tomorrow?", "previous_response_id": "resp_1"}, PLAIN)
    assert follow.model == "gpt-5" and again.previous is not None
    assert [m.role for m in follow.messages] == ["user", "assistant", "user"]
    body = b"".join(api.encode_stream(stream_of(chat.TextDelta("Rain."), chat.Finish("end_turn")), follow, again))
    assert b"response.completed" in body
    assert api.retrieve("resp_2")["previous_response_id"] == "resp_1"


def test_responses_not_stored_with_store_false_and_unknown_previous_is_404(api):
    req, options = api.parse({"model": "gpt-5", "input": "hi", "store": False}, PLAIN)
    api.render(reply(), req, options)
    with pytest.raises(errors.NotFound):
        api.retrieve(options.response_id)
    with pytest.raises(errors.NotFound) as info:
        api.parse({"model": "gpt-5", "input": "hi", "previous_response_id": "resp_nope"}, PLAIN)
    assert info.value.param == "previous_response_id" and api.error_body(info.value)[0] == 404


def entries(proto: ClientProtocol[Any], count: int) -> List[Dict[str, Any]]:
    return [proto.model_entry(INFO, f"model-{n}") for n in range(count)]


def test_model_entries_in_each_shape(api):
    assert anthropic.PROTOCOL.model_entry(INFO, "alias")["id"] == "alias"
    assert anthropic.PROTOCOL.model_entry(INFO, "alias")["max_input_tokens"] == 200_000
    assert gemini.PROTOCOL.model_entry(INFO, "alias")["name"] == "models/alias"
    assert gemini.PROTOCOL.model_entry(INFO, "alias")["outputTokenLimit"] == 64_000
    assert openai.PROTOCOL.model_entry(INFO, "alias") == api.model_entry(INFO, "alias")
    assert openai.PROTOCOL.model_page(entries(openai.PROTOCOL, 2), {})["object"] == "list"


def test_model_pages_follow_each_api():
    page = anthropic.PROTOCOL.model_page(entries(anthropic.PROTOCOL, 5), {"after_id": "model-1", "limit": "2"})
    assert ([e["id"] for e in page["data"]], page["has_more"]) == (["model-2", "model-3"], True)
    page = gemini.PROTOCOL.model_page(entries(gemini.PROTOCOL, 5), {"pageSize": "2", "pageToken": "2"})
    assert [e["baseModelId"] for e in page["models"]] == ["model-2", "model-3"] and page["nextPageToken"] == "4"
    with pytest.raises(errors.BadRequest) as info:
        gemini.PROTOCOL.model_page([], {"pageSize": "-1"})
    assert info.value.param == "pageSize"
