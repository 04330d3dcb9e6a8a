"""Tests for protocols.anthropic: golden parse and SSE fixtures, render, error bodies, rejections.

Goldens live in tests/golden/anthropic and change only with KIROPROXY_UPDATE_GOLDEN=1. Every SSE
golden is also replayed by `replay()`, an independent checker of the event sequence of
client-protocols.md §3, and by the official anthropic SDK (offline, through a mock transport).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pydantic
import pytest

from kiroproxy import chat, errors
from kiroproxy.kiro import errors as kiro_errors
from kiroproxy.protocols import anthropic as proto
from tests.factories import anthropic_body
from tests.golden import Goldens, event_frames, events_from_json, proxy_errors, to_json

pytest.importorskip("anthropic", reason="the official SDKs need Python 3.10 or newer")

import anthropic  # noqa: E402
import httpx2  # noqa: E402
from anthropic.types import Message as SdkMessage  # noqa: E402
from anthropic.types import RawMessageStreamEvent  # noqa: E402
from anthropic.types.shared import ErrorResponse  # noqa: E402

GOLDEN = Goldens("anthropic")
PARSE_CASES = [
    "plain_string", "system_string", "system_blocks", "system_in_list", "images", "tool_round_trip", "tools",
    "tool_choice_any", "tool_choice_none", "tool_choice_auto", "thinking_enabled", "thinking_adaptive",
    "thinking_disabled", "stop_sequences", "cache_control", "claude_code",
]
ENCODE_CASES = [
    "text_only", "thinking_text", "thinking_signature", "tool_calls", "heartbeat", "stop_sequence", "max_tokens",
    "error_mid_stream",
]
MODEL = "claude-sonnet-4-5"
MESSAGE_ID = "msg_01GoldenFixedId"
INPUT_TOKENS = 321
# The in-stream error body carries a random request id that encode_stream cannot pin; it is
# replaced by this placeholder before comparing (its shape is checked in test_stream_error).
REQUEST_ID = re.compile(rb'"request_id":"req_[A-Za-z0-9]{1,24}"')
PINNED_REQUEST_ID = b'"request_id":"req_PINNED"'
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                "model_context_window_exceeded"}
BLOCK_DELTAS = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
                "tool_use": {"input_json_delta"}}


def stream_of(items: List[Dict[str, Any]], input_tokens: int = INPUT_TOKENS, **kw: Any) -> chat.Stream:
    return chat.Stream(events_from_json(items), model=MODEL, input_tokens=input_tokens, **kw)


def encode(items: List[Dict[str, Any]], **kw: Any) -> bytes:
    body = b"".join(proto.encode_stream(stream_of(items), model=MODEL, message_id=MESSAGE_ID, **kw))
    return REQUEST_ID.sub(PINNED_REQUEST_ID, body)


class Replay:
    """Rebuilds the message from SSE frames, asserting §3's sequence rules on the way."""

    def __init__(self, body: bytes) -> None:
        self.names = [name for name, _ in event_frames(body)]
        events = [(name, data) for name, data in event_frames(body) if name != "ping"]
        assert events[0][0] == "message_start", self.names
        self.message = events[0][1]["message"]
        assert {key: value for key, value in self.message.items() if key not in ("id", "model", "usage")} == {
            "type": "message", "role": "assistant", "content": [], "stop_reason": None, "stop_sequence": None}
        self.start_usage = dict(self.message["usage"])
        self.block: Optional[Dict[str, Any]] = None
        self.fragments: List[str] = []
        self.error: Optional[Dict[str, Any]] = None
        for name, data in events[1:]:
            assert self.error is None and self.message["stop_reason"] is None or name == "message_stop", name
            self.apply(name, data)
        if self.error is None:
            assert self.names[-2:] == ["message_delta", "message_stop"], self.names
        else:
            assert "message_stop" not in self.names and self.names[-1] == "error", self.names

    def apply(self, name: str, data: Dict[str, Any]) -> None:
        content = self.message["content"]
        if name == "content_block_start":
            assert self.block is None and data["index"] == len(content)
            self.block, self.fragments = dict(data["content_block"]), []
            assert self.block == {"text": {"type": "text", "text": ""}, "tool_use": {
                "type": "tool_use", "id": self.block.get("id"), "name": self.block.get("name"), "input": {}},
                "thinking": {"type": "thinking", "thinking": "", "signature": ""}}[self.block["type"]]
            assert isinstance(self.block.get("id", ""), str) and isinstance(self.block.get("name", ""), str)
            content.append(self.block)
        elif name == "content_block_delta":
            assert self.block is not None and data["index"] == len(content) - 1
            delta = data["delta"]
            assert delta["type"] in BLOCK_DELTAS[self.block["type"]]
            assert self.block.get("signature", "") == "", "no delta may follow the signature"
            if delta["type"] == "text_delta":
                self.block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                self.block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                assert delta["signature"]
                self.block["signature"] = delta["signature"]
            else:
                self.fragments.append(delta["partial_json"])
        elif name == "content_block_stop":
            assert self.block is not None and data == {"type": name, "index": len(content) - 1}
            if self.block["type"] == "tool_use":
                self.block["input"] = json.loads("".join(self.fragments) or "{}")
                assert isinstance(self.block["input"], dict)
            self.block = None
        elif name == "message_delta":
            assert self.block is None and data["delta"]["stop_reason"] in STOP_REASONS
            assert (data["delta"]["stop_sequence"] is not None) == (data["delta"]["stop_reason"] == "stop_sequence")
            self.message.update(data["delta"])
            self.message["usage"].update(data["usage"])
        elif name == "error":
            self.error = data
        else:
            assert name == "message_stop" and data == {"type": "message_stop"}, name


