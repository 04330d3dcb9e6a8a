"""Tests for protocols.openai: golden parse and SSE fixtures, render, error bodies, model names.

Goldens live in tests/golden/openai and change only with KIROPROXY_UPDATE_GOLDEN=1. Every SSE
golden is also replayed by `Replay`, an independent checker of the chunk rules of
client-protocols.md §1, validated against the openai SDK's own types, and read by the SDK itself
(offline, through a mock transport).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import pytest

from kiroproxy import chat, errors
from kiroproxy.kiro import errors as kiro_errors
from kiroproxy.kiro.models import Catalog
from kiroproxy.protocols import openai as proto
from tests.golden import Goldens, events_from_json, proxy_errors, to_json

pytest.importorskip("openai", reason="the official SDKs need Python 3.10 or newer")

import httpx2  # noqa: E402
import openai  # noqa: E402
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402

GOLDEN = Goldens("openai")
PARSE_CASES = ["plain_string", "system_developer", "content_parts", "tool_round_trip", "legacy_functions",
               "structured_output", "continue_shaped", "json_object"]
# case -> include_usage
ENCODE_CASES = {"text_only": False, "include_usage": True, "tool_calls": True, "tool_call_whole": False,
                "thinking_text": True, "heartbeat": False, "max_tokens": False, "stop_sequence": False,
                "error_mid_stream": True}
MODEL = "gpt-4o"
COMPLETION_ID = "chatcmpl-GoldenFixedId"
CREATED = 1764000000
INPUT_TOKENS = 321
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAfbLI3wAAAABJRU5ErkJggg=="


def body(text: str = "hi", **kw: Any) -> Dict[str, Any]:
    """A minimal Chat Completions body with `kw` merged in."""
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **kw}


def stream_of(items: List[Dict[str, Any]], **kw: Any) -> chat.Stream:
    return chat.Stream(events_from_json(items), model="claude-sonnet-4", input_tokens=INPUT_TOKENS, **kw)


def encode(case: str) -> bytes:
    return b"".join(proto.encode_stream(stream_of(GOLDEN.events(case)), model=MODEL,
                                        include_usage=ENCODE_CASES[case], completion_id=COMPLETION_ID,
                                        created=CREATED))


def frames(body: bytes) -> List[Any]:
    """Each SSE frame as its JSON data, the string "[DONE]", or ":" for a comment line."""
    assert body.endswith(b"\n\n")
    out: List[Any] = []
    for raw in body[:-2].decode("utf-8").split("\n\n"):
        assert "\n" not in raw, f"one line per frame, no event: lines: {raw!r}"
        if raw.startswith(":"):
            out.append(":")
        elif raw == "data: [DONE]":
            out.append("[DONE]")
        else:
            assert raw.startswith("data: "), raw
            out.append(json.loads(raw[len("data: "):]))
    return out


class Replay:
    """Rebuilds the completion from chunks, asserting §1's streaming rules on the way."""

    def __init__(self, body: bytes, include_usage: bool) -> None:
        self.frames = frames(body)
        chunks = [f for f in self.frames if isinstance(f, dict)]
        self.error = chunks[-1]["error"] if "error" in chunks[-1] else None
        if self.error is not None:
            chunks = chunks[:-1]
            assert "[DONE]" not in self.frames
        else:
            assert self.frames[-1] == "[DONE]" and self.frames.count("[DONE]") == 1
        self.usage: Optional[Dict[str, Any]] = None
        if include_usage and self.error is None:
            *chunks, last = chunks
            assert last["choices"] == [] and isinstance(last["usage"], dict)
            self.usage = last["usage"]
            self.check_head(last)
        self.message: Dict[str, Any] = {"role": "assistant", "content": None}
        self.calls: List[Dict[str, Any]] = []
        self.finish_reason: Optional[str] = None
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        for chunk in chunks:
            self.check_head(chunk)
            assert ("usage" in chunk) == include_usage and chunk.get("usage") is None
            (choice,) = chunk["choices"]
            assert choice["index"] == 0 and self.finish_reason is None, "nothing may follow the finish"
            self.finish_reason = choice["finish_reason"]
            if self.finish_reason is not None:
                assert choice["delta"] == {}
            self.apply(choice["delta"])
        if self.calls:
            self.message["tool_calls"] = self.calls
        self.head = chunks[0]

    def check_head(self, chunk: Dict[str, Any]) -> None:
        assert (chunk["id"], chunk["object"], chunk["created"], chunk["model"]) == (
            COMPLETION_ID, "chat.completion.chunk", CREATED, MODEL)

    def apply(self, delta: Dict[str, Any]) -> None:
        for key in ("content", "reasoning_content"):
            if delta.get(key):
                self.message[key] = (self.message.get(key) or "") + delta[key]
        for fragment in delta.get("tool_calls", []):
            index = fragment["index"]
            assert isinstance(index, int) and index <= len(self.calls), "indexes count 0, 1, 2 ..."
            if index == len(self.calls):
                assert isinstance(fragment["id"], str) and fragment["id"] and fragment["type"] == "function"
                assert fragment["function"]["arguments"] == "" and fragment["function"]["name"]
                self.calls.append({"id": fragment["id"], "type": "function",
                                   "function": {"name": fragment["function"]["name"], "arguments": ""}})
            else:
                assert set(fragment) == {"index", "function"} and set(fragment["function"]) == {"arguments"}
                self.calls[index]["function"]["arguments"] += fragment["function"]["arguments"]


