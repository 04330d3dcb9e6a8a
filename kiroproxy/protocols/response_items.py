"""Responses API items both ways: input items and tools read into the neutral chat model, and
the output items a response is made of.

Covers what Codex and the SDKs send: message items, function and custom tool calls and their
outputs, reasoning items, and flat, namespaced, custom and hosted tools. Pure: no Flask, no I/O.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .. import chat
from ..errors import BadRequest
from .openai_messages import chosen_tool, string_tool_choice

log = logging.getLogger(__name__)

SYSTEM_ROLES = ("system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
IdMaker = Callable[[str], str]  # an output item id from a prefix: "msg", "fc", "ctc", "rs"
CUSTOM_NOTE = "Call this tool with a single argument, `input`: the raw text the tool expects (not JSON)."


@dataclass(frozen=True)
class ClientTool:
    """What the client declared behind one upstream tool name."""

    kind: str  # "function" | "custom"
    name: str
    namespace: Optional[str] = None


@dataclass(frozen=True)
class Toolbox:
    """The request's tools flattened to functions, and the way back to the client's names.

    Namespaced functions keep their own name upstream unless it clashes with another tool's,
    then they become `<namespace>__<name>`. Custom (free-form) tools become functions taking
    `{"input": string}`; their calls go back to the client as custom_tool_call items.
    """

    tools: Tuple[chat.Tool, ...] = ()
    origins: Mapping[str, ClientTool] = field(default_factory=dict)

    def upstream_name(self, name: str, namespace: Optional[str] = None) -> str:
        """The upstream name of a declared tool; without a namespace that matches, the first
        tool of that name in any namespace; `name` itself for tools never declared."""
        fallback = None
        for upstream, origin in self.origins.items():
            if origin.name == name and origin.namespace == (namespace or None):
                return upstream
            if origin.name == name and fallback is None:
                fallback = upstream
        return fallback or name

    def names(self, namespace: Optional[str] = None) -> Set[str]:
        """The client's names of the declared tools, in `namespace` (None: in any or none)."""
        return {o.name for o in self.origins.values() if namespace is None or o.namespace == namespace}

    def origin(self, upstream: str) -> ClientTool:
        return self.origins.get(upstream) or ClientTool("function", upstream)


def toolbox(raw: Any) -> Toolbox:
    """The Toolbox of a `tools` list. Hosted tools (web_search, file_search, tool_search, ...)
    cannot run through Kiro and are dropped; raises BadRequest for malformed entries."""
    if raw is None:
        return Toolbox()
    if not isinstance(raw, list):
        raise BadRequest("tools: must be a list", param="tools")
    declared: List[Tuple[ClientTool, chat.Tool]] = []
    for index, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{index}: must be an object", param="tools")
        if tool.get("type") == "namespace":
            namespace = str(tool.get("name") or "") or None
            inner = tool.get("tools")
            for position, member in enumerate(inner if isinstance(inner, list) else []):
                if isinstance(member, dict):
                    declared += _declare(member, f"tools.{index}.tools.{position}", namespace)
        else:
            declared += _declare(tool, f"tools.{index}", None)
    counts: Dict[str, int] = {}
    for origin, _ in declared:
        counts[origin.name] = counts.get(origin.name, 0) + 1
    tools: List[chat.Tool] = []
    origins: Dict[str, ClientTool] = {}
    for origin, tool in declared:
        upstream = origin.name
        if counts[origin.name] > 1 and origin.namespace:
            upstream = f"{origin.namespace}__{origin.name}"
        if upstream in origins:
            log.debug("dropping a second tool named %r", upstream)
            continue
        origins[upstream] = origin
        tools.append(chat.Tool(upstream, tool.description, tool.schema))
    return Toolbox(tuple(tools), origins)


def _declare(tool: Dict[str, Any], where: str, namespace: Optional[str]) -> List[Tuple[ClientTool, chat.Tool]]:
    kind = tool.get("type")
    if kind not in ("function", "custom"):
        log.debug("dropping hosted tool %r: Kiro cannot run it", kind)
        return []
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: a tool name is required", param="tools")
    description = str(tool.get("description") or "")
    if kind == "custom":
        schema = {"type": "object", "required": ["input"],
                  "properties": {"input": {"type": "string", "description": "The raw tool input."}}}
        return [(ClientTool("custom", name, namespace), chat.Tool(name, _custom_description(tool), schema))]
    parameters = tool.get("parameters")
    schema = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
    return [(ClientTool("function", name, namespace), chat.Tool(name, description, schema))]


