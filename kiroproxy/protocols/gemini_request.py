"""Gemini API request bodies (generateContent, countTokens) -> the neutral ChatRequest.

Accepts camelCase and snake_case field names, OpenAPI-style and plain JSON Schema declarations,
and the function-call ids and thought signatures Gemini CLI sends. Pure: no Flask, no I/O.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from .. import chat
from ..errors import BadRequest

ROLES = {"user": "user", "function": "user", "model": "assistant"}
# Placeholders Gemini CLI (and Google's docs) put where a real signature is missing.
DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
# Signatures that are not base64 are wrapped on the way out (the Python SDK decodes the field as
# base64) and unwrapped when a client sends them back.
SIGNATURE_WRAP = b"\x00kiroproxy-signature\x00"
# Gemini's OpenAPI-subset schema keywords written in snake_case, and those JSON Schema lacks.
SCHEMA_KEYWORDS = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems",
                   "min_length": "minLength", "max_length": "maxLength",
                   "min_properties": "minProperties", "max_properties": "maxProperties"}
SCHEMA_DROPPED = ("nullable", "propertyOrdering", "property_ordering")
SCHEMA_DATA = ("enum", "const", "default", "examples", "example")  # values, not schemas
CALLING_MODES = ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED")

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def field(obj: Dict[str, Any], name: str) -> Any:
    """obj[name] for a camelCase name, falling back to its snake_case spelling."""
    if name in obj:
        return obj[name]
    return obj.get(_CAMEL.sub("_", name).lower())


def parse(body: Any, *, model: str, stream: bool, count_only: bool = False) -> chat.ChatRequest:
    """A ChatRequest from a generateContent body. Raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if field(body, "cachedContent"):
        raise BadRequest("cachedContent: cached contents are not supported by this proxy; send the "
                         "contents inline", param="cachedContent")
    raw = field(body, "contents")
    if raw is None and count_only:
        raw = []
    if not isinstance(raw, list) or not (raw or count_only):
        raise BadRequest("contents: a non-empty list of contents is required", param="contents")
    messages = _messages(raw)
    if not messages and not count_only:
        raise BadRequest("contents: at least one content with parts is required", param="contents")
    config = field(body, "generationConfig")
    if config is not None and not isinstance(config, dict):
        raise BadRequest("generationConfig: must be an object", param="generationConfig")
    config = config or {}
    tools = _tools(field(body, "tools"))
    return chat.ChatRequest(
        model=model[len("models/"):] if model.startswith("models/") else model,
        messages=tuple(messages),
        system=_system(field(body, "systemInstruction")),
        tools=tools,
        tool_choice=_tool_choice(field(body, "toolConfig")),
        max_tokens=_max_tokens(field(config, "maxOutputTokens")),
        stop=_stops(field(config, "stopSequences")),
        thinking=_thinking(field(config, "thinkingConfig")),
        response_format=_response_format(config),
        temperature=_temperature(field(config, "temperature")),
        stream=stream and not count_only,
    )


def parse_count(body: Any, *, model: str) -> chat.ChatRequest:
    """A ChatRequest to count from `{contents}` or `{generateContentRequest: {...}}`."""
    if isinstance(body, dict):
        inner = field(body, "generateContentRequest")
        if inner is not None:
            if not isinstance(inner, dict):
                raise BadRequest("generateContentRequest: must be an object", param="generateContentRequest")
            body = inner
    return parse(body, model=model, stream=False, count_only=True)


# ----- contents ----------------------------------------------------------------------------


