"""OpenAI request fields into neutral ones: messages (roles, content parts, tool calls and their
answers), tools, tool_choice and the settings both OpenAI APIs share.

Used by protocols.openai.parse; protocols.responses reuses the shared field checks so both APIs
reject the same things the same way. Pure: no I/O. Never fetches image URLs (they become a text note).
"""
from __future__ import annotations

import json
from typing import Any, Collection, Dict, List, Optional, Tuple

from .. import chat
from ..errors import BadRequest
from . import fields

FORMAT_TYPES = ("text", "json_object", "json_schema")
_BASE64_MAGIC = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                 ("UklGR", "image/webp"))


class Conversation:
    """Folds OpenAI messages into neutral ones: system text aside, tool answers merged into one
    user turn, and ids invented for legacy function calls (which have none)."""

    def __init__(self) -> None:
        self.system: List[str] = []
        self.messages: List[chat.Message] = []
        self._legacy_calls: List[Tuple[str, str]] = []  # (id, name) not answered yet

    def add(self, raw: Any, index: int) -> None:
        where = f"messages.{index}"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where}: each message must be an object", param="messages")
        role = raw.get("role")
        if role in ("system", "developer"):
            self.system.append("\n\n".join(p.text for p in _parts(raw.get("content"), where + ".content")
                                           if isinstance(p, chat.Text)))
        elif role == "user":
            self.messages.append(chat.Message("user", tuple(_parts(raw.get("content"), where + ".content"))))
        elif role == "assistant":
            self.messages.append(chat.Message("assistant", tuple(self._assistant(raw, where))))
        elif role == "tool":
            call_id = raw.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadRequest(f"{where}.tool_call_id: required on tool messages", param="messages")
            self._answer(call_id, raw.get("content"), where)
        elif role == "function":
            self._answer(self._legacy_answer_id(raw.get("name")), raw.get("content"), where)
        else:
            raise BadRequest(f"{where}.role: must be one of system, developer, user, assistant, tool, "
                             f"got {role!r}", param="messages")

    def _assistant(self, raw: Dict[str, Any], where: str) -> List[chat.Part]:
        parts: List[chat.Part] = []
        reasoning = raw.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            parts.append(chat.Thinking(reasoning))
        parts.extend(_parts(raw.get("content"), where + ".content"))
        calls = raw.get("tool_calls") or []
        if not isinstance(calls, list):
            raise BadRequest(f"{where}.tool_calls: must be a list", param="messages")
        for number, call in enumerate(calls):
            part = _tool_call(call, f"{where}.tool_calls.{number}")
            if part is not None:
                parts.append(part)
        legacy = raw.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("name"), str) and legacy["name"]:
            call_id = f"call_legacy_{len(self.messages)}"
            self._legacy_calls.append((call_id, legacy["name"]))
            parts.append(chat.ToolUse(call_id, legacy["name"], _arguments(legacy.get("arguments"))))
        return parts

    def _legacy_answer_id(self, name: Any) -> str:
        # A `function` message answers the latest unanswered call of that name, else the oldest.
        for position in range(len(self._legacy_calls) - 1, -1, -1):
            if self._legacy_calls[position][1] == name or position == 0:
                return self._legacy_calls.pop(position)[0]
        return f"call_legacy_unmatched_{len(self.messages)}"

    def _answer(self, call_id: str, content: Any, where: str) -> None:
        items = tuple(p for p in _parts(content, where + ".content") if isinstance(p, (chat.Text, chat.Image)))
        result = chat.ToolResult(call_id, items)
        last = self.messages[-1] if self.messages else None
        # Parallel calls are answered by consecutive tool messages; Kiro wants them in one turn.
        if last is not None and last.role == "user" and last.parts and \
                all(isinstance(p, chat.ToolResult) for p in last.parts):
            self.messages[-1] = chat.Message("user", last.parts + (result,))
        else:
            self.messages.append(chat.Message("user", (result,)))


def _parts(content: Any, where: str) -> List[chat.Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [chat.Text(content)] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"{where}: must be a string or a list of content parts", param="messages")
    parts: List[chat.Part] = []
    for index, item in enumerate(content):
        if not isinstance(item, (str, dict)):
            raise BadRequest(f"{where}.{index}: content parts must be objects", param="messages")
        part = chat.Text(item) if isinstance(item, str) else _part(item, f"{where}.{index}")
        if part is not None and part != chat.Text(""):
            parts.append(part)
    return parts


def _part(item: Dict[str, Any], where: str) -> Optional[chat.Part]:
    kind = item.get("type")
    if kind == "text":
        return chat.Text(str(item.get("text") or ""))
    if kind == "refusal":
        return chat.Text(str(item.get("refusal") or ""))
    if kind == "image_url":
        return _image(item.get("image_url"), where + ".image_url")
    if kind == "input_audio":
        return chat.Text("[audio omitted: this proxy forwards text and images only]")
    if kind == "file":
        file = item.get("file") if isinstance(item.get("file"), dict) else {}
        image = chat.image_from_data_url(str(file.get("file_data") or ""))
        if image is not None and image.media_type.startswith("image/"):
            return image
        title = file.get("filename") or file.get("file_id") or "file"
        return chat.Text(f"[{title}: attached file omitted; this proxy forwards text and images only]")
    return None  # newer part types: nothing Kiro can use