def _custom_description(tool: Dict[str, Any]) -> str:
    note = CUSTOM_NOTE
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and fmt.get("definition"):
        syntax = f"{fmt['syntax']} " if isinstance(fmt.get("syntax"), str) and fmt["syntax"] else ""
        note += f" The input must match this {syntax}grammar:\n{fmt['definition']}"
    description = str(tool.get("description") or "")
    return f"{description}\n\n{note}" if description else note


def tool_choice(raw: Any, box: Toolbox) -> chat.ToolChoice:
    """The request's tool_choice; raises BadRequest (param tool_choice) for a malformed one or one
    naming a tool that is not declared. Hosted tool choices mean auto: those tools are dropped."""
    simple = string_tool_choice(raw)
    if simple is not None:
        return simple
    kind = raw.get("type")
    if kind in ("function", "custom"):
        namespace = raw.get("namespace") if isinstance(raw.get("namespace"), str) and raw["namespace"] else None
        name = chosen_tool(raw.get("name"), box.names(namespace))
        return chat.ToolChoice("tool", box.upstream_name(name, namespace))
    if kind == "allowed_tools":
        return chat.ToolChoice("required") if raw.get("mode") == "required" else chat.ToolChoice()
    if not isinstance(kind, str) or not kind:
        raise BadRequest("tool_choice.type: required", param="tool_choice")
    return chat.ToolChoice()


def input_items(raw: Any) -> List[Dict[str, Any]]:
    """`input` as a list of items: a string is one user message. Raises BadRequest."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise BadRequest("input: must be a string or a list of items", param="input")
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"input.{index}: each item must be an object", param="input")
    return list(raw)


def conversation(sources: Sequence[Tuple[str, List[Dict[str, Any]]]],
                 box: Toolbox) -> Tuple[List[str], List[chat.Message]]:
    """(system texts, messages) from item lists, each with the prefix its error messages use.

    Consecutive items of one side (assistant output, or user input and tool outputs) join
    into one message, so a reasoning item, its text and its calls form one assistant turn.
    """
    system: List[str] = []
    messages: List[chat.Message] = []
    for prefix, items in sources:
        for index, item in enumerate(items):
            read = _item(item, f"{prefix}.{index}", box)
            if read is None:
                continue
            role, parts = read
            if role == "system":
                system.extend(p.text for p in parts if isinstance(p, chat.Text) and p.text)
            elif messages and messages[-1].role == role:
                messages[-1] = chat.Message(role, messages[-1].parts + tuple(parts))
            else:
                messages.append(chat.Message(role, tuple(parts)))
    return system, messages


def _item(item: Dict[str, Any], where: str, box: Toolbox) -> Optional[Tuple[str, List[chat.Part]]]:
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        return _message(item, where)
    if kind in ("function_call", "custom_tool_call"):
        return "assistant", [_call(item, where, box, kind)]
    if kind in ("function_call_output", "custom_tool_call_output"):
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"{where}.call_id: required", param="input")
        return "user", [_tool_result(call_id, item.get("output"), where)]
    if kind == "reasoning":
        text = _reasoning_text(item)
        return ("assistant", [chat.Thinking(text)]) if text else None
    # item_reference, web_search_call, compaction, local_shell_call...: nothing Kiro can use.
    log.debug("ignoring input item of type %r", kind)
    return None


def _message(item: Dict[str, Any], where: str) -> Tuple[str, List[chat.Part]]:
    role = item.get("role")
    if role not in ("user", "assistant") + SYSTEM_ROLES:
        raise BadRequest(f"{where}.role: must be user, assistant, system or developer, got {role!r}",
                         param="input")
    parts = _content(item.get("content"), f"{where}.content")
    if role in SYSTEM_ROLES:
        return "system", [chat.Text("\n".join(p.text for p in parts if isinstance(p, chat.Text)))]
    if role == "assistant":
        parts = [p for p in parts if isinstance(p, chat.Text)]
    return role, parts


def _content(content: Any, where: str) -> List[chat.Part]:
    if isinstance(content, str):
        return [chat.Text(content)]
    if content is None:
        return []
    if not isinstance(content, list):
        raise BadRequest(f"{where}: must be a string or a list of content parts", param="input")
    parts: List[chat.Part] = []
    for index, part in enumerate(content):
        if isinstance(part, str):
            parts.append(chat.Text(part))
            continue
        if not isinstance(part, dict):
            raise BadRequest(f"{where}.{index}: content parts must be objects", param="input")
        read = _part(part)
        if read is not None:
            parts.append(read)
    return parts


def _part(part: Dict[str, Any]) -> Optional[chat.Part]:
    kind = part.get("type")
    if kind in TEXT_PARTS:
        return chat.Text(str(part.get("text") or ""))
    if kind == "refusal":
        return chat.Text(str(part.get("refusal") or ""))
    if kind == "input_image":
        url = part.get("image_url")
        if isinstance(url, dict):
            url = url.get("url")
        if isinstance(url, str) and url:
            image = chat.image_from_data_url(url)
            if image is not None:
                return image
            return chat.Text(f"[image at {url[:300]} not fetched: send images as base64 data URLs]")
        return chat.Text("[an uploaded image file was omitted: send images as base64 data URLs]")
    if kind == "input_file":
        name = part.get("filename") or part.get("file_id") or part.get("file_url") or "file"
        return chat.Text(f"[{name}: attached file omitted; this proxy forwards text and images only]")
    log.debug("ignoring content part of type %r", kind)
    return None


def _call(item: Dict[str, Any], where: str, box: Toolbox, kind: str) -> chat.ToolUse:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{where}.call_id: required", param="input")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: required", param="input")
    upstream = box.upstream_name(name, item.get("namespace"))
    if kind == "custom_tool_call":
        return chat.ToolUse(call_id, upstream, {"input": str(item.get("input") or "")})
    arguments = item.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            log.debug("%s: function_call arguments are not JSON; replaying them as {}", where)
            arguments = {}
    return chat.ToolUse(call_id, upstream, arguments if isinstance(arguments, dict) else {})


def _tool_result(call_id: str, output: Any, where: str) -> chat.ToolResult:
    is_error = False
    if isinstance(output, dict) and "content" in output:  # older Codex: {content, success}
        is_error = output.get("success") is False
        output = output.get("content")
    if output is None or isinstance(output, (str, list)):
        parts = _content(output, f"{where}.output")
    else:
        parts = [chat.Text(json.dumps(output, ensure_ascii=False))]
    content = tuple(p for p in parts if isinstance(p, (chat.Text, chat.Image)))
    return chat.ToolResult(call_id, content, is_error)


def _reasoning_text(item: Dict[str, Any]) -> str:
    """A reasoning item's summary (or its reasoning text); encrypted content cannot be replayed."""
    for key in ("summary", "content"):
        pieces = item.get(key)
        if isinstance(pieces, list):
            texts = [str(p.get("text") or "") for p in pieces if isinstance(p, dict)]
            text = "\n\n".join(t for t in texts if t)
            if text:
                return text
    return ""


