"""Tests for protocols.responses (and response_items): parse and SSE goldens, render, records.

Goldens live in tests/golden/responses and change only with KIROPROXY_UPDATE_GOLDEN=1. Every SSE
golden is also replayed by `Replay`, an independent checker of the event sequence of
client-protocols.md §2, validated event by event against the openai SDK's types, and read by the
SDK's own stream accumulator (offline, through a mock transport).
"""
from __future__ import annotations

import copy
import itertools
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import pydantic
import pytest

from kiroproxy import chat, errors
from kiroproxy.protocols import openai as openai_proto
from kiroproxy.protocols import response_items
from kiroproxy.protocols import responses as proto
from tests.golden import Goldens, event_frames, events_from_json, to_json

pytest.importorskip("openai", reason="the official SDKs need Python 3.10 or newer")

import httpx2  # noqa: E402
import openai  # noqa: E402
from openai.types.responses import Response as SdkResponse  # noqa: E402
from openai.types.responses import ResponseStreamEvent  # noqa: E402

GOLDEN = Goldens("responses")
PARSE_CASES = [
    "plain_string", "codex", "images", "tool_choice_function", "tool_choice_required", "tool_choice_none",
    "namespace_clash", "reasoning_minimal", "json_schema", "json_object", "assistant_turn",
]
ENCODE_CASES = [
    "text_only", "reasoning_text", "thinking_signature", "tool_calls", "custom_tool_call", "max_tokens",
    "heartbeat", "error_mid_stream",
]
RESPONSE_ID = "resp_golden"
CREATED = 1767225600
INPUT_TOKENS = 321
# The request every encode golden answers: a function, a custom (free-form) tool and a namespace.
BODY: Dict[str, Any] = {
    "model": "gpt-5.1-codex", "stream": True, "store": False, "reasoning": {"effort": "medium", "summary": "auto"},
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}],
    "tools": [
        {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {
            "command": {"type": "array", "items": {"type": "string"}}}}},
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
        {"type": "namespace", "name": "mcp__github__", "description": "GitHub", "tools": [
            {"type": "function", "name": "list_issues", "parameters": {"type": "object", "properties": {}}}]},
        {"type": "web_search"},
    ],
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def pinned_ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter):03d}"


def stream_of(items: List[Dict[str, Any]], **kw: Any) -> chat.Stream:
    return chat.Stream(events_from_json(items), model="claude-sonnet-4.5", input_tokens=INPUT_TOKENS, **kw)


def encode(items: List[Dict[str, Any]], body: Optional[Dict[str, Any]] = None,
           completed: Optional[List[dict]] = None, json_mode: bool = False, **kw: Any) -> bytes:
    sink = completed if completed is not None else []
    return b"".join(proto.encode_stream(stream_of(items, **kw), body=body or BODY, response_id=RESPONSE_ID,
                                        created=CREATED, on_complete=sink.append, ids=pinned_ids(),
                                        json_mode=json_mode))


