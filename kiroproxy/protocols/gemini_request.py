"""Gemini API request bodies (generateContent, countTokens) -> the neutral ChatRequest.

Accepts camelCase and snake_case field names and the function-call ids and thought signatures
Gemini CLI sends; declarations and toolConfig are read by gemini_tools.py, signatures by
gemini_thoughts.py. Pure: no Flask, no I/O; raises BadRequest naming the field, nothing else.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from .. import chat
from ..errors import BadRequest
from . import fields, gemini_thoughts, gemini_tools

ROLES = {"user": "user", "function": "user", "model": "assistant"}
CONFIG = "generationConfig"
T = TypeVar("T")

field = gemini_tools.field


def parse(body: Any, *, model: str, stream: bool, count_only: bool = False) -> chat.ChatRequest:
    """A ChatRequest from a generateContent body. Raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return _parse(body, model, stream, count_only)
    except RecursionError:
        # A schema or struct nested deeper than the interpreter's stack: the client's mistake.
        raise BadRequest("the request body nests too deeply") from None


def parse_count(body: Any, *, model: str) -> chat.ChatRequest:
    """A ChatRequest to count from `{contents}` or `{generateContentRequest: {...}}`."""
    if isinstance(body, dict):
        inner = field(body, "generateContentRequest")
        if inner is not None:
            if not isinstance(inner, dict):
                raise BadRequest("generateContentRequest: must be an object", param="generateContentRequest")
            body = inner
    return parse(body, model=model, stream=False, count_only=True)


def include_thoughts(body: Any) -> bool:
    """True when the client asked for thought parts (thinkingConfig.includeThoughts: true).

    Gemini returns thought text only then; the thinking itself may happen either way."""
    config = field(body, "generationConfig") if isinstance(body, dict) else None
    thinking = field(config, "thinkingConfig") if isinstance(config, dict) else None
    return isinstance(thinking, dict) and field(thinking, "includeThoughts") is True


def _parse(body: Dict[str, Any], model: str, stream: bool, count_only: bool) -> chat.ChatRequest:
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
    for name in ("topP", "topK"):
        _setting(config, name, fields.number)
    offer = gemini_tools.offer(field(body, "tools"), field(body, "toolConfig"), messages)
    system = "\n\n".join(s for s in (_system(field(body, "systemInstruction")), offer.note) if s)
    return chat.ChatRequest(
        model=model[len("models/"):] if model.startswith("models/") else model,
        messages=tuple(messages),
        system=system,
        tools=offer.tools,
        tool_choice=offer.choice,
        max_tokens=_setting(config, "maxOutputTokens", fields.positive_int),
        stop=fields.stops(field(config, "stopSequences"), "generationConfig.stopSequences", CONFIG),
        thinking=_thinking(field(config, "thinkingConfig")),
        response_format=_response_format(config),
        temperature=_setting(config, "temperature", fields.number),
        stream=stream and not count_only,
    )


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

    def call(self, raw_id: Optional[str], name: str, position: Tuple[int, int]) -> str:
        call_id = raw_id or "call_{}_{}".format(*position)
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def response(self, raw_id: Optional[str], name: str, position: Tuple[int, int]) -> str:
        waiting = self.pending.get(name, [])
        if raw_id:
            if raw_id in waiting:
                waiting.remove(raw_id)
            return raw_id
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
        role = content.get("role")
        if role is None or role == "":
            role = "user"
        if not isinstance(role, str) or role not in ROLES:
            raise BadRequest(f"{where}.role: must be 'user' or 'model', got {role!r}", param="contents")
        if ROLES[role] == "assistant":
            calls.model_turn()
        raw_parts = content.get("parts")
        if raw_parts is None:
            raw_parts = []
        if not isinstance(raw_parts, list):
            raise BadRequest(f"{where}.parts: must be a list", param="contents")
        parts = _parts(raw_parts, ROLES[role], where, index, calls)
        if parts:
            messages.append(chat.Message(ROLES[role], tuple(parts)))
    return messages


