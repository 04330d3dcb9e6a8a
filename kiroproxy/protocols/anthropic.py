"""Anthropic Messages API: parse requests, render replies, encode the SSE stream, shape errors.

Pure: no Flask, no I/O. Accepts what real clients send (unknown fields, betas, in-list system
messages) and ignores what does not change meaning.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from .. import chat
from ..errors import BadRequest, ProxyError, TooLarge
from ..kiro.models import ModelInfo
from . import fields
from .ids import random_id
from .interface import Call, CountingProtocol, ErrorBody, query_int
from .sse import sse

NAME = "anthropic"
BILLING_HEADER = "x-anthropic-billing-header:"
# Kiro's prompt-tag thinking carries no signature, but clients expect a signature_delta before a
# thinking block stops (and a signature on it). Kiro never sees signatures (thinking is replayed as
# text), and parse() drops this one, so it cannot reach any upstream that verifies signatures.
UNSIGNED = "kiroproxy-unsigned-thinking"
STOP_REASONS = {"end_turn": "end_turn", "max_tokens": "max_tokens", "tool_use": "tool_use",
                "stop_sequence": "stop_sequence", "refusal": "refusal"}


def new_id(prefix: str = "msg_") -> str:
    return random_id(prefix)


def parse(body: Any, *, count_only: bool = False) -> chat.ChatRequest:
    """A ChatRequest from a Messages (or count_tokens) body. Raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: a model name is required", param="model")
    max_tokens = fields.positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is None and not count_only:
        raise BadRequest("max_tokens: a positive integer is required", param="max_tokens")
    fields.number(body.get("top_p"), "top_p")
    fields.number(body.get("top_k"), "top_k")
    stream = fields.flag(body.get("stream"), "stream")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages: a non-empty list of messages is required", param="messages")
    system = [_system_text(body.get("system"), "system")]
    messages: List[chat.Message] = []
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, dict):
            raise BadRequest(f"messages.{index}: each message must be an object", param="messages")
        role = raw.get("role")
        if role == "system":  # Claude Code's in-list system entries carry extra instructions
            system.append(_system_text(raw.get("content"), f"messages.{index}.content"))
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{index}.role: must be 'user' or 'assistant', got {role!r}",
                             param="messages")
        parts = _parts(raw.get("content"), f"messages.{index}.content")
        messages.append(chat.Message(role, tuple(parts)))
    if not messages:
        raise BadRequest("messages: at least one user or assistant message is required", param="messages")
    return chat.ChatRequest(
        model=model.strip(),
        messages=tuple(messages),
        system="\n\n".join(s for s in system if s),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens,
        stop=fields.stops(body.get("stop_sequences"), "stop_sequences"),
        thinking=_thinking(body.get("thinking"), body.get("output_config")),
        temperature=_temperature(body.get("temperature")),
        stream=bool(stream) and not count_only,
    )


def _temperature(value: Any) -> Optional[float]:
    # Checked as everywhere (fields.number) but kept as sent, an int staying an int: the recorded
    # request has always shown it so (the golden requests pin it) and nothing downstream reads it.
    fields.number(value, "temperature")
    return value


def _system_text(system: Any, where: str) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for block in system:
            text = block.get("text") if isinstance(block, dict) else block if isinstance(block, str) else None
            if isinstance(text, str) and text and not text.startswith(BILLING_HEADER):
                texts.append(text)
        return "\n\n".join(texts)
    raise BadRequest(f"{where}: must be a string or a list of text blocks", param=where.split(".", 1)[0])


def _parts(content: Any, where: str) -> List[chat.Part]:
    if isinstance(content, str):
        return [chat.Text(content)]
    if content is None:
        return []
    if not isinstance(content, list):
        raise BadRequest(f"{where}: must be a string or a list of content blocks", param="messages")
    parts: List[chat.Part] = []
    for index, block in enumerate(content):
        if isinstance(block, str):
            parts.append(chat.Text(block))
            continue
        if not isinstance(block, dict):
            raise BadRequest(f"{where}.{index}: content blocks must be objects", param="messages")
        part = _block(block, f"{where}.{index}")
        if part is not None:
            parts.append(part)
    return parts


def _block(block: Dict[str, Any], where: str) -> Optional[chat.Part]:
    kind = block.get("type")
    if kind == "text":
        return chat.Text(str(block.get("text") or ""))
    if kind == "image":
        return _image(block.get("source"), where)
    if kind == "document":
        return _document(block, where)
    if kind == "tool_use":
        call_id, name = block.get("id"), block.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise BadRequest(f"{where}: tool_use blocks need a string id and name", param="messages")
        tool_input = block.get("input")
        return chat.ToolUse(call_id, name, tool_input if isinstance(tool_input, dict) else {})
    if kind == "tool_result":
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"{where}.tool_use_id: tool_result blocks need a string tool_use_id",
                             param="messages")
        inner = block.get("content")
        items = [p for p in _parts(inner, f"{where}.content") if isinstance(p, (chat.Text, chat.Image))]
        return chat.ToolResult(call_id, tuple(items), bool(block.get("is_error")))
    if kind == "thinking":
        signature = block.get("signature")
        # The placeholder this proxy signs unsigned blocks with is not a signature: never replay it.
        real = signature if isinstance(signature, str) and signature and signature != UNSIGNED else None
        return chat.Thinking(str(block.get("thinking") or ""), real)
    # redacted_thinking, server tool blocks, search results...: nothing Kiro can use.
    return None


