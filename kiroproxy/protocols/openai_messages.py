"""OpenAI chat messages into neutral ones: roles, content parts, tool calls and their answers.

Used by protocols.openai.parse. Pure: no I/O. Never fetches image URLs (they become a text note).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from .. import chat
from ..errors import BadRequest

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