# ----- parse goldens ---------------------------------------------------------------------------


def test_every_golden_file_belongs_to_a_case():
    assert GOLDEN.cases() == set(PARSE_CASES) | set(ENCODE_CASES)


@pytest.mark.parametrize("case", PARSE_CASES)
def test_parse_golden(case):
    body = GOLDEN.request(case)
    actual = to_json(proto.parse(body)).encode("utf-8")
    assert actual.decode("utf-8") == GOLDEN.stored(f"{case}.chat.json", actual).decode("utf-8")


def test_count_tokens_body_needs_no_max_tokens_and_never_streams():
    body = anthropic_body("count me", stream=True)
    del body["max_tokens"]
    request = proto.parse(body, count_only=True)
    assert request.max_tokens is None and request.stream is False
    assert request.messages == (chat.Message("user", (chat.Text("count me"),)),)


REJECTIONS = [
    ([], "the request body", None),
    (anthropic_body(model=""), "model", "model"),
    (anthropic_body(model=7), "model", "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "max_tokens"),
    (anthropic_body(max_tokens=0), "max_tokens", "max_tokens"),
    (anthropic_body(max_tokens=True), "max_tokens", "max_tokens"),
    (anthropic_body(max_tokens="10"), "max_tokens", "max_tokens"),
    (anthropic_body(messages=[]), "messages", "messages"),
    (anthropic_body(messages="hi"), "messages", "messages"),
    (anthropic_body(messages=["hi"]), "messages.0", "messages"),
    (anthropic_body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role", "messages"),
    (anthropic_body(messages=[{"role": "system", "content": "only system"}]), "messages", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": 5}]), "messages.0.content", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [5]}]), "messages.0.content.0", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": [
        {"type": "tool_use", "name": "Read", "input": {}}]}]), "messages.1.content.0", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
     "messages.0.content.0.tool_use_id", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                            "content": 5}]}]), "messages.0.content.0.content",
     "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [{"type": "image"}]}]),
     "messages.0.content.0.source", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]),
     "messages.0.content.0.source.data", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]),
     "messages.0.content.0.source.data", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "data:image/png;base64,%%%"}}]}]),
     "messages.0.content.0.source.url", "messages"),
    (anthropic_body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f1"}}]}]),
     "messages.0.content.0.source.type", "messages"),
    (anthropic_body(system=5), "system", "system"),
    (anthropic_body(tools={"name": "Read"}), "tools", "tools"),
    (anthropic_body(tools=["Read"]), "tools.0", "tools"),
    (anthropic_body(tools=[{"description": "no name", "input_schema": {}}]), "tools.0.name", "tools"),
    (anthropic_body(stop_sequences="END"), "stop_sequences", "stop_sequences"),
    (anthropic_body(stop_sequences=["END", 3]), "stop_sequences", "stop_sequences"),
]