def text_part(text: str) -> Dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: Optional[str], status: str) -> Dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [] if text is None else [text_part(text)]}


def reasoning_item(item_id: str, text: Optional[str], status: str) -> Dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "status": status,
            "summary": [] if text is None else [{"type": "summary_text", "text": text}]}


def call_item(ids: IdMaker, box: Toolbox, call_id: str, upstream: str, value: str, status: str) -> Dict[str, Any]:
    """A function_call item (value: the arguments JSON text) or, for a custom tool, a
    custom_tool_call item (value: its raw input); named as the client declared it."""
    origin = box.origin(upstream)
    if origin.kind == "custom":
        item = {"id": ids("ctc"), "type": "custom_tool_call", "status": status, "call_id": call_id,
                "name": origin.name, "input": value}
    else:
        item = {"id": ids("fc"), "type": "function_call", "status": status, "arguments": value,
                "call_id": call_id, "name": origin.name}
    if origin.namespace:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: Optional[dict]) -> str:
    """The raw text of a custom tool call, from the `{"input": ...}` object the model sent."""
    if not arguments:
        return ""
    value = arguments.get("input")
    if isinstance(value, str):
        return value
    if len(arguments) == 1 and isinstance(next(iter(arguments.values())), str):
        return next(iter(arguments.values()))
    return json.dumps(arguments, ensure_ascii=False)


def arguments_text(streamed: str, arguments: Optional[dict]) -> str:
    """The final arguments text: what streamed when it parses to the call's arguments."""
    if arguments is None:
        return streamed or "{}"
    if streamed:
        try:
            if json.loads(streamed) == arguments:
                return streamed
        except ValueError:
            pass
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