def _document(block: Dict[str, Any], where: str) -> chat.Part:
    source = block.get("source")
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: a document source object is required", param="messages")
    if source.get("type") == "text":
        return chat.Text(str(source.get("data") or ""))
    title = block.get("title")
    title = title if isinstance(title, str) and title else "document"
    return chat.Text(f"[{title}: attached document omitted; this proxy forwards text and images only]")


def _image(source: Any, where: str) -> chat.Part:
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: an image source object is required", param="messages")
    if source.get("type") == "base64":
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise BadRequest(f"{where}.source.data: base64 image data is required", param="messages")
        media_type = source.get("media_type") or "image/png"
        if not isinstance(media_type, str):
            raise BadRequest(f"{where}.source.media_type: must be a string like 'image/png'", param="messages")
        return chat.Image(media_type.lower(), chat.image_base64(data, f"{where}.source.data", "messages"))
    if source.get("type") == "url":
        image = chat.image_from_data_url(str(source.get("url") or ""), where=f"{where}.source.url", param="messages")
        if image is not None:
            return image
        return chat.Text(f"[image at {source.get('url')} not fetched: send images as base64]")
    raise BadRequest(f"{where}.source.type: must be 'base64' or 'url'", param="messages")


def _tools(tools: Any) -> Tuple[chat.Tool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise BadRequest("tools: must be a list", param="tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{index}: must be an object", param="tools")
        if "input_schema" not in tool and tool.get("type") not in (None, "custom"):
            continue  # server tools (web search, code execution...) are not available through Kiro
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"tools.{index}.name: required", param="tools")
        schema = tool.get("input_schema")
        out.append(chat.Tool(name, str(tool.get("description") or ""), schema if isinstance(schema, dict) else {}))
    return tuple(out)


def _tool_choice(choice: Any) -> chat.ToolChoice:
    if not isinstance(choice, dict):
        return chat.ToolChoice()
    kind = choice.get("type")
    if kind == "any":
        return chat.ToolChoice("required")
    if kind == "none":
        return chat.ToolChoice("none")
    if kind == "tool" and choice.get("name"):
        return chat.ToolChoice("tool", str(choice["name"]))
    return chat.ToolChoice()


def _thinking(thinking: Any, output_config: Any) -> Optional[chat.ThinkingConfig]:
    raw = output_config.get("effort") if isinstance(output_config, dict) else None
    effort = fields.word(raw, "output_config.effort", "output_config")
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else None
        return chat.ThinkingConfig("enabled", budget, effort)
    if kind == "adaptive":
        return chat.ThinkingConfig("adaptive", None, effort)
    return None


def usage_body(usage: chat.Usage) -> Dict[str, Any]:
    return {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens}


def render(reply: chat.Reply, *, model: str, message_id: Optional[str] = None) -> Dict[str, Any]:
    content: List[Dict[str, Any]] = []
    for part in reply.parts:
        if isinstance(part, chat.Thinking):
            content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or UNSIGNED})
        elif isinstance(part, chat.Text):
            if part.text:
                content.append({"type": "text", "text": part.text})
        elif isinstance(part, chat.ToolUse):
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": part.input})
    return {"id": message_id or new_id(), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": STOP_REASONS.get(reply.finish, "end_turn"),
            "stop_sequence": reply.stop_sequence, "usage": usage_body(reply.usage)}


class _Blocks:
    """Which content block is open and the next index."""

    def __init__(self) -> None:
        self.index = -1
        self.kind: Optional[str] = None
        self.tool_id: Optional[str] = None
        self.signed = False  # the open thinking block has had its signature_delta

    def close(self) -> List[bytes]:
        if self.kind is None:
            return []
        out = []
        if self.kind == "thinking" and not self.signed:
            out.append(self.sign(UNSIGNED))
        self.kind = self.tool_id = None
        out.append(sse({"type": "content_block_stop", "index": self.index}, "content_block_stop"))
        return out

    def sign(self, signature: str) -> bytes:
        self.signed = True
        return self.delta({"type": "signature_delta", "signature": signature})

    def open(self, kind: str, block: Dict[str, Any]) -> List[bytes]:
        out = self.close()
        self.index += 1
        self.kind = kind
        self.signed = False
        out.append(sse({"type": "content_block_start", "index": self.index, "content_block": block},
                       "content_block_start"))
        return out

    def delta(self, delta: Dict[str, Any]) -> bytes:
        return sse({"type": "content_block_delta", "index": self.index, "delta": delta}, "content_block_delta")