def _parts(raw_parts: List[Any], role: str, where: str, index: int, calls: _Calls) -> List[chat.Part]:
    parts: List[chat.Part] = []
    for number, part in enumerate(raw_parts):
        at = f"{where}.parts.{number}"
        if not isinstance(part, dict):
            raise BadRequest(f"{at}: each part must be an object", param="contents")
        thought = _signature(part, at)
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"{at}.text: must be a string", param="contents")
        if role != "assistant":
            thought = None  # reasoning belongs to model turns only
        elif part.get("thought") and text is not None:
            if text:
                parts.append(chat.Thinking(text))
            if thought is not None:
                _close_thinking(parts, thought)
            continue
        if thought is not None:
            _close_thinking(parts, thought)
        parts.extend(_part(part, text, role, at, (index, number), calls))
    return parts


def _signature(part: Dict[str, Any], where: str) -> Optional[chat.Thinking]:
    value = field(part, "thoughtSignature")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where}.thoughtSignature: must be a base64 string", param="contents")
    return gemini_thoughts.thought_in(value)


def _close_thinking(parts: List[chat.Part], thought: chat.Thinking) -> None:
    """End the reasoning before a signed part with one Thinking that keeps the upstream signature.

    Its text is that of the client's own unsigned thought parts right before (the SDKs keep them);
    without any (Gemini CLI drops them) it is the text the signature carries."""
    start = len(parts)
    while start and isinstance(parts[start - 1], chat.Thinking) and parts[start - 1].signature is None:
        start -= 1
    shown = "".join(p.text for p in parts[start:] if isinstance(p, chat.Thinking))
    del parts[start:]
    text = shown or thought.text
    if text or thought.signature:
        parts.append(chat.Thinking(text, thought.signature))


def _part(part: Dict[str, Any], text: Optional[str], role: str, where: str, position: Tuple[int, int],
          calls: _Calls) -> List[chat.Part]:
    if text is not None:
        return [chat.Text(text)] if text else []
    call = field(part, "functionCall")
    if call is not None:
        if role != "assistant":
            raise BadRequest(f"{where}.functionCall: function calls belong to role 'model'", param="contents")
        name = _named(call, f"{where}.functionCall")
        args = call.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest(f"{where}.functionCall.args: must be an object", param="contents")
        call_id = _call_id(call.get("id"), f"{where}.functionCall")
        return [chat.ToolUse(calls.call(call_id, name, position), name, args)]
    answer = field(part, "functionResponse")
    if answer is not None:
        if role == "assistant":
            raise BadRequest(f"{where}.functionResponse: function responses belong to role 'user'",
                             param="contents")
        name = _named(answer, f"{where}.functionResponse")
        call_id = _call_id(answer.get("id"), f"{where}.functionResponse")
        return [_tool_result(answer, calls.response(call_id, name, position), where)]
    return _media(part, where)


def _named(obj: Any, where: str) -> str:
    if not isinstance(obj, dict):
        raise BadRequest(f"{where}: must be an object", param="contents")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: a function name is required", param="contents")
    return name


def _call_id(value: Any, where: str) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{where}.id: must be a string", param="contents")
    return str(value)


def _tool_result(answer: Dict[str, Any], call_id: str, where: str) -> chat.ToolResult:
    response = answer.get("response")
    is_error = False
    if isinstance(response, dict) and set(response) <= {"output", "error"} and response:
        # Gemini's convention (and Gemini CLI's): {"output": ...} or {"error": ...}.
        is_error = "output" not in response
        value = response.get("output", response.get("error"))
        text = value if isinstance(value, str) else chat_json(value)
    elif isinstance(response, str):
        text = response
    else:
        text = chat_json(response) if response is not None else ""
    content: List[Any] = [chat.Text(text)] if text else []
    extra = answer.get("parts")
    if extra is not None and not isinstance(extra, list):
        raise BadRequest(f"{where}.functionResponse.parts: must be a list", param="contents")
    for number, piece in enumerate(extra or []):  # multimodal responses: images next to the output
        at = f"{where}.functionResponse.parts.{number}"
        if not isinstance(piece, dict):
            raise BadRequest(f"{at}: each part must be an object", param="contents")
        content.extend(p for p in _media(piece, at) if isinstance(p, (chat.Text, chat.Image)))
    return chat.ToolResult(call_id, tuple(content), is_error)


