"""Gemini request parsing: hostile bodies, allowedFunctionNames, thought signatures coming back, images.

Every malformed body must end as a BadRequest naming the field (a 400), never as another
exception (a 500). Runs without the SDKs, so on Python 3.9 too.
"""
from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from kiroproxy import chat, errors, tokens
from kiroproxy.kiro import payload
from kiroproxy.protocols import gemini_request, gemini_thoughts

MODEL = "gemini-2.5-flash"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAaJPXQAAAABJRU5ErkJggg=="
WRONG = [None, 0, -1, 1.5, True, "", "x", [], [1], ["x"], [None], [{}], {}, {"a": 1}, {"type": None},
         {"properties": [1]}]
SIGNED = gemini_thoughts.signature_out(chat.Thinking("I should read it.", "EqQBCkYIBxgCKkDsig=="))


def rich_body() -> Dict[str, Any]:
    """A body that uses every field the parser reads."""
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
            {"role": "model", "parts": [{"text": "t", "thought": True},
                                        {"functionCall": {"name": "read", "args": {"p": "a"}, "id": "x1"},
                                         "thoughtSignature": SIGNED}]},
            {"role": "function", "parts": [{"functionResponse": {
                "name": "read", "id": "x1", "response": {"output": "ok"},
                "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "sys"}]},
        "tools": [{"functionDeclarations": [
            {"name": "read", "description": "d", "parametersJsonSchema": {
                "type": "OBJECT", "properties": {"p": {"type": "STRING", "enum": ["a"]}}, "required": ["p"]}},
            {"name": "g", "parameters": {"type": "OBJECT", "nullable": True, "properties": {
                "x": {"type": "ARRAY", "items": {"type": "INTEGER"}, "anyOf": [{"type": "STRING"}]}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["read"]}},
        "generationConfig": {
            "temperature": 1, "maxOutputTokens": 100, "stopSequences": ["x"], "candidateCount": 1,
            "responseMimeType": "application/json", "responseJsonSchema": {"type": "OBJECT"},
            "responseSchema": {"type": "OBJECT"},
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": -1, "thinkingLevel": "HIGH"}}}


def paths(node: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from paths(child, path + (key,))


def replaced(node: Any, path: Tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(node)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def survives(body: Any) -> bool:
    """True when parsed and built upstream, False when rejected with a 400; anything else fails."""
    try:
        req = gemini_request.parse(body, model=MODEL, stream=True)
        tokens.count_request(req)
        payload.build(req, model_id="claude-sonnet-4.5")
        gemini_request.parse_count(body, model=MODEL)
    except errors.ProxyError as error:
        assert error.status == 400, (error, body)
        return False
    return True


def test_every_field_with_a_wrong_type_is_parsed_or_rejected_never_crashes():
    base = rich_body()
    outcomes = [survives(replaced(base, path, value)) for path in paths(base) for value in WRONG]
    assert outcomes.count(True) > 100 and outcomes.count(False) > 100


def test_random_bodies_are_parsed_or_rejected_never_crash():
    rng = random.Random(20260502)
    base = rich_body()
    every = list(paths(base))
    for _ in range(500):
        body = base
        for path in rng.sample(every, 3):
            try:
                body = replaced(body, path, rng.choice(WRONG))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier replacement removed the path
        survives(body)


@pytest.mark.parametrize("role", [["user"], {"r": "model"}, 5, True, "assistant", "system"])
def test_a_role_that_is_not_user_or_model_is_a_400_naming_it(role):
    body = {"contents": [{"role": role, "parts": [{"text": "x"}]}]}
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse(body, model=MODEL, stream=False)
    assert str(info.value).startswith("contents.0.role:")


@pytest.mark.parametrize("part, where", [
    ({"text": 5}, "contents.0.parts.0.text"),
    ({"inlineData": "abc"}, "contents.0.parts.0.inlineData"),
    ({"inlineData": {"mimeType": 5, "data": PNG}}, "contents.0.parts.0.inlineData.mimeType"),
    ({"inlineData": {"mimeType": "image/png", "data": "!!!notbase64"}}, "contents.0.parts.0.inlineData.data"),
    ({"inlineData": {"mimeType": "image/png", "data": "abcde"}}, "contents.0.parts.0.inlineData.data"),
    ({"fileData": "gs://x"}, "contents.0.parts.0.fileData"),
])
def test_bad_user_parts_are_400s_naming_the_field(part, where):
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse({"contents": [{"parts": [part]}]}, model=MODEL, stream=False)
    assert str(info.value).startswith(where + ":"), str(info.value)


@pytest.mark.parametrize("part, where", [
    ({"functionCall": "x"}, "contents.1.parts.0.functionCall"),
    ({"functionCall": {"name": "f", "args": "{}"}}, "contents.1.parts.0.functionCall.args"),
    ({"functionCall": {"name": "f", "id": {"a": 1}}}, "contents.1.parts.0.functionCall.id"),
    ({"text": "a", "thoughtSignature": 5}, "contents.1.parts.0.thoughtSignature"),
])
def test_bad_model_parts_are_400s_naming_the_field(part, where):
    body = {"contents": [{"parts": [{"text": "q"}]}, {"role": "model", "parts": [part]}]}
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse(body, model=MODEL, stream=False)
    assert str(info.value).startswith(where + ":"), str(info.value)


@pytest.mark.parametrize("config, where", [
    ({"thinkingConfig": [1]}, "generationConfig.thinkingConfig"),
    ({"thinkingConfig": {"thinkingBudget": "big"}}, "generationConfig.thinkingConfig.thinkingBudget"),
    ({"thinkingConfig": {"thinkingBudget": -5}}, "generationConfig.thinkingConfig.thinkingBudget"),
    ({"thinkingConfig": {"thinkingLevel": 5}}, "generationConfig.thinkingConfig.thinkingLevel"),
    ({"thinkingConfig": {"includeThoughts": "yes"}}, "generationConfig.thinkingConfig.includeThoughts"),
    ({"responseMimeType": 5}, "generationConfig.responseMimeType"),
    ({"responseMimeType": "application/json", "responseJsonSchema": [1]}, "generationConfig.responseJsonSchema"),
    ({"responseSchema": "OBJECT"}, "generationConfig.responseSchema"),
    ({"candidateCount": True}, "generationConfig.candidateCount"),
])
def test_bad_generation_config_is_a_400_naming_the_field(config, where):
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config},
                             model=MODEL, stream=False)
    assert str(info.value).startswith(where + ":"), str(info.value)


def test_a_schema_nested_past_the_stack_is_a_400():
    schema: Dict[str, Any] = {"type": "string"}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    body = {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [
        {"name": "f", "parameters": schema}]}]}
    with pytest.raises(errors.BadRequest, match="nests too deeply"):
        gemini_request.parse(body, model=MODEL, stream=False)


# ----- allowedFunctionNames --------------------------------------------------------------------

ABC = [{"functionDeclarations": [{"name": "a", "description": "A"}, {"name": "b"}, {"name": "c"}]}]


def calling(mode: str, allowed: Any = None, contents: Any = None) -> chat.ChatRequest:
    config: Dict[str, Any] = {"mode": mode}
    if allowed is not None:
        config["allowedFunctionNames"] = allowed
    body = {"contents": contents or [{"parts": [{"text": "go"}]}], "tools": ABC,
            "toolConfig": {"functionCallingConfig": config}}
    return gemini_request.parse(body, model=MODEL, stream=False)


def upstream_tools(req: chat.ChatRequest) -> List[Tuple[str, str]]:
    body = payload.build(req, model_id="claude-sonnet-4.5").body
    context = body["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    return [(t["toolSpecification"]["name"], t["toolSpecification"]["description"]) for t in context["tools"]]


@pytest.mark.parametrize("mode, allowed, names, choice", [
    ("ANY", ["a", "b"], ["a", "b"], chat.ToolChoice("required")),
    ("any", ["b", "zzz"], ["b"], chat.ToolChoice("tool", "b")),
    ("AUTO", ["a", "b"], ["a", "b"], chat.ToolChoice()),
    ("VALIDATED", ["c"], ["c"], chat.ToolChoice()),
    ("ANY", None, ["a", "b", "c"], chat.ToolChoice("required")),
    ("ANY", [], ["a", "b", "c"], chat.ToolChoice("required")),
    ("NONE", ["a"], ["a", "b", "c"], chat.ToolChoice("none")),
])
def test_only_the_allowed_functions_are_offered(mode, allowed, names, choice):
    req = calling(mode, allowed)
    assert ([t.name for t in req.tools], req.tool_choice, req.system) == (names, choice, "")
    assert [name for name, _ in upstream_tools(req)] == names


def test_a_disallowed_function_the_history_used_stays_a_stub_and_the_model_is_told():
    contents = [{"parts": [{"text": "go"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "c", "args": {"n": 1}, "id": "k1"}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "c", "id": "k1", "response": {}}}]}]
    req = calling("ANY", ["a", "b"], contents)
    assert [t.name for t in req.tools] == ["a", "b"]
    assert req.system == "In this reply you may call only these functions: a, b."
    assert upstream_tools(req) == [("a", "A"), ("b", "The b tool."), ("c", payload.STUB_DESCRIPTION)]
    body = payload.build(req, model_id="claude-sonnet-4.5").body
    assert body["conversationState"]["history"][-1]["assistantResponseMessage"]["toolUses"][0]["name"] == "c"


@pytest.mark.parametrize("allowed", ["a", [5], ["zzz"], [""]])
def test_allowed_names_that_are_not_a_list_of_declared_names_are_a_400(allowed):
    with pytest.raises(errors.BadRequest) as info:
        calling("ANY", allowed)
    assert str(info.value).startswith("toolConfig.functionCallingConfig.allowedFunctionNames:")


@pytest.mark.parametrize("config, where", [
    ([1], "toolConfig"), ({"functionCallingConfig": [1]}, "toolConfig.functionCallingConfig"),
    ({"functionCallingConfig": {"mode": 3}}, "toolConfig.functionCallingConfig.mode")])
def test_a_malformed_tool_config_is_a_400(config, where):
    body = {"contents": [{"parts": [{"text": "x"}]}], "tools": ABC, "toolConfig": config}
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse(body, model=MODEL, stream=False)
    assert str(info.value).startswith(where + ":")


# ----- thought signatures coming back ----------------------------------------------------------


def model_turn(*parts: Dict[str, Any]) -> chat.Message:
    body = {"contents": [{"parts": [{"text": "q"}]}, {"role": "model", "parts": list(parts)}]}
    return gemini_request.parse(body, model=MODEL, stream=False).messages[1]


def test_gemini_cli_history_gets_the_reasoning_back_from_the_call_signature():
    """Gemini CLI drops thought parts and keeps the signature on the functionCall."""
    turn = model_turn({"functionCall": {"id": "c1", "name": "read", "args": {}}, "thoughtSignature": SIGNED})
    assert turn.parts == (chat.Thinking("I should read it.", "EqQBCkYIBxgCKkDsig=="), chat.ToolUse("c1", "read", {}))


def test_sdk_history_keeps_its_own_thought_text_once():
    """The SDKs keep thought parts (in pieces, as streamed) and the signed answer after them."""
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(SIGNED)).decode().rstrip("=")
    turn = model_turn({"text": "I should ", "thought": True}, {"text": "read it.", "thought": True},
                      {"text": "Reading.", "thoughtSignature": urlsafe}, {"text": " Now."})
    assert turn.parts == (chat.Thinking("I should read it.", "EqQBCkYIBxgCKkDsig=="), chat.Text("Reading."),
                          chat.Text(" Now."))


def test_older_signatures_on_thought_parts_still_count():
    legacy = base64.b64encode(gemini_thoughts.LEGACY_WRAP + b"sig with spaces").decode()
    turn = model_turn({"text": "hmm", "thought": True, "thoughtSignature": "EqQBCkYIBxgCKkDsig=="},
                      {"text": "", "thought": True, "thoughtSignature": legacy}, {"text": "ok"})
    assert turn.parts == (chat.Thinking("hmm", "EqQBCkYIBxgCKkDsig=="), chat.Thinking("", "sig with spaces"),
                          chat.Text("ok"))


@pytest.mark.parametrize("signature", ["skip_thought_signature_validator", ""])
def test_placeholder_signatures_add_nothing(signature):
    turn = model_turn({"functionCall": {"name": "read", "args": {}}, "thoughtSignature": signature})
    assert [type(p) for p in turn.parts] == [chat.ToolUse]


def test_signatures_on_user_parts_are_ignored():
    body = {"contents": [{"parts": [{"text": "q", "thoughtSignature": SIGNED}]}]}
    assert gemini_request.parse(body, model=MODEL, stream=False).messages[0].parts == (chat.Text("q"),)


def test_the_replayed_turn_carries_its_reasoning_upstream_in_prompt_thinking():
    body = {"contents": [{"parts": [{"text": "q"}]},
                         {"role": "model", "parts": [{"text": "Done.", "thoughtSignature": SIGNED}]},
                         {"parts": [{"text": "again"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    req = gemini_request.parse(body, model=MODEL, stream=False)
    sent = payload.build(req, model_id="claude-sonnet-4.5").body["conversationState"]["history"][-1]
    assert sent["assistantResponseMessage"]["content"] == "<thinking>I should read it.</thinking>\n\nDone."


# ----- thinking config and images ----------------------------------------------------------------


@pytest.mark.parametrize("config, thinking, shown", [
    ({"includeThoughts": False, "thinkingBudget": 2048}, chat.ThinkingConfig("enabled", budget=2048), False),
    ({"thinkingBudget": 2048}, chat.ThinkingConfig("enabled", budget=2048), False),
    ({"includeThoughts": True}, chat.ThinkingConfig("adaptive"), True),
    ({"include_thoughts": True, "thinking_budget": 0}, None, True),
    ({}, None, False),
])
def test_include_thoughts_only_decides_what_is_shown(config, thinking, shown):
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": config}}
    assert gemini_request.parse(body, model=MODEL, stream=False).thinking == thinking
    assert gemini_request.include_thoughts(body) is shown


@pytest.mark.parametrize("body", [None, [], {"generationConfig": 5}, {"generationConfig": {"thinkingConfig": 5}}])
def test_include_thoughts_is_false_for_anything_else(body):
    assert gemini_request.include_thoughts(body) is False


@pytest.mark.parametrize("data", [
    PNG, PNG.rstrip("="), PNG.replace("+", "-").replace("/", "_"),
    "\n".join(PNG[i:i + 20] for i in range(0, len(PNG), 20))])
def test_image_data_is_forwarded_as_standard_base64(data):
    body = {"contents": [{"parts": [{"inlineData": {"mime_type": "image/png", "data": data}}]}]}
    (image,) = gemini_request.parse(body, model=MODEL, stream=False).messages[0].parts
    assert image == chat.Image("image/png", PNG)
    assert base64.b64decode(image.data).startswith(b"\x89PNG")


def test_bad_base64_in_a_function_response_image_is_named():
    body = json.loads(json.dumps(rich_body()))
    body["contents"][2]["parts"][0]["functionResponse"]["parts"][0]["inlineData"]["data"] = "**"
    with pytest.raises(errors.BadRequest) as info:
        gemini_request.parse(body, model=MODEL, stream=False)
    assert str(info.value) == ("contents.2.parts.0.functionResponse.parts.0.inlineData.data: "
                               "the image data is not valid base64")