# ----- parse goldens ---------------------------------------------------------------------------


def test_every_golden_file_belongs_to_a_case():
    assert GOLDEN.cases() == set(PARSE_CASES) | set(ENCODE_CASES)


@pytest.mark.parametrize("case", PARSE_CASES)
def test_parse_golden(case):
    request = GOLDEN.request(case)
    actual = to_json(proto.parse(request)).encode("utf-8")
    assert actual.decode("utf-8") == GOLDEN.stored(f"{case}.chat.json", actual).decode("utf-8")


@pytest.mark.parametrize("effort, expected", [
    ("high", chat.ThinkingConfig("adaptive", effort="high")), ("Low", chat.ThinkingConfig("adaptive", effort="low")),
    ("xhigh", chat.ThinkingConfig("adaptive", effort="xhigh")), ("minimal", None), ("none", None), (None, None)])
def test_reasoning_effort(effort, expected):
    assert proto.parse(body(reasoning_effort=effort)).thinking == expected


@pytest.mark.parametrize("choice, expected", [
    ("auto", chat.ToolChoice()), ("none", chat.ToolChoice("none")), ("required", chat.ToolChoice("required")),
    ({"type": "function", "function": {"name": "f"}}, chat.ToolChoice("tool", "f")),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}, chat.ToolChoice("required")),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, chat.ToolChoice())])
def test_tool_choice(choice, expected):
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert proto.parse(body(tool_choice=choice, tools=tools)).tool_choice == expected


@pytest.mark.parametrize("fields, expected", [
    ({"function_call": {"name": "f"}}, chat.ToolChoice("tool", "f")),
    ({"function_call": "none"}, chat.ToolChoice("none")),
    ({"function_call": "auto"}, chat.ToolChoice())])
def test_legacy_function_call_is_the_tool_choice(fields, expected):
    assert proto.parse(body(functions=[{"name": "f"}], **fields)).tool_choice == expected


@pytest.mark.parametrize("fields, expected", [
    ({"max_tokens": 100}, 100), ({"max_completion_tokens": 200}, 200),
    ({"max_tokens": 100, "max_completion_tokens": 200}, 200), ({"max_tokens": None}, None), ({}, None)])
def test_max_tokens_under_either_name(fields, expected):
    assert proto.parse(body(**fields)).max_tokens == expected


@pytest.mark.parametrize("stop, expected", [("END", ("END",)), (["a", "b"], ("a", "b")), ("", ()), (None, ())])
def test_stop(stop, expected):
    assert proto.parse(body(stop=stop)).stop == expected