@pytest.mark.parametrize("body, field, param", REJECTIONS, ids=[f"{i}-{r[1]}" for i, r in enumerate(REJECTIONS)])
def test_parse_rejects_naming_the_field(body, field, param):
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(body)
    assert str(info.value).startswith(field + (":" if param else " ")), str(info.value)
    assert info.value.param == param
    assert proto.error_body(info.value)[0] == 400


# ----- encode goldens --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_encode_golden(case):
    actual = encode(GOLDEN.events(case))
    assert actual == GOLDEN.stored(f"{case}.sse", actual)
    replay = Replay(actual)
    assert replay.message["id"] == MESSAGE_ID and replay.message["model"] == MODEL
    assert replay.start_usage == {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_stream_replays_to_the_non_streaming_render(case):
    replay = Replay(encode(GOLDEN.events(case)))
    reply = chat.collect(stream_of(GOLDEN.events(case)))
    assert replay.message == proto.render(reply, model=MODEL, message_id=MESSAGE_ID)


def test_message_start_carries_the_streams_input_tokens():
    stream = stream_of(GOLDEN.events("text_only"), input_tokens=98765)
    first = next(iter(proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID)))
    assert event_frames(first)[0][1]["message"]["usage"]["input_tokens"] == 98765


def test_one_write_per_event_the_opening_with_the_first():
    pulled: List[chat.Event] = []

    def source() -> Iterator[chat.Event]:
        for event in events_from_json(GOLDEN.events("text_only")):
            pulled.append(event)
            yield event

    stream = chat.Stream(source(), model=MODEL, input_tokens=INPUT_TOKENS)
    writes = list(proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID))
    assert [name for name, _ in event_frames(writes[0])] == [
        "message_start", "ping", "content_block_start", "content_block_delta"]
    # Each later write holds what one more event produced: nothing waits for the next event.
    visible = [e for e in pulled if not isinstance(e, chat.Usage)]
    assert len(writes) == len(visible)
    assert [name for name, _ in event_frames(writes[-1])][-2:] == ["message_delta", "message_stop"]


def test_the_opening_goes_out_with_a_first_keep_alive():
    stream = chat.Stream(iter([chat.Heartbeat()]), model=MODEL, input_tokens=INPUT_TOKENS)
    first = next(iter(proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID)))
    assert [name for name, _ in event_frames(first)] == ["message_start", "ping", "ping"]


def test_tool_calls_stream_each_call_as_its_own_block():
    replay = Replay(encode(GOLDEN.events("tool_calls")))
    assert [(b["type"], b.get("id"), b.get("input")) for b in replay.message["content"]] == [
        ("text", None, None), ("tool_use", "toolu_01A", {"file_path": "/a.py"}),
        ("tool_use", "toolu_01B", {"pattern": 'fo"o'})]
    assert replay.message["stop_reason"] == "tool_use"
    assert replay.message["usage"]["cache_read_input_tokens"] == 100


def test_a_tool_block_closes_as_soon_as_its_call_ends():
    pulled: List[chat.Event] = []

    def source() -> Iterator[chat.Event]:
        for event in events_from_json(GOLDEN.events("tool_calls")):
            pulled.append(event)
            yield event

    stream = chat.Stream(source(), model=MODEL, input_tokens=INPUT_TOKENS)
    for chunk in proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID):
        if event_frames(chunk) == [("content_block_stop", {"type": "content_block_stop", "index": 1})]:
            break
    # The client may start running the tool at the stop, so it must not wait for the next event.
    assert pulled[-1] == chat.ToolCallEnd("toolu_01A", {"file_path": "/a.py"})