class Replay:
    """Rebuilds the output items from the events, asserting §2's sequence rules on the way."""

    def __init__(self, body: bytes) -> None:
        self.events = event_frames(body, skip_comments=True)
        self.names = [name for name, _ in self.events]
        assert [data["sequence_number"] for _, data in self.events] == list(range(len(self.events)))
        assert self.names[:2] == ["response.created", "response.in_progress"], self.names
        for _, data in self.events[:2]:
            assert data["response"]["status"] == "in_progress" and data["response"]["output"] == []
        assert self.names[-1] in TERMINAL and all(n not in TERMINAL for n in self.names[:-1]), self.names
        self.final = self.events[-1][1]["response"]
        self.items: List[Dict[str, Any]] = []
        self.item: Optional[Dict[str, Any]] = None
        self.text = ""
        for name, data in self.events[2:-1]:
            self.apply(name, data)
        if self.names[-1] != "response.failed":
            assert self.item is None, "an item was left open"
            assert self.final["output"] == self.items

    def where(self, data: Dict[str, Any]) -> None:
        assert self.item is not None and data["item_id"] == self.item["id"]
        assert data["output_index"] == len(self.items)

    def apply(self, name: str, data: Dict[str, Any]) -> None:
        if name == "response.output_item.added":
            assert self.item is None and data["output_index"] == len(self.items)
            self.item, self.text = data["item"], ""
            assert self.item["status"] == "in_progress"
            assert self.item.get("content", []) == [] and self.item.get("summary", []) == []
            assert self.item.get("arguments", "") == "" and self.item.get("input", "") == ""
        elif name == "response.output_item.done":
            assert self.item is not None and data["output_index"] == len(self.items)
            assert data["item"]["id"] == self.item["id"] and data["item"]["status"] in ("completed", "incomplete")
            self.check_done(data["item"])
            self.items.append(data["item"])
            self.item = None
        elif name in ("response.content_part.added", "response.reasoning_summary_part.added"):
            self.where(data)
            assert data["part"]["text"] == "" and data.get("content_index", data.get("summary_index")) == 0
        elif name in ("response.output_text.delta", "response.reasoning_summary_text.delta",
                      "response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            self.where(data)
            assert data["delta"]
            self.text += data["delta"]
        elif name in ("response.output_text.done", "response.reasoning_summary_text.done"):
            self.where(data)
            assert data["text"] == self.text
        elif name in ("response.content_part.done", "response.reasoning_summary_part.done"):
            self.where(data)
            assert data["part"]["text"] == self.text
        elif name == "response.function_call_arguments.done":
            self.where(data)
            assert json.loads(data["arguments"]) == json.loads(self.text or "{}")
        else:
            assert name == "response.custom_tool_call_input.done", name
            self.where(data)
            assert data["input"] == self.text

    def check_done(self, item: Dict[str, Any]) -> None:
        kind = item["type"]
        if kind == "message":
            assert item["content"] == [{"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}]
        elif kind == "reasoning":
            assert item["summary"] == [{"type": "summary_text", "text": self.text}]
        elif kind == "function_call":
            assert json.loads(item["arguments"]) == json.loads(self.text or "{}")
        else:
            assert kind == "custom_tool_call" and item["input"] == self.text


# ----- parse goldens ---------------------------------------------------------------------------


def test_every_golden_file_belongs_to_a_case():
    assert GOLDEN.cases() == set(PARSE_CASES) | set(ENCODE_CASES)


@pytest.mark.parametrize("case", PARSE_CASES)
def test_parse_golden(case):
    body = GOLDEN.request(case)
    actual = to_json(proto.parse(body, None)).encode("utf-8")
    assert actual.decode("utf-8") == GOLDEN.stored(f"{case}.chat.json", actual).decode("utf-8")


def test_codex_request_becomes_alternating_turns_with_matched_tool_ids():
    body = GOLDEN.request("codex")
    request = proto.parse(body, None)
    assert [m.role for m in request.messages] == ["user"] + ["assistant", "user"] * 3
    assert request.system == ("You are Codex, a coding agent.\n\n"
                              "<permissions instructions>sandbox: workspace-write</permissions instructions>")
    uses = [p for m in request.messages for p in m.parts if isinstance(p, chat.ToolUse)]
    results = [p for m in request.messages for p in m.parts if isinstance(p, chat.ToolResult)]
    assert [u.id for u in uses] == [r.tool_use_id for r in results] == ["call_ls", "call_patch", "call_gh"]
    assert [t.name for t in request.tools] == ["shell", "apply_patch", "list_issues"]
    assert uses[1].input == {"input": "*** Begin Patch\n*** Add File: README.md\n+# Demo\n*** End Patch\n"}
    assert request.thinking == chat.ThinkingConfig("adaptive", None, "medium") and request.stream


def test_namespace_clash_gets_qualified_names_both_ways():
    body = GOLDEN.request("namespace_clash")
    box = response_items.toolbox(body["tools"])
    assert [t.name for t in box.tools] == ["jira__search", "wiki__search", "open"]
    assert box.origin("wiki__search") == response_items.ClientTool("function", "search", "wiki")
    assert box.upstream_name("search", "jira") == "jira__search"
    request = proto.parse(body, None)
    assert request.tool_choice == chat.ToolChoice("tool", "wiki__search")
    assert request.messages[1].parts == (chat.ToolUse("c1", "jira__search", {"q": "bug"}),)


@pytest.mark.parametrize("choice, expected", [
    ({"type": "function", "name": "shell"}, chat.ToolChoice("tool", "shell")),
    ({"type": "custom", "name": "apply_patch"}, chat.ToolChoice("tool", "apply_patch")),
    ({"type": "function", "name": "list_issues", "namespace": "mcp__github__"}, chat.ToolChoice("tool", "list_issues")),
    ({"type": "function", "name": "list_issues"}, chat.ToolChoice("tool", "list_issues")),
    ({"type": "allowed_tools", "mode": "required", "tools": []}, chat.ToolChoice("required")),
    ({"type": "web_search"}, chat.ToolChoice()), ("auto", chat.ToolChoice()), (None, chat.ToolChoice()),
    ("none", chat.ToolChoice("none"))])
def test_tool_choice_names_a_declared_tool(choice, expected):
    assert proto.parse(tagged(BASE, tools=BODY["tools"], tool_choice=choice), None).tool_choice == expected


def test_a_choice_without_namespace_finds_a_clashing_namespaced_tool():
    body = tagged(GOLDEN.request("namespace_clash"), tool_choice={"type": "function", "name": "search"})
    assert proto.parse(body, None).tool_choice == chat.ToolChoice("tool", "jira__search")


def test_stream_and_temperature_values():
    request = proto.parse(tagged(BASE, stream=True, temperature=1), None)
    assert (request.stream, request.temperature) == (True, 1.0)
    request = proto.parse(tagged(BASE, stream=False), None)
    assert (request.stream, request.temperature) == (False, None)


def test_hosted_tools_are_dropped_and_unknown_items_ignored():
    body = {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}, {"role": "user", "content": "hi"},
                                    {"type": "local_shell_call", "call_id": "x", "action": {}}],
            "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["v"]},
                      {"type": "tool_search"}, {"type": "code_interpreter", "container": "auto"}],
            "tool_choice": {"type": "web_search"}}
    request = proto.parse(body, None)
    assert request.tools == () and request.tool_choice == chat.ToolChoice()
    assert request.messages == (chat.Message("user", (chat.Text("hi"),)),)