def test_response_format_json_object_and_text():
    assert proto.parse(body(response_format={"type": "json_object"})).response_format == chat.ResponseFormat()
    assert proto.parse(body(response_format={"type": "text"})).response_format is None


def test_stream_flag_and_include_usage():
    assert proto.parse(body(stream=True)).stream is True and proto.parse(body()).stream is False
    assert proto.wants_usage(body(stream=True, stream_options={"include_usage": True})) is True
    for other in (body(stream=True), body(stream_options={"include_usage": False}), body(stream_options=None),
                  body(stream_options="yes"), [], None):
        assert proto.wants_usage(other) is False


def test_unknown_model_names_are_never_rejected_here():
    assert proto.parse(body(model=" llama-3-70b ")).model == "llama-3-70b"


def test_data_url_image_in_a_tool_answer_is_kept():
    request = proto.parse({"model": MODEL, "messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "shot", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]}]})
    assert request.messages[-1] == chat.Message("user", (chat.ToolResult("c1", (chat.Image("image/png", PNG),)),))


REJECTIONS = [
    ([], "the request body", None),
    (body(model=""), "model", "model"),
    (body(model=4), "model", "model"),
    (body(n=2), "n", "n"),
    (body(messages=[]), "messages", "messages"),
    (body(messages="hi"), "messages", "messages"),
    (body(messages=["hi"]), "messages.0", "messages"),
    (body(messages=[{"role": "robot", "content": "x"}]), "messages.0.role", "messages"),
    (body(messages=[{"role": "system", "content": "only system"}]), "messages", "messages"),
    (body(messages=[{"role": "user", "content": 5}]), "messages.0.content", "messages"),
    (body(messages=[{"role": "user", "content": [5]}]), "messages.0.content.0", "messages"),
    (body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages.0.content.0.image_url.url", "messages"),
    (body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]),
     "messages.0.content.0.image_url.url", "messages"),
    (body(messages=[{"role": "tool", "content": "x"}]), "messages.0.tool_call_id", "messages"),
    (body(messages=[{"role": "assistant", "tool_calls": {"id": "c"}}]), "messages.0.tool_calls", "messages"),
    (body(messages=[{"role": "assistant", "tool_calls": ["c"]}]), "messages.0.tool_calls.0", "messages"),
    (body(messages=[{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]),
     "messages.0.tool_calls.0", "messages"),
    (body(tools={"name": "f"}), "tools", "tools"),
    (body(tools=["f"]), "tools.0", "tools"),
    (body(tools=[{"type": "function"}]), "tools.0.function", "tools"),
    (body(tools=[{"type": "function", "function": {"description": "no name"}}]), "tools.0.function.name", "tools"),
    (body(functions=[{"description": "no name"}]), "functions.0.name", "functions"),
    (body(tool_choice="sometimes"), "tool_choice", "tool_choice"),
    (body(tool_choice={"type": "function", "function": {}}), "tool_choice", "tool_choice"),
    (body(max_tokens=0), "max_tokens", "max_tokens"),
    (body(max_tokens=True), "max_tokens", "max_tokens"),
    (body(max_completion_tokens="10"), "max_completion_tokens", "max_completion_tokens"),
    (body(stop=["END", 3]), "stop", "stop"),
    (body(stop=7), "stop", "stop"),
    (body(temperature="hot"), "temperature", "temperature"),
    (body(temperature=float("nan")), "temperature", "temperature"),
    (body(tool_choice=5), "tool_choice", "tool_choice"),
    (body(tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice", "tool_choice"),
    (body(tools=[{"type": "function", "function": {"name": "f"}}],
          tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice", "tool_choice"),
    (body(tools=[{"type": "custom", "custom": {"name": "c"}}],
          tool_choice={"type": "function", "function": {"name": "c"}}), "tool_choice", "tool_choice"),
    (body(functions=[{"name": "f"}], function_call={"name": "g"}), "function_call", "function_call"),
    (body(functions=[{"name": "f"}], function_call={}), "function_call", "function_call"),
    (body(stream="false"), "stream", "stream"),
    (body(stream=1), "stream", "stream"),
    (body(reasoning_effort=3), "reasoning_effort", "reasoning_effort"),
    (body(response_format={"type": "xml"}), "response_format.type", "response_format"),
    (body(response_format="json"), "response_format.type", "response_format"),
    (body(response_format={"type": "json_schema"}), "response_format.json_schema", "response_format"),
]


@pytest.mark.parametrize("request_body, field, param", REJECTIONS,
                         ids=[f"{i}-{r[1]}" for i, r in enumerate(REJECTIONS)])
def test_parse_rejects_naming_the_field(request_body, field, param):
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(request_body)
    assert str(info.value).startswith(field + (":" if param else " ")), str(info.value)
    assert info.value.param == param
    status, error, _ = proto.error_body(info.value)
    assert (status, error["error"]["type"], error["error"]["param"]) == (400, "invalid_request_error", param)


# ----- encode goldens --------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ENCODE_CASES))
def test_encode_golden(case):
    actual = encode(case)
    assert actual == GOLDEN.stored(f"{case}.sse", actual)
    Replay(actual, ENCODE_CASES[case])


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_stream_replays_to_the_non_streaming_render(case):
    replay = Replay(encode(case), ENCODE_CASES[case])
    rendered = proto.render(chat.collect(stream_of(GOLDEN.events(case))), model=MODEL,
                            completion_id=COMPLETION_ID, created=CREATED)
    (choice,) = rendered["choices"]
    expected = {k: v for k, v in choice["message"].items() if k != "refusal"}
    if expected["content"] == "":
        expected["content"] = None  # a stream without text deltas has no content at all
    assert replay.message == expected
    assert replay.finish_reason == choice["finish_reason"]
    assert replay.usage == (rendered["usage"] if ENCODE_CASES[case] else None)


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_every_chunk_validates_against_the_sdk_types(case):
    for frame in frames(encode(case)):
        if isinstance(frame, dict):
            assert ChatCompletionChunk.model_validate(frame).id == COMPLETION_ID


def test_tool_calls_are_indexed_from_zero_after_text():
    replay = Replay(encode("tool_calls"), include_usage=True)
    assert replay.message["content"] == "Checking both."
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in replay.calls] == [
        ("tooluse_A", "get_weather", {"city": "Paris"}), ("tooluse_B", "grep", {"pattern": 'fo"o'})]
    assert replay.finish_reason == "tool_calls"


def test_a_call_without_fragments_still_gets_json_arguments():
    replay = Replay(encode("tool_call_whole"), include_usage=False)
    assert [c["function"]["arguments"] for c in replay.calls] == ["{}", '{"city": "Zürich"}']


def test_include_usage_sends_the_usage_chunk_last():
    replay = Replay(encode("include_usage"), include_usage=True)
    assert replay.usage == {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43,
                            "prompt_tokens_details": {"cached_tokens": 30},
                            "completion_tokens_details": {"reasoning_tokens": 0}}
    assert frames(encode("include_usage"))[-2]["choices"] == []


def test_without_include_usage_there_is_no_usage_at_all():
    body = encode("text_only")
    assert b'"usage"' not in body and b'"choices":[]' not in body


def test_thinking_streams_as_reasoning_content():
    replay = Replay(encode("thinking_text"), include_usage=True)
    assert (replay.message["reasoning_content"], replay.message["content"]) == ("Let me think.", "4")
    assert replay.usage["completion_tokens_details"] == {"reasoning_tokens": 5}


def test_heartbeats_are_comment_lines():
    assert [f if isinstance(f, str) else "chunk" for f in frames(encode("heartbeat"))] == [
        "chunk", ":", "chunk", ":", "chunk", "chunk", "[DONE]"]


@pytest.mark.parametrize("case, reason", [("max_tokens", "length"), ("stop_sequence", "stop")])
def test_finish_reasons_in_the_stream(case, reason):
    assert Replay(encode(case), include_usage=False).finish_reason == reason


def test_stream_error_is_an_error_frame_and_the_end():
    closed = []
    stream = stream_of(GOLDEN.events("error_mid_stream"), on_close=lambda: closed.append(True))
    out = frames(b"".join(proto.encode_stream(stream, model=MODEL, completion_id=COMPLETION_ID, created=CREATED)))
    assert out[-1] == {"error": {"message": "the upstream stream ended early", "type": "server_error",
                                 "param": None, "code": None}}
    assert out[-2]["choices"][0]["delta"] == {"content": "Partial"} and "[DONE]" not in out
    assert closed == [True]


def test_the_role_chunk_goes_out_with_the_first_text_and_the_end_in_one_write():
    items = [{"type": "TextDelta", "text": "a"}, {"type": "TextDelta", "text": "b"},
             {"type": "Finish", "reason": "end_turn"}]
    writes = list(proto.encode_stream(stream_of(items), model=MODEL, include_usage=True))
    assert len(writes) == 3
    assert [f["choices"][0]["delta"] for f in frames(writes[0])] == [{"role": "assistant", "content": ""},
                                                                      {"content": "a"}]
    assert frames(writes[2])[-1] == "[DONE]" and frames(writes[2])[-2]["usage"] is not None


def test_a_stream_without_finish_reports_an_error():
    out = frames(b"".join(proto.encode_stream(stream_of([{"type": "TextDelta", "text": "x"}]), model=MODEL)))
    assert out[-1]["error"]["type"] == "server_error" and "[DONE]" not in out


@pytest.mark.parametrize("chunks_read", [1, 2, 3])
def test_a_client_that_stops_reading_closes_the_stream(chunks_read):
    closed = []
    stream = stream_of(GOLDEN.events("text_only"), on_close=lambda: closed.append(True))
    out = proto.encode_stream(stream, model=MODEL)
    for _ in range(chunks_read):
        next(out)
    out.close()
    assert closed == [True] and stream.closed


def test_live_defaults_for_id_and_created():
    first = frames(next(iter(proto.encode_stream(stream_of(GOLDEN.events("text_only")), model=MODEL))))[0]
    assert first["id"].startswith("chatcmpl-") and len(first["id"]) > len("chatcmpl-") + 8
    assert first["created"] > 1700000000


# ----- the official SDK reads what we write -----------------------------------------------------


def sdk_client(answer: bytes, status: int = 200) -> Tuple[openai.OpenAI, httpx2.Client]:
    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": "text/event-stream"}, content=answer)

    http = httpx2.Client(transport=httpx2.MockTransport(respond))
    return openai.OpenAI(api_key="sk-test", base_url="http://sdk.invalid/v1", max_retries=0, http_client=http), http


def test_sdk_stream_helper_accumulates_tool_calls():
    client, http = sdk_client(encode("tool_calls"))
    with http, client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                              stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking both."
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("tooluse_A", "get_weather", '{"city": "Paris"}'), ("tooluse_B", "grep", '{"pattern": "fo\\"o"}')]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (INPUT_TOKENS, 30)


def test_sdk_raises_on_the_stream_error():
    client, http = sdk_client(encode("error_mid_stream"))
    with http, pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(model=MODEL, stream=True,
                                                messages=[{"role": "user", "content": "hi"}]):
            pass
    assert info.value.message == "the upstream stream ended early"
    assert info.value.body["type"] == "server_error"


# ----- render ----------------------------------------------------------------------------------


def test_render_a_full_reply():
    reply = chat.Reply(model="ignored", finish="tool_use",
                       usage=chat.Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3, reasoning_tokens=2),
                       parts=[chat.Thinking("hmm", "sig-1"), chat.Text("Hi"),
                              chat.ToolUse("call_1", "Read", {"file_path": "/ü"})])
    document = proto.render(reply, model="gpt-4o", completion_id="chatcmpl-X", created=1764000000)
    assert document == {
        "id": "chatcmpl-X", "object": "chat.completion", "created": 1764000000, "model": "gpt-4o",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hi", "refusal": None, "reasoning_content": "hmm",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "Read", "arguments": '{"file_path": "/ü"}'}}]}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                  "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}}
    assert ChatCompletion.model_validate(document).choices[0].message.tool_calls[0].function.name == "Read"


def test_content_is_null_when_there_are_only_tool_calls():
    reply = chat.Reply(model=MODEL, finish="tool_use", parts=[chat.ToolUse("call_1", "f", {})])
    message = proto.render(reply, model=MODEL)["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize("finish, expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("something_new", "stop")])
def test_render_finish_reasons(finish, expected):
    document = proto.render(chat.Reply(model=MODEL, finish=finish, parts=[chat.Text("x")]), model=MODEL)
    assert document["choices"][0]["finish_reason"] == expected
    assert document["choices"][0]["message"]["content"] == "x" and "tool_calls" not in document["choices"][0]["message"]
    assert document["id"].startswith("chatcmpl-") and isinstance(document["created"], int)
    assert document["usage"]["total_tokens"] == 0


# ----- errors ----------------------------------------------------------------------------------

ERROR_TABLE = {
    errors.ProxyError: (500, "server_error", None),
    errors.BadRequest: (400, "invalid_request_error", None),
    errors.Unauthorized: (401, "authentication_error", None),
    errors.Forbidden: (403, "permission_error", None),
    errors.NotFound: (404, "invalid_request_error", None),
    errors.ModelNotFound: (404, "invalid_request_error", "model_not_found"),
    errors.TooLarge: (400, "invalid_request_error", "context_length_exceeded"),
    errors.RateLimited: (429, "rate_limit_error", "rate_limit_exceeded"),
    errors.QuotaExhausted: (429, "insufficient_quota", "insufficient_quota"),
    errors.Overloaded: (503, "server_error", None),
    errors.Unavailable: (503, "server_error", None),
    errors.ShuttingDown: (503, "server_error", None),
    errors.UpstreamError: (502, "server_error", None),
    errors.UpstreamTimeout: (504, "server_error", None),
    errors.Truncated: (502, "server_error", None),
}


def test_error_table_covers_every_proxy_error():
    assert proxy_errors() == set(ERROR_TABLE)


@pytest.mark.parametrize("cls", list(ERROR_TABLE), ids=lambda cls: cls.__name__)
def test_error_body(cls):
    status, document, headers = proto.error_body(cls("it went wrong"))
    assert (status, document["error"]["type"], document["error"]["code"]) == ERROR_TABLE[cls]
    assert document == {"error": {"message": "it went wrong", "type": ERROR_TABLE[cls][1], "param": None,
                                  "code": ERROR_TABLE[cls][2]}}
    assert headers == ({"x-should-retry": "false"} if cls is errors.QuotaExhausted else {})


def test_error_keeps_param_and_code():
    error = errors.Unauthorized("invalid API key", code="invalid_api_key")
    assert proto.error_body(error)[:2] == (401, {"error": {
        "message": "invalid API key", "type": "authentication_error", "param": None, "code": "invalid_api_key"}})
    with pytest.raises(errors.ModelNotFound) as info:
        Catalog(rules=[proto.model_rule]).resolve("llama-3-70b")
    status, document, _ = proto.error_body(info.value)
    assert (status, document["error"]["param"], document["error"]["code"]) == (404, "model", "model_not_found")
    assert "claude-sonnet-4.5" in document["error"]["message"]


@pytest.mark.parametrize("retry_after, header", [(7.4, "8"), (0.2, "1"), (30, "30")])
def test_rate_limit_sends_retry_after(retry_after, header):
    status, _, headers = proto.error_body(errors.RateLimited("slow down", retry_after=retry_after))
    assert (status, headers) == (429, {"retry-after": header})


def test_context_overflow_uses_openais_wording():
    status, document, _ = proto.error_body(errors.TooLarge("Input is too long", tokens=250123, limit=200000))
    assert (status, document["error"]["code"]) == (400, "context_length_exceeded")
    assert document["error"]["message"].startswith("This model's maximum context length is 200000 tokens. "
                                                   "However, your messages resulted in 250123 tokens.")


@pytest.mark.parametrize("status, upstream_body, retry_after, expected", [
    (429, '{"message": "Rate limit exceeded", "reason": "USER_REQUEST_RATE_EXCEEDED"}', "12",
     (429, "rate_limit_exceeded", {"retry-after": "12"})),
    (402, '{"message": "limit", "reason": "MONTHLY_REQUEST_COUNT"}', None,
     (429, "insufficient_quota", {"x-should-retry": "false"})),
    (400, '{"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}', None,
     (400, "context_length_exceeded", {})),
    (400, '{"message": "Invalid model", "reason": "INVALID_MODEL_ID"}', None, (400, "model_not_found", {})),
    (500, "", None, (503, None, {})),
    # The proxy's own account failed, not the client's key: a retryable 503, never a 401.
    (403, '{"message": "The bearer token included in the request is invalid."}', None, (503, None, {})),
])
def test_upstream_failures_render_as_openai_errors(status, upstream_body, retry_after, expected):
    code, document, headers = proto.error_body(kiro_errors.classify(status, upstream_body, retry_after))
    assert (code, document["error"]["code"], headers) == expected


def test_statuses_without_a_kind_of_their_own():
    assert proto.error_body(errors.ProxyError("no", status=405, kind="invalid_request"))[:2] == (
        405, {"error": {"message": "no", "type": "invalid_request_error", "param": None, "code": None}})
    assert proto.error_body(errors.ProxyError("big", status=413, kind="request_too_large"))[1]["error"][
        "type"] == "invalid_request_error"


# ----- model names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("gpt-4o", "claude-sonnet-4"), ("gpt-4", "claude-sonnet-4"), ("gpt-4o-mini", "claude-haiku-4.5"),
    ("gpt-3.5-turbo", "claude-haiku-4.5"), ("o1", "claude-opus-4.5"), ("o1-preview", "claude-opus-4.5"),
    ("gpt-4o-2024-08-06", "claude-sonnet-4"), ("gpt-4-0613", "claude-sonnet-4"), ("openai/gpt-4o", "claude-sonnet-4"),
    ("gpt-5", "default"), ("gpt-4.1", "default"), ("gpt-5-codex", "default"), ("chatgpt-4o-latest", "default"),
    ("codex-latest", "default"), ("gpt-4-turbo", "default"),
    ("gpt-4.1-mini", "fast"), ("gpt-4.1-nano", "fast"), ("gpt-5-mini", "fast"), ("o4-mini", "fast"),
    ("codex-mini-latest", "fast"), ("o3", "strong"), ("o3-pro", "strong"), ("o4-preview", "strong"),
    ("llama-3-70b", None), ("gemini-2.5-flash", None), ("gemini-mini", None), ("claude-x", None),
    ("omni-model", None), ("mistral-small", None)])
