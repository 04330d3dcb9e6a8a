"""Anthropic parsing against hostile bodies (wrong types anywhere), and thinking-block signatures.

Every malformed body must end as a BadRequest naming the field (a 400), never as another
exception (a 500). Thinking blocks must end with one signature_delta (client-protocols.md §3).
"""
from __future__ import annotations

import json
import random
from typing import Any, Dict, List

import pytest

from kiroproxy import chat, errors, tokens
from kiroproxy.kiro import payload
from kiroproxy.protocols import anthropic as proto
from tests.factories import anthropic_body
from tests.golden import event_frames

WRONG = [None, 0, 7, -1, 1.5, True, "", "x", [], {}, [1], ["s"], {"a": 1}, [{}], [None], [{"type": "text"}]]
BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", None, 5]
BLOCK_FIELDS = ["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking",
                "signature", "title", "cache_control"]
TOP_FIELDS = ["system", "tools", "tool_choice", "thinking", "stop_sequences", "output_config", "temperature",
              "metadata", "stream", "max_tokens", "model"]


def user(*blocks: Any) -> Dict[str, Any]:
    return anthropic_body(messages=[{"role": "user", "content": list(blocks)}])


def value(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.3:
        if rng.random() < 0.5:
            return {rng.choice(BLOCK_FIELDS + ["type", "data", "media_type", "url"]): value(rng, depth + 1)
                    for _ in range(rng.randint(0, 4))}
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(WRONG)


def block(rng: random.Random) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": rng.choice(BLOCK_TYPES)}
    for name in rng.sample(BLOCK_FIELDS, rng.randint(0, 4)):
        out[name] = value(rng)
    if out["type"] in ("image", "document"):
        out["source"] = rng.choice([value(rng), {
            "type": rng.choice(["base64", "url", "text", "file", None, 5]), "data": value(rng),
            "media_type": value(rng), "url": value(rng)}])
    return out


def hostile_body(rng: random.Random) -> Dict[str, Any]:
    body = anthropic_body()
    body["messages"] = [{"role": rng.choice(["user", "assistant", "system", 3]),
                         "content": rng.choice([value(rng), [block(rng) for _ in range(rng.randint(0, 3))]])}
                        for _ in range(rng.randint(1, 3))]
    for name in rng.sample(TOP_FIELDS, rng.randint(0, 4)):
        body[name] = rng.choice([value(rng), [{"name": value(rng), "input_schema": value(rng),
                                               "description": value(rng), "type": value(rng)}]])
    return body


def test_fuzzed_bodies_are_parsed_or_rejected_never_crash():
    rng = random.Random(20260501)
    accepted = rejected = 0
    for _ in range(3000):
        body = hostile_body(rng)
        try:
            req = proto.parse(body)
            tokens.count_request(req)
            payload.build(req, model_id="claude-sonnet-4.5")
            accepted += 1
        except errors.ProxyError as error:
            assert error.status == 400, (error, body)
            rejected += 1
    assert accepted > 100 and rejected > 100  # the generator reaches both outcomes


@pytest.mark.parametrize("source", ["x", 5, ["a"], True])
def test_document_source_that_is_not_an_object_is_a_400_naming_it(source):
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(user({"type": "document", "source": source}))
    assert str(info.value).startswith("messages.0.content.0.source:")
    assert proto.error_body(info.value)[0] == 400


def test_document_without_a_source_or_with_text_still_parses():
    req = proto.parse(user({"type": "document", "title": 7},
                           {"type": "document", "source": {"type": "text", "data": "the text"}}))
    assert [p.text for p in req.messages[0].parts][1] == "the text"
    assert "document" in req.messages[0].parts[0].text


@pytest.mark.parametrize("bad_block, field", [
    ({"type": "tool_use", "id": {"a": 1}, "name": "Read", "input": {}}, "messages.0.content.0"),
    ({"type": "tool_use", "id": "t1", "name": ["Read"], "input": {}}, "messages.0.content.0"),
    ({"type": "tool_result", "tool_use_id": 5, "content": "x"}, "messages.0.content.0.tool_use_id"),
    ({"type": "image", "source": {"type": "base64", "media_type": 5, "data": "aGk="}},
     "messages.0.content.0.source.media_type"),
])
def test_wrongly_typed_block_fields_are_400s_naming_the_field(bad_block, field):
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(user(bad_block))
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_in_list_system_message_of_the_wrong_type_names_its_own_field():
    body = anthropic_body(messages=[{"role": "system", "content": {"a": 1}}, {"role": "user", "content": "hi"}])
    with pytest.raises(errors.BadRequest) as info:
        proto.parse(body)
    assert str(info.value).startswith("messages.0.content:")


def test_boolean_thinking_budget_is_no_budget():
    req = proto.parse(anthropic_body(thinking={"type": "enabled", "budget_tokens": True}))
    assert req.thinking is not None and req.thinking.budget is None


# ----- thinking signatures -----------------------------------------------------------------------


def frames(*events: chat.Event) -> List[tuple]:
    stream = chat.Stream(iter(events), model="m", input_tokens=3)
    return event_frames(b"".join(proto.encode_stream(stream, model="m", message_id="msg_1")))


def thinking_block_deltas(body: List[tuple]) -> List[Dict[str, Any]]:
    """The deltas of content block 0 (a thinking block), up to its content_block_stop."""
    deltas = []
    for name, data in body:
        if name == "content_block_stop" and data["index"] == 0:
            return deltas
        if name == "content_block_delta" and data["index"] == 0:
            deltas.append(data["delta"])
    raise AssertionError("block 0 never stopped")


@pytest.mark.parametrize("after", [
    [chat.TextDelta("Answer"), chat.Finish("end_turn")],
    [chat.ToolCallStart("t1", "Read"), chat.ToolCallDelta("t1", "{}"), chat.ToolCallEnd("t1", {}),
     chat.Finish("tool_use")],
    [chat.Finish("max_tokens")],
], ids=["then-text", "then-tool", "then-finish"])
def test_tag_thinking_gets_one_signature_delta_before_its_stop(after):
    deltas = thinking_block_deltas(frames(chat.ThinkingDelta("I reason"), *after))
    assert [d["type"] for d in deltas] == ["thinking_delta", "signature_delta"]
    assert deltas[-1]["signature"]  # a non-empty placeholder, as the SDK types expect


def test_a_real_signature_is_the_only_signature_delta():
    body = frames(chat.ThinkingDelta("I reason"), chat.ThinkingSignature("EqQBsig=="), chat.TextDelta("A"),
                  chat.Finish("end_turn"))
    deltas = thinking_block_deltas(body)
    assert [(d["type"], d.get("signature")) for d in deltas] == [("thinking_delta", None),
                                                                 ("signature_delta", "EqQBsig==")]
    assert sum(1 for _, data in body if data.get("delta", {}).get("type") == "signature_delta") == 1


def test_a_new_thinking_block_after_a_signed_one_is_signed_again():
    body = frames(chat.ThinkingDelta("one"), chat.ThinkingSignature("sig-1"), chat.ThinkingDelta("two"),
                  chat.TextDelta("A"), chat.Finish("end_turn"))
    signatures = [(data["index"], data["delta"]["signature"]) for name, data in body
                  if name == "content_block_delta" and data["delta"]["type"] == "signature_delta"]
    assert signatures == [(0, "sig-1"), (1, proto.UNSIGNED)]


def test_the_placeholder_signature_never_travels_upstream():
    """Clients echo thinking blocks back with their signature: the placeholder is dropped at
    parse time, so no payload (prompt-tag or native thinking) can carry it to Kiro."""
    rendered = proto.render(chat.Reply(model="m", parts=[chat.Thinking("I reason"), chat.Text("A")]), model="m")
    assert rendered["content"][0]["signature"] == proto.UNSIGNED
    body = anthropic_body(messages=[{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": rendered["content"]},
                                    {"role": "user", "content": "next"}],
                          thinking={"type": "enabled", "budget_tokens": 2048})
    req = proto.parse(body)
    assert req.messages[1].parts[0] == chat.Thinking("I reason", None)
    for efforts in (None, ("low", "high")):
        built = payload.build(req, model_id="claude-sonnet-4.5", native_thinking_efforts=efforts)
        assert proto.UNSIGNED not in json.dumps(built.body)


def test_real_signatures_still_reach_the_chat_model():
    body = anthropic_body(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "t", "signature": "EqQBsig=="}, {"type": "text", "text": "a"}]},
        {"role": "user", "content": "next"}])
    assert proto.parse(body).messages[1].parts[0] == chat.Thinking("t", "EqQBsig==")