def _image(value: Any, where: str) -> chat.Part:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where}.url: an image URL is required", param="messages")
    url = url.strip()
    image = chat.image_from_data_url(url)
    if image is not None:
        return image
    if url.startswith(("http://", "https://")):
        # Fetching client-supplied URLs would make the proxy an open fetcher; tell the model instead.
        return chat.Text(f"[image at {url[:300]} not fetched: send images as base64 data URLs]")
    for magic, media_type in _BASE64_MAGIC:
        if url.startswith(magic):  # some clients send bare base64 without the data: prefix
            return chat.Image(media_type, url)
    raise BadRequest(f"{where}.url: must be an http(s) URL or a base64 data URL", param="messages")


def _tool_call(call: Any, where: str) -> Optional[chat.ToolUse]:
    if not isinstance(call, dict):
        raise BadRequest(f"{where}: must be an object", param="messages")
    if call.get("type", "function") != "function":
        return None  # custom tool calls have no declared counterpart here
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    call_id, name = call.get("id"), function.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise BadRequest(f"{where}: tool calls need an id and a function name", param="messages")
    return chat.ToolUse(call_id, name, _arguments(function.get("arguments")))


def _arguments(raw: Any) -> dict:
    """Tool arguments from their JSON text; text that is not a JSON object is kept, not lost."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": raw}


def tools(raw: Any, field: str) -> Tuple[chat.Tool, ...]:
    """Function tools from `tools` (custom and hosted ones are dropped) or legacy `functions`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest(f"{field}: must be a list", param=field)
    out = []
    for index, tool in enumerate(raw):
        where = f"{field}.{index}"
        if not isinstance(tool, dict):
            raise BadRequest(f"{where}: must be an object", param=field)
        if field == "tools":
            if tool.get("type", "function") != "function":
                continue  # custom and hosted tools have no Kiro counterpart
            where, tool = where + ".function", tool.get("function")
            if not isinstance(tool, dict):
                raise BadRequest(f"{where}: required for function tools", param=field)
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{where}.name: required", param=field)
        schema = tool.get("parameters")
        out.append(chat.Tool(name, str(tool.get("description") or ""),
                             schema if isinstance(schema, dict) else {"type": "object", "properties": {}}))
    return tuple(out)


def tool_choice(body: Dict[str, Any], declared: Collection[str]) -> chat.ToolChoice:
    """`tool_choice`, or the legacy `function_call`, checked against the declared tool names."""
    field = "tool_choice" if body.get("tool_choice") is not None or "function_call" not in body else "function_call"
    choice = body.get(field)
    simple = string_tool_choice(choice, field)
    if simple is not None:
        return simple
    function = choice.get("function") if isinstance(choice.get("function"), dict) else choice
    if choice.get("type") == "allowed_tools" or isinstance(choice.get("allowed_tools"), dict):
        allowed = choice.get("allowed_tools")
        required = isinstance(allowed, dict) and allowed.get("mode") == "required"
        return chat.ToolChoice("required") if required else chat.ToolChoice()
    if choice.get("type", "function") != "function":
        raise BadRequest(f"{field}: must be 'none', 'auto', 'required' or "
                         "{\"type\": \"function\", \"function\": {\"name\": ...}}", param=field)
    return chat.ToolChoice("tool", chosen_tool(function.get("name"), declared, field))


def string_tool_choice(choice: Any, field: str = "tool_choice") -> Optional[chat.ToolChoice]:
    """The ToolChoice of a missing or string choice; None for an object (the caller reads it).
    Raises BadRequest for any other value."""
    if choice is None or choice == "auto":
        return chat.ToolChoice()
    if choice in ("none", "required"):
        return chat.ToolChoice(choice)
    if isinstance(choice, dict):
        return None
    raise BadRequest(f"{field}: must be 'none', 'auto', 'required' or an object naming a tool", param=field)


def chosen_tool(name: Any, declared: Collection[str], field: str = "tool_choice") -> str:
    """The name a tool choice forces, which must be one of the declared tools (as OpenAI checks)."""
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{field}: the chosen function needs a name", param=field)
    if name not in declared:
        raise BadRequest(f"{field}: the function {name!r} is not among the declared tools", param=field)
    return name


def stream_flag(body: Dict[str, Any]) -> bool:
    """`stream`: a JSON boolean (a string such as "false" is refused, not taken as true)."""
    return bool(fields.flag(body.get("stream"), "stream"))


def max_tokens(body: Dict[str, Any]) -> Optional[int]:
    found: Optional[int] = None
    for field in ("max_tokens", "max_completion_tokens"):  # the same setting, old and new name
        value = fields.positive_int(body.get(field), field)
        found = found if value is None else value
    return found


def thinking(effort: Any) -> Optional[chat.ThinkingConfig]:
    """reasoning_effort: none/minimal turn thinking off; other words ask for adaptive thinking."""
    effort = fields.word(effort, "reasoning_effort")
    if effort in (None, "none", "minimal"):
        return None
    return chat.ThinkingConfig("adaptive", effort=effort)


def response_format(value: Any) -> Optional[chat.ResponseFormat]:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    kind = fields.choice("" if kind is None else kind, "response_format.type", FORMAT_TYPES, "response_format")
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("response_format.json_schema: an object with name and schema is required",
                             param="response_format")
        schema, name = spec.get("schema"), spec.get("name")
        return chat.ResponseFormat(schema if isinstance(schema, dict) else None,
                                   name if isinstance(name, str) and name else None)
    return chat.ResponseFormat()
