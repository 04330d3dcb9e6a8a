"""Property-style tests for kiro.payload over generated messy conversations.

Random role sequences, tool uses/results with reused, missing and foreign ids, empty contents and
odd tool names: every body must pass the independent `validate()` checker.
"""
from __future__ import annotations

import json
import random
from typing import List

import pytest

from kiroproxy import chat
from kiroproxy.errors import TooLarge
from kiroproxy.kiro import payload

from .test_payload import MODEL, build, tool_specs, turns, validate

NAMES = ["read_file", "Read_File", "bash", "mcp__srv__" + "v" * 70, "my tool", "", "\u00fcber", "9lives", "w-f"]
TEXTS = ["hello", "", "   ", "multi\nline", "<thinking>x</thinking>", "\u00e9t\u00e9 \U0001F600", "y" * 1500]
IMAGES = [chat.Image("image/png", "iVBORw0KGgo="), chat.Image("", "data:image/jpg;base64,/9j/4A=="),
          chat.Image("image/bmp", "Qk0="), chat.Image("image/webp", "")]


def random_input(rng: random.Random) -> dict:
    return rng.choice([{}, {"a": 1}, {"": "x", "b": {"": 1, "c": [{"": 2}]}}, {"path": rng.choice(TEXTS)}])


def random_part(rng: random.Random, ids: List[str]) -> chat.Part:
    kind = rng.choice(["text", "text", "image", "thinking", "use", "use", "result", "result"])
    if kind == "text":
        return chat.Text(rng.choice(TEXTS))
    if kind == "image":
        return rng.choice(IMAGES)
    if kind == "thinking":
        return chat.Thinking(rng.choice(TEXTS), rng.choice([None, "sig"]))
    if kind == "use":
        ids.append(rng.choice([f"id{rng.randint(0, 9)}", "", f"id{len(ids)}"]))
        return chat.ToolUse(ids[-1], rng.choice(NAMES), random_input(rng))
    content = tuple(rng.choice([chat.Text(rng.choice(TEXTS)), rng.choice(IMAGES)]) for _ in range(rng.randint(0, 2)))
    return chat.ToolResult(rng.choice(ids + ["ghost", ""]), content, rng.random() < 0.2)


def random_request(rng: random.Random) -> chat.ChatRequest:
    ids: List[str] = []
    messages = tuple(
        chat.Message(rng.choice(["user", "assistant", "user", "assistant", "tool"]),
                     tuple(random_part(rng, ids) for _ in range(rng.randint(0, 4))))
        for _ in range(rng.randint(0, 12)))
    tools = tuple(chat.Tool(n, rng.choice(["", "d", "d", "d", "long " * 2000]),
                            rng.choice([{}, {"type": "object", "properties": {}, "required": [],
                                             "additionalProperties": False}]))
                  for n in rng.sample(NAMES, rng.randint(0, 4))) if rng.random() < 0.7 else ()
    thinking = rng.choice([None, chat.ThinkingConfig("enabled", budget=rng.choice([None, 500, 9000])),
                           chat.ThinkingConfig("adaptive", effort=rng.choice([None, "low", "max"]))])
    return chat.ChatRequest(
        model=MODEL, messages=messages, system=rng.choice(["", "Be brief.", "  "]), tools=tools,
        tool_choice=rng.choice([chat.ToolChoice(), chat.ToolChoice("none"), chat.ToolChoice("required"),
                                chat.ToolChoice("tool", rng.choice(NAMES))]),
        thinking=thinking, response_format=rng.choice([None, chat.ResponseFormat(), chat.ResponseFormat({"a": 1})]))


def client_texts(req: chat.ChatRequest) -> List[str]:
    """Every non-blank text the client sent that must reach the body when nothing is trimmed."""
    texts = [p.text for m in req.messages for p in m.parts if isinstance(p, chat.Text)]
    texts += [p.text for m in req.messages for p in m.parts if isinstance(p, chat.ToolResult)]
    return [t for t in texts if t.strip()]


def check_built(req: chat.ChatRequest, built: payload.Payload, limit: int) -> None:
    validate(built.body, tools_declared=bool(req.tools), max_bytes=limit)
    assert built.trimmed % 2 == 0 and built.trimmed <= 2 * len(req.messages)
    if req.system.strip():
        assert req.system in turns(built.body)[0]["userInputMessage"]["content"]
    for upstream, original in built.tool_names.items():
        assert upstream != original and upstream in [s["name"] for s in tool_specs(built.body)]
    if built.trimmed == 0:
        everything = json.dumps(built.body, ensure_ascii=False)
        for text in client_texts(req):
            assert json.dumps(text, ensure_ascii=False)[1:-1] in everything, f"lost text {text!r}"


@pytest.mark.parametrize("seed", range(400))
def test_generated_conversations_always_satisfy_the_rules(seed):
    rng = random.Random(seed)
    req = random_request(rng)
    native = rng.choice([None, None, ("low", "medium", "high")])
    built = build(req, native_thinking_efforts=native)
    assert built.trimmed == 0
    check_built(req, built, 600_000)


def oversize_request(rng: random.Random):
    """(a generated request with every message padded, a body size limit it may exceed)."""
    req = random_request(rng)
    padded = tuple(chat.Message(m.role, m.parts + (chat.Text("p" * rng.randint(200, 2000)),))
                   for m in req.messages)
    return req.with_messages(padded), rng.randint(3000, 15_000)


@pytest.mark.parametrize("seed", range(200))
def test_generated_oversize_conversations_are_trimmed_within_the_rules(seed):
    req, limit = oversize_request(random.Random(seed))
    padded = req.messages
    try:
        built = build(req, max_body_bytes=limit)
    except TooLarge:
        # Legitimate only if the current message (the trailing run of non-assistant messages,
        # merged) with the system prompt and tools is over the limit on its own.
        start = len(padded)
        while start > 0 and padded[start - 1].role != "assistant":
            start -= 1
        alone = build(req.with_messages(padded[start:])).body
        assert len(json.dumps(alone, ensure_ascii=False, separators=(",", ":")).encode()) > limit
        return
    check_built(req, built, limit)


def test_generated_oversize_conversations_do_get_trimmed():
    """Guards the generator: the trimming property above must exercise trimming."""
    trimmed = 0
    for seed in range(200):
        req, limit = oversize_request(random.Random(seed))
        try:
            trimmed += build(req, max_body_bytes=limit).trimmed > 0
        except TooLarge:
            continue
    assert trimmed >= 40