def test_model_rule(name, expected):
    assert proto.model_rule(name) == expected


@pytest.mark.parametrize("name, expected", [
    ("gpt-5", "claude-sonnet-4.6"), ("GPT-4.1-mini", "claude-haiku-4.5"), ("o3", "claude-opus-4.6"),
    ("gpt-4o", "claude-sonnet-4"), ("my-gpt", "glm-5")])
def test_catalog_resolves_openai_names_through_roles_and_aliases(name, expected):
    catalog = Catalog(aliases={"my-gpt": "glm-5"},
                      roles={"default": "claude-sonnet-4.6", "fast": "claude-haiku-4.5", "strong": "claude-opus-4.6"},
                      rules=[proto.model_rule])
    assert catalog.resolve(name) == expected


def test_aliases_win_over_the_table():
    catalog = Catalog(aliases={"gpt-4o": "claude-opus-4.6"}, rules=[proto.model_rule])
    assert catalog.resolve("gpt-4o") == "claude-opus-4.6"


# ----- JSON mode ---------------------------------------------------------------------------------

FENCED_EVENTS = [{"type": "TextDelta", "text": "```js"}, {"type": "TextDelta", "text": "on\n{\"answer\""},
                 {"type": "TextDelta", "text": ": 4}\n`"}, {"type": "TextDelta", "text": "``"},
                 {"type": "Finish", "reason": "end_turn"}]