def test_heartbeat_becomes_a_ping_between_deltas():
    names = Replay(encode(GOLDEN.events("heartbeat"))).names
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta", "ping",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize("case, reason, sequence, output_tokens", [
    ("stop_sequence", "stop_sequence", "END", 6), ("max_tokens", "max_tokens", None, 16)])
def test_finish_reasons_reach_message_delta(case, reason, sequence, output_tokens):
    delta = [data for name, data in event_frames(encode(GOLDEN.events(case))) if name == "message_delta"]
    assert delta[0]["delta"] == {"stop_reason": reason, "stop_sequence": sequence}
    assert delta[0]["usage"]["output_tokens"] == output_tokens


def test_stream_error_is_an_error_event_without_message_stop():
    seen, closed = [], []
    stream = stream_of(GOLDEN.events("error_mid_stream"), on_close=lambda: closed.append(True))
    body = b"".join(proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID, on_error=seen.append))
    name, data = event_frames(body)[-1]
    assert name == "error" and data["error"] == {"type": "api_error", "message": "the upstream stream ended early"}
    assert re.fullmatch(r"req_[A-Za-z0-9]{1,24}", data["request_id"])
    assert b"message_stop" not in body and b"message_delta" not in body
    assert [type(e) for e in seen] == [errors.Truncated] and closed == [True]


@pytest.mark.parametrize("frames_read", [1, 2, 3, 4])
def test_a_client_that_stops_reading_closes_the_stream(frames_read):
    closed = []
    stream = stream_of(GOLDEN.events("text_only"), on_close=lambda: closed.append(True))
    body = proto.encode_stream(stream, model=MODEL, message_id=MESSAGE_ID)
    for _ in range(frames_read):
        next(body)
    body.close()
    assert closed == [True] and stream.closed


# ----- the official SDK reads what we write -----------------------------------------------------


