"""Tests for kiro.payload: golden bodies and targeted rules.

`validate()` re-checks the rules of the upstream reference (§3, §3.1, §3.3) on the produced JSON
without using any code of the builder; test_payload_generated.py runs it on messy conversations.
"""
from __future__ import annotations

import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import List, Optional

import pytest

from kiroproxy import chat
from kiroproxy.errors import TooLarge
from kiroproxy.kiro import payload

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "payload"
CASES = [
    "simple_text", "system_history", "tool_round_trip", "image_data_url", "thinking_enabled",
    "thinking_adaptive", "merge_same_role", "orphan_tool_result", "unanswered_tool_use",
    "last_from_assistant", "no_tools_history_calls", "renamed_tool_name", "schema_cleanup", "json_mode",
    "tool_choice_none", "tool_choice_required", "tool_choice_tool", "oversize_trimming", "native_thinking",
]
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
MODEL = "claude-sonnet-4.5"
CID = "11111111-2222-4333-8444-555555555555"

# ----- builders --------------------------------------------------------------------------------

PART_TYPES = {"text": chat.Text, "image": chat.Image, "thinking": chat.Thinking,
              "tool_use": chat.ToolUse, "tool_result": chat.ToolResult}


def part_from_json(data: dict) -> chat.Part:
    fields = {k: v for k, v in data.items() if k != "type"}
    if data["type"] == "tool_result":
        fields["content"] = tuple(part_from_json(p) for p in fields["content"])
    return PART_TYPES[data["type"]](**fields)


def request_from_json(data: dict):
    """(ChatRequest, build kwargs) from a golden `<case>.request.json`."""
    optional = {"thinking": chat.ThinkingConfig, "response_format": chat.ResponseFormat}
    req = chat.ChatRequest(
        model=data["model"], system=data.get("system", ""),
        messages=tuple(chat.Message(m["role"], tuple(part_from_json(p) for p in m["parts"]))
                       for m in data["messages"]),
        tools=tuple(chat.Tool(**t) for t in data.get("tools", ())),
        tool_choice=chat.ToolChoice(**data.get("tool_choice", {})),
        **{k: cls(**data[k]) for k, cls in optional.items() if k in data})
    return req, dict(data["build"])


def as_parts(parts) -> tuple:
    return tuple(chat.Text(p) if isinstance(p, str) else p for p in parts)


def user(*parts) -> chat.Message:
    return chat.Message("user", as_parts(parts))


def assistant(*parts) -> chat.Message:
    return chat.Message("assistant", as_parts(parts))


def use(id: str, name: str, **arguments) -> chat.ToolUse:
    return chat.ToolUse(id, name, arguments)


def result(id: str, text: str, is_error: bool = False) -> chat.ToolResult:
    return chat.ToolResult(id, (chat.Text(text),), is_error)


def tool(name: str, description: str = "A tool", schema: Optional[dict] = None) -> chat.Tool:
    return chat.Tool(name, description, schema if schema is not None else {"type": "object"})


def request(*messages: chat.Message, **fields) -> chat.ChatRequest:
    return chat.ChatRequest(model=MODEL, messages=messages, **fields)


def build(req: chat.ChatRequest, **kwargs) -> payload.Payload:
    return payload.build(req, **{"model_id": MODEL, "conversation_id": CID, **kwargs})


def state(body: dict) -> dict:
    return body["conversationState"]


def current(body: dict) -> dict:
    return state(body)["currentMessage"]["userInputMessage"]


def turns(body: dict) -> List[dict]:
    return state(body).get("history", []) + [state(body)["currentMessage"]]


def tool_specs(body: dict) -> List[dict]:
    specs = current(body).get("userInputMessageContext", {}).get("tools", [])
    return [s["toolSpecification"] for s in specs]


# ----- the independent checker -----------------------------------------------------------------