@pytest.mark.parametrize("text", ['```json\n{"answer": 4}\n```', 'Here you go:\n{"answer": 4}\nDone.'])
def test_json_mode_render_cuts_the_answer_to_its_json(text):
    reply = chat.Reply(model=MODEL, parts=[chat.Text(text)])
    assert proto.render(reply, model=MODEL, json_mode=True)["choices"][0]["message"]["content"] == '{"answer": 4}'
    assert proto.render(reply, model=MODEL)["choices"][0]["message"]["content"] == text


def test_json_mode_stream_drops_the_fences():
    def content(json_mode: bool) -> str:
        body = b"".join(proto.encode_stream(stream_of(FENCED_EVENTS), model=MODEL, completion_id=COMPLETION_ID,
                                            created=CREATED, json_mode=json_mode))
        return Replay(body, include_usage=False).message["content"]

    assert content(True) == '{"answer": 4}'
    assert content(False) == '```json\n{"answer": 4}\n```'


# ----- legacy functions ------------------------------------------------------------------------


def test_uses_legacy_functions():
    assert proto.uses_legacy_functions(body(functions=[{"name": "f"}]))
    assert not proto.uses_legacy_functions(body(functions=[{"name": "f"}], tools=[{"type": "function"}]))
    assert not proto.uses_legacy_functions(body(tools=[{"type": "function"}]))
    assert not proto.uses_legacy_functions(body()) and not proto.uses_legacy_functions([])