class _Calls:
    """Gives every function call an id and pairs each function response with its call.

    Gemini CLI sends ids on both; other clients send none, and then a response answers the
    oldest unanswered call of the same name in the preceding model turn. Generated ids come
    from the call's position, so they are the same every time the history is sent again.
    """

    def __init__(self) -> None:
        self.pending: Dict[str, List[str]] = {}

    def model_turn(self) -> None:
        self.pending = {}

    def call(self, raw_id: Any, name: str, position: Tuple[int, int]) -> str:
        call_id = str(raw_id) if raw_id else "call_{}_{}".format(*position)
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def response(self, raw_id: Any, name: str, position: Tuple[int, int]) -> str:
        waiting = self.pending.get(name, [])
        if raw_id:
            if str(raw_id) in waiting:
                waiting.remove(str(raw_id))
            return str(raw_id)
        if waiting:
            return waiting.pop(0)
        return "call_{}_{}".format(*position)  # answers nothing: the payload turns it into text


def _messages(contents: List[Any]) -> List[chat.Message]:
    calls = _Calls()
    messages: List[chat.Message] = []
    for index, content in enumerate(contents):
        where = f"contents.{index}"
        if not isinstance(content, dict):
            raise BadRequest(f"{where}: each content must be an object", param="contents")
        role = content.get("role") or "user"
        if role not in ROLES:
            raise BadRequest(f"{where}.role: must be 'user' or 'model', got {role!r}", param="contents")
        if ROLES[role] == "assistant":
            calls.model_turn()
        raw_parts = content.get("parts") or []
        if not isinstance(raw_parts, list):
            raise BadRequest(f"{where}.parts: must be a list", param="contents")
        parts: List[chat.Part] = []
        for number, part in enumerate(raw_parts):
            parts.extend(_part(part, ROLES[role], f"{where}.parts.{number}", (index, number), calls))
        if parts:
            messages.append(chat.Message(ROLES[role], tuple(parts)))
    return messages


def _part(part: Any, role: str, where: str, position: Tuple[int, int], calls: _Calls) -> List[chat.Part]:
    if not isinstance(part, dict):
        raise BadRequest(f"{where}: each part must be an object", param="contents")
    out: List[chat.Part] = []
    signature = signature_in(field(part, "thoughtSignature"))
    text = part.get("text")
    if isinstance(text, str) and part.get("thought") and role == "assistant":
        return [chat.Thinking(text, signature)] if text or signature else []
    if signature and role == "assistant":
        out.append(chat.Thinking("", signature))  # a signature on a call or answer part
    if isinstance(text, str):
        if text:
            out.append(chat.Text(text))
        return out
    call = field(part, "functionCall")
    if call is not None:
        if role != "assistant":
            raise BadRequest(f"{where}.functionCall: function calls belong to role 'model'", param="contents")
        name, args = _named(call, f"{where}.functionCall"), call.get("args")
        out.append(chat.ToolUse(calls.call(call.get("id"), name, position), name,
                                args if isinstance(args, dict) else {}))
        return out
    answer = field(part, "functionResponse")
    if answer is not None:
        if role == "assistant":
            raise BadRequest(f"{where}.functionResponse: function responses belong to role 'user'",
                             param="contents")
        name = _named(answer, f"{where}.functionResponse")
        out.append(_tool_result(answer, calls.response(answer.get("id"), name, position), where))
        return out
    return out + _media(part, where)


def _named(obj: Any, where: str) -> str:
    name = obj.get("name") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: a function name is required", param="contents")
    return name


def _tool_result(answer: Dict[str, Any], call_id: str, where: str) -> chat.ToolResult:
    response = answer.get("response")
    is_error = False
    if isinstance(response, dict) and set(response) <= {"output", "error"} and response:
        # Gemini's convention (and Gemini CLI's): {"output": ...} or {"error": ...}.
        is_error = "output" not in response
        value = response.get("output", response.get("error"))
        text = value if isinstance(value, str) else chat_json(value)
    else:
        text = chat_json(response) if response is not None else ""
    content: List[Any] = [chat.Text(text)] if text else []
    extra = answer.get("parts")
    if isinstance(extra, list):  # multimodal function responses (images next to the output)
        for number, piece in enumerate(extra):
            if isinstance(piece, dict):
                content.extend(p for p in _media(piece, f"{where}.functionResponse.parts.{number}")
                               if isinstance(p, (chat.Text, chat.Image)))
    return chat.ToolResult(call_id, tuple(content), is_error)