def sdk_stream(body: bytes) -> Tuple[List[str], SdkMessage]:
    """Event types and the final message, as the anthropic SDK's MessageStream sees `body`."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = anthropic.Anthropic(api_key="sk-test", base_url="http://sdk.invalid", max_retries=0,
                                     http_client=http)
        # Any current model name: the SDK warns (an error under pytest) about deprecated ones.
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            types = [event.type for event in stream]
            return types, stream.get_final_message()


def test_sdk_accumulates_the_tool_call_stream():
    types, message = sdk_stream(encode(GOLDEN.events("tool_calls")))
    assert types.count("input_json") == 4 and types[-1] == "message_stop"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Reading both."
    assert (message.content[2].id, message.content[2].name, message.content[2].input) == (
        "toolu_01B", "Grep", {"pattern": 'fo"o'})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (INPUT_TOKENS, 30)


def test_sdk_accumulates_thinking_with_its_signature():
    _, message = sdk_stream(encode(GOLDEN.events("thinking_signature")))
    assert [(b.type, getattr(b, "signature", None)) for b in message.content] == [
        ("thinking", "EqQBCkYIBxgCKkDsig=="), ("text", None)]


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_every_event_validates_against_the_sdk_types(case):
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
    for name, data in event_frames(encode(GOLDEN.events(case))):
        if name != "ping":  # the SDK skips pings before parsing
            assert adapter.validate_python(data).type == name


def test_sdk_raises_the_stream_error_with_its_body():
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_stream(encode(GOLDEN.events("error_mid_stream")))
    assert info.value.body["error"] == {"type": "api_error", "message": "the upstream stream ended early"}


# ----- render ----------------------------------------------------------------------------------


def test_render_a_full_reply():
    reply = chat.Reply(model="ignored", finish="tool_use",
                       usage=chat.Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3, cache_write_tokens=4),
                       parts=[chat.Thinking("hmm", "sig-1"), chat.Thinking("more"), chat.Text(""), chat.Text("Hi"),
                              chat.ToolUse("toolu_01", "Read", {"file_path": "/x"})])
    body = proto.render(reply, model="claude-opus-4-5", message_id="msg_01X")
    assert body == {
        "id": "msg_01X", "type": "message", "role": "assistant", "model": "claude-opus-4-5",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
                    {"type": "thinking", "thinking": "more", "signature": proto.UNSIGNED},
                    {"type": "text", "text": "Hi"},
                    {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/x"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 4,
                  "cache_read_input_tokens": 3}}
    assert SdkMessage.model_validate(body).content[3].input == {"file_path": "/x"}


@pytest.mark.parametrize("finish, stop_sequence, expected", [
    ("end_turn", None, "end_turn"), ("max_tokens", None, "max_tokens"), ("tool_use", None, "tool_use"),
    ("stop_sequence", "###", "stop_sequence"), ("refusal", None, "refusal"), ("something_new", None, "end_turn")])
def test_render_stop_reasons(finish, stop_sequence, expected):
    body = proto.render(chat.Reply(model=MODEL, finish=finish, stop_sequence=stop_sequence), model=MODEL)
    assert (body["stop_reason"], body["stop_sequence"]) == (expected, stop_sequence)
    assert re.fullmatch(r"msg_[A-Za-z0-9]{1,24}", body["id"])
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}


# ----- errors ----------------------------------------------------------------------------------

ERROR_TABLE = {
    errors.ProxyError: (500, "api_error"),
    errors.BadRequest: (400, "invalid_request_error"),
    errors.Unauthorized: (401, "authentication_error"),
    errors.Forbidden: (403, "permission_error"),
    errors.NotFound: (404, "not_found_error"),
    errors.ModelNotFound: (404, "not_found_error"),
    errors.TooLarge: (400, "invalid_request_error"),
    errors.RateLimited: (429, "rate_limit_error"),
    errors.QuotaExhausted: (429, "rate_limit_error"),
    errors.Overloaded: (529, "overloaded_error"),
    errors.Unavailable: (503, "overloaded_error"),
    errors.ShuttingDown: (529, "overloaded_error"),
    errors.UpstreamError: (502, "api_error"),
    errors.UpstreamTimeout: (504, "timeout_error"),
    errors.Truncated: (502, "api_error"),
}


def test_error_table_covers_every_proxy_error():
    assert proxy_errors() == set(ERROR_TABLE)


@pytest.mark.parametrize("cls", list(ERROR_TABLE), ids=lambda cls: cls.__name__)
def test_error_body(cls):
    status, body, headers = proto.error_body(cls("it went wrong"))
    assert (status, body["error"]["type"]) == ERROR_TABLE[cls]
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["message"] == "it went wrong" and body["request_id"].startswith("req_")
    assert headers == {}
    if body["error"]["type"] != "request_too_large":
        ErrorResponse.model_validate(body)


@pytest.mark.parametrize("retry_after, header", [(7.4, "7"), (0.2, "1"), (30, "30")])
def test_rate_limit_sends_retry_after(retry_after, header):
    status, body, headers = proto.error_body(errors.RateLimited("slow down", retry_after=retry_after))
    assert (status, body["error"]["type"], headers) == (429, "rate_limit_error", {"retry-after": header})


def test_too_large_uses_the_message_claude_code_parses():
    status, body, _ = proto.error_body(errors.TooLarge("Input is too long", tokens=250123, limit=200000))
    assert (status, body["error"]) == (400, {"type": "invalid_request_error",
                                             "message": "prompt is too long: 250123 tokens > 200000 maximum"})


@pytest.mark.parametrize("status, upstream_body, expected", [
    (500, "", (529, "overloaded_error")),
    (429, "{}", (429, "rate_limit_error")),
    (400, '{"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}',
     (400, "invalid_request_error")),
    # The proxy's own Kiro account was refused: a retryable overload, never the client's bad key.
    (403, '{"message": "The bearer token included in the request is invalid."}', (529, "overloaded_error")),
])
def test_upstream_failures_render_as_anthropic_errors(status, upstream_body, expected):
    code, body, _ = proto.error_body(kiro_errors.classify(status, upstream_body))
    assert (code, body["error"]["type"]) == expected