def encode_stream(stream: chat.Stream, *, model: str, message_id: Optional[str] = None,
                  on_error: Optional[Callable[[ProxyError], None]] = None) -> Iterator[bytes]:
    """The Messages SSE event sequence as the neutral events arrive: one write per event (its
    SSE events joined), the opening message_start and ping going out with the first event's."""
    start_usage = {"input_tokens": stream.input_tokens, "output_tokens": 1,
                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    blocks = _Blocks()
    usage = chat.Usage(input_tokens=stream.input_tokens)
    # The relay hands over a stream whose first event is already in (or a keep-alive), so holding
    # the opening for it costs no time and saves two writes before the first byte.
    out = [sse({"type": "message_start", "message": {
        "id": message_id or new_id(), "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start"),
        sse({"type": "ping"}, "ping")]
    try:
        for event in stream:
            if isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
            elif isinstance(event, chat.Finish):
                out += blocks.close()
                out.append(sse({"type": "message_delta",
                                "delta": {"stop_reason": STOP_REASONS.get(event.reason, "end_turn"),
                                          "stop_sequence": event.stop_sequence},
                                "usage": usage_body(usage)}, "message_delta"))
                out.append(sse({"type": "message_stop"}, "message_stop"))
                yield b"".join(out)
                return
            else:
                _encode_event(event, blocks, out)
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
                out = []
        if out:  # a stream that ended without any event
            yield b"".join(out)
    except ProxyError as exc:
        if on_error is not None:
            on_error(exc)
        out.append(sse(error_body(exc)[1], "error"))
        yield b"".join(out)
    finally:
        stream.close()


def _encode_event(event: chat.Event, blocks: _Blocks, out: List[bytes]) -> None:
    """Append the SSE events for one content (or keep-alive) event to `out`."""
    if isinstance(event, chat.TextDelta):
        if blocks.kind != "text":
            out += blocks.open("text", {"type": "text", "text": ""})
        out.append(blocks.delta({"type": "text_delta", "text": event.text}))
    elif isinstance(event, chat.ThinkingDelta):
        if blocks.kind != "thinking":
            out += blocks.open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        out.append(blocks.delta({"type": "thinking_delta", "thinking": event.text}))
    elif isinstance(event, chat.ThinkingSignature):
        if blocks.kind != "thinking":
            out += blocks.open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        out.append(blocks.sign(event.signature))
        out += blocks.close()
    elif isinstance(event, chat.ToolCallStart):
        out += blocks.open("tool_use", {"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
        blocks.tool_id = event.id
    elif isinstance(event, chat.ToolCallDelta):
        if blocks.kind == "tool_use" and blocks.tool_id == event.id and event.fragment:
            out.append(blocks.delta({"type": "input_json_delta", "partial_json": event.fragment}))
    elif isinstance(event, chat.ToolCallEnd):
        if blocks.tool_id == event.id:
            out += blocks.close()
    elif isinstance(event, chat.Heartbeat):
        out.append(sse({"type": "ping"}, "ping"))


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 413: "request_too_large",
          429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
          504: "timeout_error", 529: "overloaded_error"}


def error_body(error: ProxyError) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
    """(status, body, headers) for an error in Anthropic's shape."""
    status = error.status
    if error.kind == "overloaded" and status in (502, 503):
        status = 529
    message = error.message
    if isinstance(error, TooLarge) and error.tokens and error.limit:
        message = f"prompt is too long: {error.tokens} tokens > {error.limit} maximum"
    kind = _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, int(round(error.retry_after))))
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req_")}
    return status, body, headers


class Messages(CountingProtocol[None]):
    """The Messages API behind the interface: it needs no options besides the request."""

    name = NAME

    def parse(self, body: Dict[str, Any], call: Call) -> Tuple[chat.ChatRequest, None]:
        return parse(body), None

    def render(self, reply: chat.Reply, request: chat.ChatRequest, options: None) -> Dict[str, Any]:
        return render(reply, model=request.model)

    def encode_stream(self, stream: chat.Stream, request: chat.ChatRequest, options: None) -> Iterator[bytes]:
        return encode_stream(stream, model=request.model)

    def error_body(self, error: ProxyError) -> ErrorBody:
        return error_body(error)

    def model_entry(self, info: ModelInfo, name: str) -> Dict[str, Any]:
        return {"type": "model", "id": name, "display_name": info.display_name,
                "created_at": "2025-01-01T00:00:00Z", "max_input_tokens": info.context_window,
                "max_tokens": info.max_output}

    def model_page(self, entries: List[Dict[str, Any]], args: Mapping[str, str]) -> Dict[str, Any]:
        """after_id / before_id / limit paging, as the Models API does it."""
        ids = [entry["id"] for entry in entries]
        start = ids.index(args["after_id"]) + 1 if args.get("after_id") in ids else 0
        end = ids.index(args["before_id"]) if args.get("before_id") in ids else len(entries)
        page = entries[start:end][:query_int(args, "limit", 1000)]
        return {"data": page, "has_more": start + len(page) < end,
                "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}

    def parse_count(self, body: Dict[str, Any], call: Call) -> chat.ChatRequest:
        return parse(body, count_only=True)

    def count_body(self, total: int) -> Dict[str, Any]:
        return {"input_tokens": total}


PROTOCOL = Messages()