def _media(part: Dict[str, Any], where: str) -> List[chat.Part]:
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        mime = str(field(inline, "mimeType") or "").lower()
        data = inline.get("data")
        if not isinstance(data, str) or not data:
            raise BadRequest(f"{where}.inlineData.data: base64 data is required", param="contents")
        if mime.startswith("image/"):
            return [chat.Image(mime, data)]
        return [chat.Text(f"[attachment of type {mime or 'unknown'} omitted: this proxy forwards text "
                          "and images only]")]
    file_data = field(part, "fileData")
    if isinstance(file_data, dict):
        return [chat.Text(f"[file {field(file_data, 'fileUri')} not fetched: send images inline as base64]")]
    code = field(part, "executableCode")
    if isinstance(code, dict):
        return [chat.Text(f"```{str(code.get('language') or '').lower()}\n{code.get('code') or ''}\n```")]
    result = field(part, "codeExecutionResult")
    if isinstance(result, dict):
        return [chat.Text(str(result.get("output") or ""))]
    return []  # videoMetadata alone, empty parts, future part kinds: nothing to forward


def chat_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def signature_in(value: Any) -> Optional[str]:
    """A client's thoughtSignature as the upstream issued it; None for none or a placeholder."""
    if not isinstance(value, str) or not value or value in DUMMY_SIGNATURES:
        return None
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return value
    if raw.startswith(SIGNATURE_WRAP):
        return raw[len(SIGNATURE_WRAP):].decode("utf-8", "replace")
    return value


def signature_out(signature: str) -> str:
    """The signature itself when it is canonical base64, else wrapped in base64."""
    core = signature.rstrip("=")
    try:
        raw = base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is not None and core and base64.b64encode(raw).decode("ascii").rstrip("=") == core:
        return signature
    return base64.b64encode(SIGNATURE_WRAP + signature.encode("utf-8")).decode("ascii")


def _system(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    parts = system.get("parts") if isinstance(system, dict) else system
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list):
        raise BadRequest("systemInstruction: must be a content object with text parts",
                         param="systemInstruction")
    texts = [p.get("text") if isinstance(p, dict) else p for p in parts]
    return "\n\n".join(t for t in texts if isinstance(t, str) and t)


# ----- tools -------------------------------------------------------------------------------