def check_no_null_or_empty(value, path="body"):
    """No null members, empty objects or arrays in the envelope (tool inputs/schemas are data)."""
    if isinstance(value, dict):
        for key, member in value.items():
            assert member is not None, f"{path}.{key} is null"
            if key in ("input", "json"):
                continue  # a call without arguments has input {}: that is data, not an empty member
            assert member != {} and member != [], f"{path}.{key} is empty"
            check_no_null_or_empty(member, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_no_null_or_empty(item, f"{path}[{index}]")


def check_no_empty_keys(value):
    if isinstance(value, dict):
        assert "" not in value, "empty-string key in a tool input"
        for member in value.values():
            check_no_empty_keys(member)
    elif isinstance(value, list):
        for item in value:
            check_no_empty_keys(item)


def check_schema(schema):
    """Schema keywords only: the keys of `properties` are names, and a name may be "$schema"."""
    if isinstance(schema, list):
        for item in schema:
            check_schema(item)
    if not isinstance(schema, dict):
        return
    assert "additionalProperties" not in schema and "$schema" not in schema
    assert schema.get("required", ["x"]) != [] and schema.get("properties", {"x": 1}) != {}
    for key, member in schema.items():
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(member, dict):
            for subschema in member.values():
                check_schema(subschema)
        elif key not in ("enum", "const", "default", "examples"):
            check_schema(member)


def check_tools(body: dict) -> List[str]:
    specs = tool_specs(body)
    names = [s["name"] for s in specs]
    for spec in specs:
        assert NAME_RE.match(spec["name"]) and len(spec["name"]) <= 64, spec["name"]
        assert spec["description"].strip() and len(spec["description"]) <= 10_000
        assert spec["inputSchema"]["json"].get("type") == "object"
        check_schema(spec["inputSchema"]["json"])
    assert len({n.lower() for n in names}) == len(names), f"names collide ignoring case: {names}"
    return names


def check_user(message: dict, expected_ids: List[str]):
    assert message["content"].strip(), "empty user content"
    assert message["modelId"] == MODEL and message["origin"]
    for image in message.get("images", []):
        assert image["format"] in IMAGE_FORMATS
        assert image["source"]["bytes"] and not image["source"]["bytes"].startswith("data:")
    results = message.get("userInputMessageContext", {}).get("toolResults", [])
    ids = [r["toolUseId"] for r in results]
    assert len(ids) == len(set(ids)), f"duplicate toolUseId in results {ids}"
    assert set(ids) == set(expected_ids), f"results {ids} do not answer the uses {expected_ids}"
    for item in results:
        assert item["status"] in ("success", "error")
        assert item["content"] and all(block["text"].strip() for block in item["content"])


def validate(body: dict, *, tools_declared: bool, max_bytes: int = 600_000) -> None:
    """Assert every rule of the upstream reference on a produced body."""
    assert set(body) <= {"conversationState", "profileArn", "additionalModelRequestFields"}
    check_no_null_or_empty(body)
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    assert size <= max_bytes
    conversation = state(body)
    assert conversation["conversationId"] and conversation["chatTriggerType"] == "MANUAL"
    assert conversation["agentTaskType"] == "vibe"
    sequence = turns(body)
    assert all(len(t) == 1 for t in sequence)
    roles = [next(iter(t)) for t in sequence]
    pairs = (len(sequence) - 1) // 2
    assert roles == ["userInputMessage", "assistantResponseMessage"] * pairs + ["userInputMessage"], roles
    declared = check_tools(body)
    assert bool(declared) == tools_declared
    pending: List[str] = []
    for entry in sequence:
        if "userInputMessage" in entry:
            check_user(entry["userInputMessage"], pending)
            pending = []
            continue
        message = entry["assistantResponseMessage"]
        assert message["content"].strip(), "empty assistant content"
        pending = [u["toolUseId"] for u in message.get("toolUses", [])]
        assert len(pending) == len(set(pending)), "duplicate toolUseId in one assistant turn"
        for tool_use in message.get("toolUses", []):
            assert tool_use["name"] in declared, f"undeclared tool {tool_use['name']}"
            assert isinstance(tool_use["input"], dict)
            check_no_empty_keys(tool_use["input"])


# ----- goldens ---------------------------------------------------------------------------------


def test_every_golden_case_has_a_request():
    assert sorted(p.name[:-len(".request.json")] for p in GOLDEN.glob("*.request.json")) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    req, kwargs = request_from_json(json.loads((GOLDEN / f"{case}.request.json").read_text("utf-8")))
    built = payload.build(req, **kwargs)
    expected_path = GOLDEN / f"{case}.kiro.json"
    if os.environ.get("KIROPROXY_UPDATE_GOLDEN") == "1":
        expected_path.write_text(json.dumps(built.body, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert built.body == json.loads(expected_path.read_text("utf-8"))
    validate(built.body, tools_declared=bool(req.tools), max_bytes=kwargs.get("max_body_bytes", 600_000))


def test_tool_round_trip_matches_the_reference_example():
    req, kwargs = request_from_json(json.loads((GOLDEN / "tool_round_trip.request.json").read_text("utf-8")))
    body = payload.build(req, **kwargs).body
    model = {"modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}
    assert body == {"conversationState": {
        "conversationId": "00000000-0000-4000-8000-000000000003", "chatTriggerType": "MANUAL",
        "agentTaskType": "vibe",
        "history": [
            {"userInputMessage": {"content": "SYSTEM TEXT\n\nFirst question", **model}},
            {"assistantResponseMessage": {"content": "Let me look.", "toolUses": [
                {"toolUseId": "tooluse_abc", "name": "read_file", "input": {"path": "a.py"}}]}}],
        "currentMessage": {"userInputMessage": {
            "content": "Tool results provided.", **model,
            "images": [{"format": "png", "source": {"bytes": "iVBORw0KGgo…"}}],
            "userInputMessageContext": {
                "tools": [{"toolSpecification": {"name": "read_file", "description": "Read a file",
                           "inputSchema": {"json": {"type": "object", "properties": {"path": {"type": "string"}},
                                                    "required": ["path"]}}}}],
                "toolResults": [{"toolUseId": "tooluse_abc", "status": "success",
                                 "content": [{"text": "print(1)"}]}]}}}},
        "profileArn": "arn:aws:codewhisperer:us-east-1:123456789012:profile/ABCDEF"}


def test_golden_trimming_drops_two_pairs_and_keeps_the_system_prompt():
    req, kwargs = request_from_json(json.loads((GOLDEN / "oversize_trimming.request.json").read_text("utf-8")))
    built = payload.build(req, **kwargs)
    assert built.trimmed == 4
    first = state(built.body)["history"][0]["userInputMessage"]["content"]
    # The result answered a dropped turn, so it is text now, after the re-attached system prompt.
    assert first.startswith("SYSTEM TEXT\n\n[Tool result for toolu_1]: zzz")


# ----- targeted rules --------------------------------------------------------------------------


def test_defaults_conversation_id_and_omits_unknown_profile():
    body = payload.build(request(user("hi")), model_id=MODEL).body
    assert uuid.UUID(state(body)["conversationId"]).version == 4
    assert "profileArn" not in body and "history" not in state(body)


def test_output_is_deterministic_for_a_given_conversation_id():
    req = request(user("a"), assistant(use("t1", "x" * 80)), user(result("t1", "r")), tools=(tool("x" * 80),))
    assert build(req) == build(req)


def test_no_messages_sends_continue_after_the_system_prompt():
    assert current(build(request(system="Sys")).body)["content"] == "Sys\n\nContinue"


def test_long_and_invalid_names_are_mapped_everywhere_and_reported():
    long_name = "n" * 80
    req = request(user("go"), assistant(use("t1", long_name, a=1)), user(result("t1", "ok")),
                  tools=(tool(long_name), tool("bad name!"), tool("ok_name")))
    built = build(req)
    names = [s["name"] for s in tool_specs(built.body)]
    assert names[2] == "ok_name"
    assert all(len(n) <= 64 and NAME_RE.match(n) for n in names)
    assert built.tool_names == {names[0]: long_name, names[1]: "bad name!"}
    assert state(built.body)["history"][1]["assistantResponseMessage"]["toolUses"][0]["name"] == names[0]


def test_case_insensitive_duplicates_get_distinct_names():
    built = build(request(user("go"), tools=(tool("Bash"), tool("bash"), tool("BASH"))))
    names = [s["name"] for s in tool_specs(built.body)]
    assert names[0] == "Bash" and len({n.lower() for n in names}) == 3
    assert set(built.tool_names.values()) == {"bash", "BASH"}


def test_undeclared_history_tool_gets_a_stub_declaration():
    req = request(user("go"), assistant(use("t1", "gone")), user(result("t1", "ok")), tools=(tool("other"),))
    specs = tool_specs(build(req).body)
    assert [s["name"] for s in specs] == ["other", "gone"]
    assert specs[1]["description"].strip() and specs[1]["inputSchema"] == {"json": {"type": "object"}}


def test_overlong_description_moves_into_the_system_prompt():
    description = "start " + "d" * 12_000 + " end"
    built = build(request(user("go"), system="Sys", tools=(tool("big", description),)))
    spec = tool_specs(built.body)[0]
    assert len(spec["description"]) <= 9000 and spec["description"].startswith("start ddd")
    content = current(built.body)["content"]
    assert content.startswith("Sys\n\n") and "big" in content.split(description)[0]
    assert description in content and content.endswith("\n\ngo")


def test_empty_keys_are_removed_from_tool_inputs_at_any_depth():
    tool_input = {"": 1, "a": {"": 2, "b": [{"": 3, "c": 4}]}}
    req = request(user("go"), assistant(chat.ToolUse("t1", "x", tool_input)), user(result("t1", "ok")),
                  tools=(tool("x"),))
    tool_use = state(build(req).body)["history"][1]["assistantResponseMessage"]["toolUses"][0]
    assert tool_use["input"] == {"a": {"b": [{"c": 4}]}}


def test_duplicate_tool_use_ids_in_one_turn_are_sent_once():
    req = request(user("go"), assistant(use("t1", "x", a=1), use("t1", "x", a=2)), user(result("t1", "r")),
                  tools=(tool("x"),))
    tool_uses = state(build(req).body)["history"][1]["assistantResponseMessage"]["toolUses"]
    assert tool_uses == [{"toolUseId": "t1", "name": "x", "input": {"a": 1}}]


def test_tool_result_status_and_empty_output():
    req = request(user("go"), assistant(use("t1", "x"), use("t2", "x")),
                  user(result("t1", "boom", is_error=True), result("t2", "  ")), tools=(tool("x"),))
    results = current(build(req).body)["userInputMessageContext"]["toolResults"]
    assert results == [{"toolUseId": "t1", "status": "error", "content": [{"text": "boom"}]},
                       {"toolUseId": "t2", "status": "success", "content": [{"text": "(empty result)"}]}]


@pytest.mark.parametrize("budget, expected", [(None, 16000), (10, 1024), (5000, 5000), (10**6, 24576)])
def test_prompt_thinking_budget_is_clamped(budget, expected):
    req = request(user("hi"), thinking=chat.ThinkingConfig("enabled", budget=budget))
    assert current(build(req).body)["content"] == (
        f"<thinking_mode>enabled</thinking_mode><max_thinking_length>{expected}</max_thinking_length>\n\nhi")


@pytest.mark.parametrize("effort, expected", [(None, "high"), ("low", "low"), ("max", "high"), ("minimal", "low")])
def test_prompt_thinking_effort(effort, expected):
    req = request(user("hi"), thinking=chat.ThinkingConfig("adaptive", effort=effort))
    assert current(build(req).body)["content"].startswith(
        f"<thinking_mode>adaptive</thinking_mode><thinking_effort>{expected}</thinking_effort>\n\n")


def test_thinking_tags_are_not_duplicated():
    text = "<thinking_mode>enabled</thinking_mode> hi"
    req = request(user(text), thinking=chat.ThinkingConfig("enabled"))
    assert current(build(req).body)["content"] == text


def test_history_thinking_is_dropped_without_prompt_thinking():
    req = request(user("q"), assistant(chat.Thinking("secret", "sig"), "answer"), user("next"))
    assert state(build(req).body)["history"][1] == {"assistantResponseMessage": {"content": "answer"}}


@pytest.mark.parametrize("thinking, allowed, expected", [
    (chat.ThinkingConfig("enabled", budget=4096), ("low", "medium", "high"), "low"),
    (chat.ThinkingConfig("enabled", budget=4097), ("low", "medium", "high"), "medium"),
    (chat.ThinkingConfig("enabled", budget=16384), ("low", "medium", "high"), "medium"),
    (chat.ThinkingConfig("enabled", budget=65536), ("low", "medium", "high", "max"), "high"),
    (chat.ThinkingConfig("enabled", budget=100_000), ("low", "medium", "high", "xhigh", "max"), "max"),
    (chat.ThinkingConfig("enabled", budget=100_000), ("low", "medium"), "medium"),
    (chat.ThinkingConfig("adaptive", effort="max"), ("low", "medium", "high"), "high"),
    (chat.ThinkingConfig("adaptive", effort="low"), ("medium", "high"), "medium"),
    (chat.ThinkingConfig("adaptive"), ("low", "medium", "high", "xhigh", "max"), "high"),
])
def test_native_thinking_effort(thinking, allowed, expected):
    body = build(request(user("hi"), thinking=thinking), native_thinking_efforts=allowed).body
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "adaptive", "display": "summarized"},
                                                    "output_config": {"effort": expected}}
    assert current(body)["content"] == "hi"


def test_native_thinking_without_an_effort_list_omits_output_config():
    req = request(user("hi"), thinking=chat.ThinkingConfig("enabled"))
    assert build(req, native_thinking_efforts=()).body["additionalModelRequestFields"] == {
        "thinking": {"type": "adaptive", "display": "summarized"}}


def test_tool_choice_none_keeps_declarations():
    built = build(request(user("hi"), tools=(tool("x"),), tool_choice=chat.ToolChoice("none")))
    assert [s["name"] for s in tool_specs(built.body)] == ["x"]
    assert "Do not call any tools" in current(built.body)["content"]


def test_current_message_alone_too_large_raises():
    with pytest.raises(TooLarge, match="3000-byte limit"):
        build(request(user("q"), assistant("a"), user("x" * 4000)), max_body_bytes=3000)


def test_many_tools_are_kept_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="kiroproxy.kiro.payload"):
        built = build(request(user("hi"), tools=tuple(tool(f"t{i}") for i in range(60))))
    assert len(tool_specs(built.body)) == 60
    assert any("60 tools" in r.getMessage() for r in caplog.records)