@pytest.mark.parametrize("output, content, is_error", [
    ("plain", (chat.Text("plain"),), False),
    ([{"type": "input_text", "text": "a"}, {"type": "output_text", "text": "b"}],
     (chat.Text("a"), chat.Text("b")), False),
    ({"content": "boom", "success": False}, (chat.Text("boom"),), True),
    ({"exit_code": 1}, (chat.Text('{"exit_code": 1}'),), False),
    (None, (), False),
])
def test_function_call_output_shapes(output, content, is_error):
    body = {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": output}]}
    (message,) = proto.parse(body, None).messages
    assert message.parts == (chat.ToolResult("c", content, is_error),)


@pytest.mark.parametrize("arguments, expected", [
    ('{"a": 1}', {"a": 1}), ("", {}), ("not json", {}), ("[1, 2]", {}), ({"b": 2}, {"b": 2})])
def test_function_call_arguments_replay_as_objects(arguments, expected):
    body = {"model": "m", "input": [{"role": "user", "content": "x"},
                                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": arguments}]}
    assert proto.parse(body, None).messages[1].parts == (chat.ToolUse("c", "f", expected),)


def tagged(body: Dict[str, Any], **changes: Any) -> Dict[str, Any]:
    out = copy.deepcopy(body)
    out.update(changes)
    return out


BASE = {"model": "gpt-5", "input": "hi"}
REJECTIONS = [
    ([], "the request body", None),
    (tagged(BASE, model=""), "model", "model"),
    ({"input": "hi"}, "model", "model"),
    (tagged(BASE, input=None), "input", "input"),
    (tagged(BASE, input=[]), "input", "input"),
    (tagged(BASE, input=5), "input", "input"),
    (tagged(BASE, input=["hi"]), "input.0", "input"),
    (tagged(BASE, input=[{"role": "tool", "content": "x"}]), "input.0.role", "input"),
    (tagged(BASE, input=[{"role": "developer", "content": "only system"}]), "input", "input"),
    (tagged(BASE, input=[{"role": "user", "content": 5}]), "input.0.content", "input"),
    (tagged(BASE, input=[{"role": "user", "content": [5]}]), "input.0.content.0", "input"),
    (tagged(BASE, input=[{"type": "function_call", "name": "f", "arguments": "{}"}]), "input.0.call_id", "input"),
    (tagged(BASE, input=[{"type": "function_call", "call_id": "c", "arguments": "{}"}]), "input.0.name", "input"),
    (tagged(BASE, input=[{"type": "function_call_output", "output": "x"}]), "input.0.call_id", "input"),
    (tagged(BASE, instructions=["x"]), "instructions", "instructions"),
    (tagged(BASE, tools={"type": "function"}), "tools", "tools"),
    (tagged(BASE, tools=["shell"]), "tools.0", "tools"),
    (tagged(BASE, tools=[{"type": "function", "parameters": {}}]), "tools.0.name", "tools"),
    (tagged(BASE, tools=[{"type": "namespace", "name": "n", "tools": [{"type": "custom"}]}]), "tools.0.tools.0.name",
     "tools"),
    (tagged(BASE, max_output_tokens=0), "max_output_tokens", "max_output_tokens"),
    (tagged(BASE, max_output_tokens="9"), "max_output_tokens", "max_output_tokens"),
    (tagged(BASE, max_output_tokens=True), "max_output_tokens", "max_output_tokens"),
    (tagged(BASE, tool_choice=5), "tool_choice", "tool_choice"),
    (tagged(BASE, tool_choice="sometimes"), "tool_choice", "tool_choice"),
    (tagged(BASE, tool_choice={"name": "shell"}), "tool_choice.type", "tool_choice"),
    (tagged(BASE, tool_choice={"type": "function"}), "tool_choice", "tool_choice"),
    (tagged(BASE, tool_choice={"type": "function", "name": "nope"}), "tool_choice", "tool_choice"),
    (tagged(BASE, tools=BODY["tools"], tool_choice={"type": "function", "name": "nope"}), "tool_choice",
     "tool_choice"),
    (tagged(BASE, tools=BODY["tools"], tool_choice={"type": "function", "name": "list_issues", "namespace": "x"}),
     "tool_choice", "tool_choice"),
    (tagged(BASE, tools=BODY["tools"], tool_choice={"type": "function", "name": "web_search"}), "tool_choice",
     "tool_choice"),
    (tagged(BASE, temperature="hot"), "temperature", "temperature"),
    (tagged(BASE, stream="false"), "stream", "stream"),
]


@pytest.mark.parametrize("body, field, param", REJECTIONS, ids=[f"{i}-{r[1]}" for i, r in enumerate(REJECTIONS)])
def test_parse_rejects_naming_the_field(body, field, param):
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(body, None)
    assert str(info.value).startswith(field + (":" if param else " ")), str(info.value)
    assert info.value.param == param
    status, error, _ = proto.error_body(info.value)
    assert status == 400 and error["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("effort, expected", [
    ("none", None), ("minimal", None), ("low", chat.ThinkingConfig("adaptive", None, "low")),
    ("xhigh", chat.ThinkingConfig("adaptive", None, "xhigh")), (None, None)])
def test_reasoning_effort_maps_to_adaptive_thinking(effort, expected):
    assert proto.parse(tagged(BASE, reasoning={"effort": effort}), None).thinking == expected


def test_error_body_is_openais():
    assert proto.error_body is openai_proto.error_body
    status, body, headers = proto.error_body(errors.RateLimited("slow down", retry_after=2.2))
    assert status == 429 and body["error"]["message"] == "slow down" and headers["retry-after"] == "3"


def test_should_store_unless_store_is_false():
    assert proto.should_store({"store": True}) and proto.should_store({}) and proto.should_store(None)
    assert proto.should_store({"store": None})
    assert not proto.should_store({"store": False})


# ----- previous_response_id and records ---------------------------------------------------------


def first_turn() -> Tuple[Dict[str, Any], Dict[str, Any]]:
    body = {"model": "gpt-5", "instructions": "Be a pirate.", "input": "Weather in Paris?", "tools": BODY["tools"]}
    reply = chat.Reply(model="x", finish="tool_use", parts=[
        chat.Thinking("Need the tool."), chat.Text("Checking."),
        chat.ToolUse("tooluse_1", "shell", {"command": ["w"]})])
    document = proto.render(reply, body=body, response_id="resp_first", created=CREATED, ids=pinned_ids())
    return body, proto.record(body, None, document)


def test_record_keeps_the_whole_conversation_as_input_items():
    body, stored = first_turn()
    assert stored["response"]["id"] == "resp_first" and stored["instructions"] == "Be a pirate."
    assert [(i["type"], i.get("role")) for i in stored["items"]] == [
        ("message", "user"), ("reasoning", None), ("message", "assistant"), ("function_call", None)]
    assert stored["items"][0] == {"type": "message", "role": "user", "content": "Weather in Paris?"}
    second = {"model": "gpt-5", "input": [{"type": "function_call_output", "call_id": "tooluse_1", "output": "sunny"}]}
    chained = proto.record(second, stored, {"id": "resp_second", "output": [{"type": "message", "id": "m"}]})
    assert chained["items"][:4] == stored["items"]
    assert [i["type"] for i in chained["items"][4:]] == ["function_call_output", "message"]
    assert chained["instructions"] is None


def test_parse_continues_from_the_previous_record():
    _, stored = first_turn()
    second = {"model": "gpt-5", "previous_response_id": "resp_first", "tools": BODY["tools"],
              "input": [{"type": "function_call_output", "call_id": "tooluse_1", "output": "sunny"}]}
    request = proto.parse(second, stored)
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    assert request.messages[1].parts == (chat.Thinking("Need the tool."), chat.Text("Checking."),
                                         chat.ToolUse("tooluse_1", "shell", {"command": ["w"]}))
    assert request.messages[2].parts == (chat.ToolResult("tooluse_1", (chat.Text("sunny"),)),)
    assert request.system == ""  # like OpenAI: instructions are not carried over


def test_parse_takes_the_model_from_the_previous_response_when_missing():
    _, stored = first_turn()
    assert proto.parse({"input": "and tomorrow?"}, stored).model == "gpt-5"


def test_the_served_model_names_the_response():
    body = {"input": "and tomorrow?", "previous_response_id": "resp_first"}  # no model: inherited
    reply = chat.Reply(model="x", parts=[chat.Text("Rain.")])
    assert proto.render(reply, body=body, response_id="resp_2", created=CREATED, model="gpt-5")["model"] == "gpt-5"
    completed: List[dict] = []
    replay = Replay(b"".join(proto.encode_stream(
        stream_of([{"type": "TextDelta", "text": "Rain."}, {"type": "Finish", "reason": "end_turn"}]), body=body,
        response_id="resp_2", created=CREATED, on_complete=completed.append, model="gpt-5")))
    assert [e[1]["response"]["model"] for e in replay.events if "response" in e[1]] == ["gpt-5"] * 3
    assert completed[0]["model"] == "gpt-5"


# ----- encode goldens --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_encode_golden(case):
    actual = encode(GOLDEN.events(case))
    assert actual == GOLDEN.stored(f"{case}.sse", actual)
    replay = Replay(actual)
    assert replay.final["id"] == RESPONSE_ID and replay.final["created_at"] == CREATED
    assert replay.final["model"] == "gpt-5.1-codex"


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_every_event_validates_against_the_sdk_types(case):
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    for name, data in event_frames(encode(GOLDEN.events(case)), skip_comments=True):
        assert adapter.validate_python(data).type == name


def normalized(document: Dict[str, Any]) -> Dict[str, Any]:
    """Function-call arguments as objects: streams keep the upstream's spacing, render is compact."""
    document = copy.deepcopy(document)
    for item in document["output"]:
        if item["type"] == "function_call":
            item["arguments"] = json.loads(item["arguments"])
    return document


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_stream_replays_to_the_non_streaming_render(case):
    completed: List[dict] = []
    replay = Replay(encode(GOLDEN.events(case), completed=completed))
    builder = chat.ReplyBuilder("claude-sonnet-4.5", INPUT_TOKENS)
    for event in events_from_json(GOLDEN.events(case)):
        builder.add(event)
    rendered = proto.render(builder.reply, body=BODY, response_id=RESPONSE_ID, created=CREATED, ids=pinned_ids())
    assert normalized(replay.final) == normalized(rendered)
    assert completed == [replay.final]


def test_tool_calls_keep_ids_names_and_namespaces():
    output = Replay(encode(GOLDEN.events("tool_calls"))).final["output"]
    assert [(i["type"], i["id"], i.get("call_id"), i.get("name"), i.get("namespace")) for i in output] == [
        ("message", "msg_001", None, None, None), ("function_call", "fc_002", "tooluse_A", "shell", None),
        ("function_call", "fc_003", "tooluse_B", "list_issues", "mcp__github__")]
    assert output[2]["arguments"] == '{"repo": "de\\"mo"}'


def test_custom_tool_call_goes_back_as_raw_input():
    final = Replay(encode(GOLDEN.events("custom_tool_call"))).final
    assert final["output"] == [{"id": "ctc_001", "type": "custom_tool_call", "status": "completed",
                                "call_id": "tooluse_P", "name": "apply_patch",
                                "input": "*** Begin Patch\n*** End Patch\n"}]


def test_usage_reaches_completed():
    final = Replay(encode(GOLDEN.events("text_only"))).final
    assert final["usage"] == {
        "input_tokens": 40, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 42}
    reasoning = Replay(encode(GOLDEN.events("reasoning_text"))).final["usage"]
    assert reasoning["input_tokens"] == INPUT_TOKENS and reasoning["output_tokens_details"]["reasoning_tokens"] == 5


def test_max_tokens_finish_is_response_incomplete():
    completed: List[dict] = []
    replay = Replay(encode(GOLDEN.events("max_tokens"), completed=completed))
    assert replay.names[-1] == "response.incomplete"
    assert replay.final["status"] == "incomplete"
    assert replay.final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert replay.final["output"][-1]["status"] == "incomplete"
    assert completed == [replay.final]


def test_heartbeat_becomes_a_comment_between_deltas():
    body = encode(GOLDEN.events("heartbeat"))
    chunks = body.decode("utf-8").split("\n\n")
    comment = chunks.index(": keepalive")
    assert "response.output_text.delta" in chunks[comment - 1] and "response.output_text.delta" in chunks[comment + 1]


@pytest.mark.parametrize("error, code, message", [
    ({"error": "Truncated", "message": "cut"}, "server_error", "cut"),
    ({"error": "UpstreamError", "message": "lost"}, "server_error", "lost"),
    ({"error": "RateLimited", "message": "slow down.", "retry_after": 2.6}, "rate_limit_exceeded",
     "slow down. Please try again in 3s."),
    ({"error": "TooLarge", "message": "too long"}, "context_length_exceeded", "too long"),
    ({"error": "BadRequest", "message": "bad"}, "invalid_prompt", "bad"),
])
def test_failure_after_the_first_byte_is_response_failed(error, code, message):
    closed: List[bool] = []
    completed: List[dict] = []
    events = [{"type": "TextDelta", "text": "Partial"}, {"type": "raise", **error}]
    replay = Replay(encode(events, completed=completed, on_close=lambda: closed.append(True)))
    assert replay.names[-1] == "response.failed"
    assert replay.final["status"] == "failed" and replay.final["error"] == {"code": code, "message": message}
    assert replay.final["output"][0]["status"] == "incomplete"
    assert replay.final["output"][0]["content"][0]["text"] == "Partial"
    assert completed == [] and closed == [True]


def test_a_stream_without_finish_still_completes():
    replay = Replay(encode([{"type": "TextDelta", "text": "hi"}]))
    assert replay.names[-1] == "response.completed"


@pytest.mark.parametrize("frames_read", [1, 2, 5])
def test_a_client_that_stops_reading_closes_the_stream(frames_read):
    closed: List[bool] = []
    stream = stream_of(GOLDEN.events("text_only"), on_close=lambda: closed.append(True))
    body = proto.encode_stream(stream, body=BODY, response_id=RESPONSE_ID, created=CREATED,
                               on_complete=lambda document: None)
    for _ in range(frames_read):
        next(body)
    body.close()
    assert closed == [True] and stream.closed


def test_live_ids_have_the_documented_prefixes():
    body = b"".join(proto.encode_stream(stream_of(GOLDEN.events("tool_calls")), body=BODY, response_id=proto.new_id(),
                                        created=CREATED, on_complete=lambda document: None))
    final = Replay(body).final
    assert final["id"].startswith("resp_") and len(final["id"]) > 20
    assert [item["id"].split("_", 1)[0] for item in final["output"]] == ["msg", "fc", "fc"]
    assert len({item["id"] for item in final["output"]}) == 3


# ----- the official SDK reads what we write -----------------------------------------------------


def sdk_stream(body: bytes) -> Tuple[List[str], Any]:
    """Event types and the final response, as the openai SDK's ResponseStream sees `body`."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = openai.OpenAI(api_key="sk-test", base_url="http://sdk.invalid/v1", max_retries=0, http_client=http)
        with client.responses.stream(model="gpt-5.1-codex", input="go") as stream:
            types = [event.type for event in stream]
            return types, stream.get_final_response()


def test_sdk_accumulates_text_and_tool_calls():
    types, response = sdk_stream(encode(GOLDEN.events("tool_calls")))
    assert types[-1] == "response.completed"
    assert response.output_text == "Checking both."
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("tooluse_A", "shell", {"command": ["ls"]}), ("tooluse_B", "list_issues", {"repo": 'de"mo'})]
    assert response.usage.output_tokens == 30


def test_sdk_reads_reasoning_summaries():
    _, response = sdk_stream(encode(GOLDEN.events("reasoning_text")))
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].summary[0].text == "Let me think."
    assert response.output_text == "The answer is 4."


# ----- render ----------------------------------------------------------------------------------


def test_render_a_full_reply():
    reply = chat.Reply(model="ignored", finish="tool_use",
                       usage=chat.Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3, reasoning_tokens=2),
                       parts=[chat.Thinking("hmm", "sig"), chat.Thinking("", "sig-only"), chat.Text(""),
                              chat.Text("Hi"), chat.ToolUse("toolu_1", "list_issues", {"repo": "x"}),
                              chat.ToolUse("toolu_2", "apply_patch", {"input": "*** Begin Patch"})])
    body = tagged(BODY, stream=False, instructions="Be brief.", metadata={"k": "v"}, temperature=0.5)
    document = proto.render(reply, body=body, response_id="resp_1", created=CREATED, ids=pinned_ids())
    assert document["output"] == [
        {"id": "rs_001", "type": "reasoning", "status": "completed",
         "summary": [{"type": "summary_text", "text": "hmm"}]},
        {"id": "msg_002", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}]},
        {"id": "fc_003", "type": "function_call", "status": "completed", "arguments": '{"repo":"x"}',
         "call_id": "toolu_1", "name": "list_issues", "namespace": "mcp__github__"},
        {"id": "ctc_004", "type": "custom_tool_call", "status": "completed", "call_id": "toolu_2",
         "name": "apply_patch", "input": "*** Begin Patch"}]
    assert (document["id"], document["object"], document["created_at"], document["status"]) == (
        "resp_1", "response", CREATED, "completed")
    assert (document["instructions"], document["metadata"], document["temperature"], document["store"]) == (
        "Be brief.", {"k": "v"}, 0.5, False)
    assert document["usage"]["total_tokens"] == 17 and document["usage"]["input_tokens_details"]["cached_tokens"] == 3
    parsed = SdkResponse.model_validate(document)
    assert parsed.output_text == "Hi" and parsed.output[2].namespace == "mcp__github__"


@pytest.mark.parametrize("finish, status, reason", [
    ("end_turn", "completed", None), ("tool_use", "completed", None), ("stop_sequence", "completed", None),
    ("max_tokens", "incomplete", "max_output_tokens"), ("refusal", "incomplete", "content_filter")])
def test_render_statuses(finish, status, reason):
    document = proto.render(chat.Reply(model="m", finish=finish, parts=[chat.Text("x")]), body=BASE,
                            response_id="resp_2", created=CREATED)
    assert document["status"] == status
    assert document["incomplete_details"] == ({"reason": reason} if reason else None)
    assert document["output"][0]["status"] == ("incomplete" if reason else "completed")
    assert document["output"][0]["id"].startswith("msg_")
    SdkResponse.model_validate(document)


def test_custom_tool_input_falls_back_sensibly():
    assert response_items.custom_input({"input": "a"}) == "a"
    assert response_items.custom_input({"patch": "b"}) == "b"
    assert response_items.custom_input({}) == ""
    assert json.loads(response_items.custom_input({"a": 1, "b": 2})) == {"a": 1, "b": 2}


# ----- JSON mode ---------------------------------------------------------------------------------

JSON_BODY = tagged(BASE, text={"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}})


def test_json_mode_render_cuts_the_answer_to_its_json():
    reply = chat.Reply(model="m", parts=[chat.Thinking("plan"), chat.Text('Sure:\n```json\n{"answer": 4}\n```')])
    document = proto.render(reply, body=JSON_BODY, response_id="resp_j", created=CREATED, json_mode=True)
    assert [item["type"] for item in document["output"]] == ["reasoning", "message"]
    assert SdkResponse.model_validate(document).output_text == '{"answer": 4}'
    plain = proto.render(reply, body=JSON_BODY, response_id="resp_j", created=CREATED)
    assert SdkResponse.model_validate(plain).output_text.startswith("Sure:")


def test_json_mode_stream_drops_the_fences():
    events = [{"type": "TextDelta", "text": "```json\n{\"answer\""}, {"type": "TextDelta", "text": ": 4}\n``"},
              {"type": "TextDelta", "text": "`\n"}, {"type": "Finish", "reason": "end_turn"}]
    replay = Replay(encode(events, body=JSON_BODY, json_mode=True))
    assert replay.final["output"][0]["content"][0]["text"] == '{"answer": 4}'
    deltas = [data["delta"] for name, data in replay.events if name == "response.output_text.delta"]
    assert "".join(deltas) == '{"answer": 4}'
    unfiltered = Replay(encode(events, body=JSON_BODY))
    assert unfiltered.final["output"][0]["content"][0]["text"] == '```json\n{"answer": 4}\n```\n'