def _tools(tools: Any) -> Tuple[chat.Tool, ...]:
    if tools is None:
        return ()
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise BadRequest("tools: must be a list of tool objects", param="tools")
    out: List[chat.Tool] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{index}: must be an object", param="tools")
        # googleSearch, codeExecution, urlContext...: Google's own tools, not available via Kiro.
        declarations = field(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise BadRequest(f"tools.{index}.functionDeclarations: must be a list", param="tools")
        for number, declaration in enumerate(declarations):
            out.append(_declaration(declaration, f"tools.{index}.functionDeclarations.{number}"))
    return tuple(out)


def _declaration(declaration: Any, where: str) -> chat.Tool:
    if not isinstance(declaration, dict):
        raise BadRequest(f"{where}: must be an object", param="tools")
    name = declaration.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: a function name is required", param="tools")
    plain = field(declaration, "parametersJsonSchema")
    legacy = declaration.get("parameters")
    if plain is not None:
        if not isinstance(plain, dict):
            raise BadRequest(f"{where}.parametersJsonSchema: must be a JSON Schema object", param="tools")
        schema = lower_types(plain)
    elif legacy is not None:
        if not isinstance(legacy, dict):
            raise BadRequest(f"{where}.parameters: must be a schema object", param="tools")
        schema = json_schema(legacy)
    else:
        schema = {"type": "object", "properties": {}}
    return chat.Tool(name, str(declaration.get("description") or ""), schema)


def json_schema(node: Dict[str, Any]) -> Dict[str, Any]:
    """JSON Schema from Gemini's OpenAPI subset: lower-case types, `nullable` as a null type."""
    out: Dict[str, Any] = {}
    for key, value in node.items():
        key = SCHEMA_KEYWORDS.get(key, key)
        if key in SCHEMA_DROPPED:
            continue
        if key == "type" and isinstance(value, str):
            value = value.lower()
            if value == "type_unspecified":
                continue
        elif key == "properties" and isinstance(value, dict):
            value = {name: json_schema(v) if isinstance(v, dict) else v for name, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            value = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [json_schema(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("anyOf"), list):
            out["anyOf"] = out["anyOf"] + [{"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


def lower_types(node: Any) -> Any:
    """A plain JSON Schema with upper-case `type` names lower-cased (Gemini CLI writes "OBJECT"
    even in responseJsonSchema); everything else is kept as sent."""
    if isinstance(node, list):
        return [lower_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            value = value.lower()
        elif key == "type" and isinstance(value, list):
            value = [v.lower() if isinstance(v, str) else v for v in value]
        elif key not in SCHEMA_DATA:
            value = lower_types(value)
        out[key] = value
    return out


def _tool_choice(config: Any) -> chat.ToolChoice:
    if not isinstance(config, dict):
        return chat.ToolChoice()
    calling = field(config, "functionCallingConfig")
    if not isinstance(calling, dict):
        return chat.ToolChoice()
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in CALLING_MODES:
        raise BadRequest(f"toolConfig.functionCallingConfig.mode: must be one of AUTO, ANY, NONE or "
                         f"VALIDATED, got {calling.get('mode')!r}", param="toolConfig")
    allowed = field(calling, "allowedFunctionNames")
    if mode == "NONE":
        return chat.ToolChoice("none")
    if mode == "ANY":
        if isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
            return chat.ToolChoice("tool", allowed[0])
        return chat.ToolChoice("required")
    return chat.ToolChoice()  # AUTO and VALIDATED: the model decides


# ----- generation config -------------------------------------------------------------------


def _max_tokens(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("generationConfig.maxOutputTokens: a positive integer is required",
                         param="generationConfig")
    return value


def _temperature(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest("generationConfig.temperature: must be a number", param="generationConfig")
    return float(value)


def _stops(stops: Any) -> Tuple[str, ...]:
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("generationConfig.stopSequences: must be a list of strings", param="generationConfig")
    return tuple(s for s in stops if s)


def _thinking(config: Any) -> Optional[chat.ThinkingConfig]:
    """thinkingBudget 0 turns thinking off and -1 is dynamic (adaptive); thinkingLevel is an effort.

    includeThoughts false turns it off too: Kiro's reasoning would otherwise reach the client."""
    if not isinstance(config, dict):
        return None
    budget = field(config, "thinkingBudget")
    level = field(config, "thinkingLevel")
    include = field(config, "includeThoughts")
    if budget == 0 or include is False:
        return None
    if isinstance(level, str) and level.upper() not in ("", "THINKING_LEVEL_UNSPECIFIED"):
        return chat.ThinkingConfig("adaptive", effort=level.lower())
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return chat.ThinkingConfig("enabled", budget=budget)
    if budget == -1 or include is True:
        return chat.ThinkingConfig("adaptive")
    return None


def _response_format(config: Dict[str, Any]) -> Optional[chat.ResponseFormat]:
    if (field(config, "candidateCount") or 1) != 1:
        raise BadRequest("generationConfig.candidateCount: only one candidate per request is supported",
                         param="generationConfig")
    mime = str(field(config, "responseMimeType") or "").lower()
    plain = field(config, "responseJsonSchema")
    legacy = field(config, "responseSchema")
    if mime != "application/json" and (mime or (plain is None and legacy is None)):
        return None
    if isinstance(plain, dict):
        return chat.ResponseFormat(schema=lower_types(plain))
    if isinstance(legacy, dict):
        return chat.ResponseFormat(schema=json_schema(legacy))
    return chat.ResponseFormat()