def _media(part: Dict[str, Any], where: str) -> List[chat.Part]:
    inline = field(part, "inlineData")
    if inline is not None:
        if not isinstance(inline, dict):
            raise BadRequest(f"{where}.inlineData: must be an object", param="contents")
        mime = field(inline, "mimeType")
        if mime is not None and not isinstance(mime, str):
            raise BadRequest(f"{where}.inlineData.mimeType: must be a string", param="contents")
        mime = (mime or "").lower()
        data = inline.get("data")
        if not isinstance(data, str) or not data:
            raise BadRequest(f"{where}.inlineData.data: base64 data is required", param="contents")
        if mime.startswith("image/"):
            return [chat.Image(mime, chat.image_base64(data, f"{where}.inlineData.data"))]
        return [chat.Text(f"[attachment of type {mime or 'unknown'} omitted: this proxy forwards text "
                          "and images only]")]
    file_data = field(part, "fileData")
    if file_data is not None:
        if not isinstance(file_data, dict):
            raise BadRequest(f"{where}.fileData: must be an object", param="contents")
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


def _setting(config: Dict[str, Any], name: str, read: Callable[[Any, str, str], T]) -> T:
    """generationConfig.<name> (or its snake_case spelling) through one of the shared readers."""
    return read(field(config, name), f"{CONFIG}.{name}", CONFIG)


def _thinking(config: Any) -> Optional[chat.ThinkingConfig]:
    """thinkingBudget 0 turns thinking off and -1 is dynamic (adaptive); thinkingLevel is an effort.

    includeThoughts only decides whether thought text is returned (include_thoughts); true alone
    turns dynamic thinking on, as it does on Gemini models that think by default."""
    if config is None:
        return None
    where = "generationConfig.thinkingConfig"
    if not isinstance(config, dict):
        raise BadRequest(f"{where}: must be an object", param="generationConfig")
    budget = field(config, "thinkingBudget")
    level = fields.word(field(config, "thinkingLevel"), f"{where}.thinkingLevel", CONFIG)
    include = fields.flag(field(config, "includeThoughts"), f"{where}.includeThoughts", CONFIG)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        raise BadRequest(f"{where}.thinkingBudget: must be -1 (dynamic), 0 (off) or a number of tokens",
                         param=CONFIG)
    if budget == 0:
        return None
    if level and level != "thinking_level_unspecified":
        return chat.ThinkingConfig("adaptive", effort=level)
    if budget is not None and budget > 0:
        return chat.ThinkingConfig("enabled", budget=budget)
    if budget == -1 or include is True:
        return chat.ThinkingConfig("adaptive")
    return None


def _response_format(config: Dict[str, Any]) -> Optional[chat.ResponseFormat]:
    count = field(config, "candidateCount")
    if count is not None and (isinstance(count, bool) or count != 1):
        raise BadRequest("generationConfig.candidateCount: only one candidate per request is supported",
                         param="generationConfig")
    mime = field(config, "responseMimeType")
    if mime is not None and not isinstance(mime, str):
        raise BadRequest("generationConfig.responseMimeType: must be a string", param="generationConfig")
    mime = (mime or "").lower()
    plain = gemini_tools.schema_of(field(config, "responseJsonSchema"), "generationConfig.responseJsonSchema",
                                   openapi=False)
    legacy = gemini_tools.schema_of(field(config, "responseSchema"), "generationConfig.responseSchema",
                                    openapi=True)
    if mime != "application/json" and (mime or (plain is None and legacy is None)):
        return None
    return chat.ResponseFormat(schema=plain if plain is not None else legacy)