def test_legacy_render_has_one_function_call():
    reply = chat.Reply(model=MODEL, finish="tool_use", parts=[
        chat.Text("Let me check."), chat.ToolUse("t1", "get_weather", {"city": "Oslo"}), chat.ToolUse("t2", "x", {})])
    document = proto.render(reply, model=MODEL, legacy_functions=True)
    (choice,) = document["choices"]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"] == {"role": "assistant", "content": "Let me check.", "refusal": None,
                                 "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    message = ChatCompletion.model_validate(document).choices[0].message
    assert message.function_call.name == "get_weather" and message.tool_calls is None
    only_call = chat.Reply(model=MODEL, finish="tool_use", parts=[chat.ToolUse("t1", "f", {})])
    assert proto.render(only_call, model=MODEL, legacy_functions=True)["choices"][0]["message"]["content"] is None


def test_legacy_stream_sends_delta_function_call():
    events = [{"type": "ToolCallStart", "id": "t1", "name": "get_weather"},
              {"type": "ToolCallDelta", "id": "t1", "fragment": '{"city":'},
              {"type": "ToolCallDelta", "id": "t1", "fragment": ' "Oslo"}'},
              {"type": "ToolCallEnd", "id": "t1", "input": {"city": "Oslo"}},
              {"type": "ToolCallStart", "id": "t2", "name": "other"},
              {"type": "ToolCallEnd", "id": "t2", "input": {}},
              {"type": "Finish", "reason": "tool_use"}]
    out = frames(b"".join(proto.encode_stream(stream_of(events), model=MODEL, completion_id=COMPLETION_ID,
                                              created=CREATED, legacy_functions=True)))
    assert out[-1] == "[DONE]"
    choices = [frame["choices"][0] for frame in out[:-1]]
    assert [c["delta"] for c in choices] == [
        {"role": "assistant", "content": ""},
        {"function_call": {"name": "get_weather", "arguments": ""}},
        {"function_call": {"arguments": '{"city":'}}, {"function_call": {"arguments": ' "Oslo"}'}}, {}]
    assert choices[-1]["finish_reason"] == "function_call"
    for frame in out[:-1]:
        ChatCompletionChunk.model_validate(frame)
