"""OpenAI Chat Completions: parse requests, render replies, encode the SSE stream, shape errors.

Field readers live in openai_messages.py and fields.py; JSON mode answers are cleaned (jsonmode); legacy
`functions` requests get legacy-shaped answers. Model names: see model_rule and OPENAI_MODELS.
Pure: no Flask, no I/O.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

from .. import chat, jsonmode
from ..errors import BadRequest, ProxyError, Truncated
from ..kiro.models import ModelInfo
from . import fields, openai_messages
from .ids import random_id
from .interface import Call, ClientProtocol, ErrorBody
from .openai_messages import Conversation
from .sse import comment, sse

NAME = "openai"
DONE = b"data: [DONE]\n\n"
MODEL_CREATED = 1735689600  # 2025-01-01: a fixed creation time for models Kiro does not date
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}

# OpenAI model names. The exact table is the API reference's default mapping; names missing
# from it go by family, in this order: an OpenAI name with a `mini` or `nano` word -> the role
# "fast"; a reasoning model `o<digit>...` (o3, o4-pro) -> "strong"; any other `gpt-*`,
# `chatgpt-*` or `codex-*` name -> "default". The Catalog turns roles into Kiro ids from the
# settings default_model / fast_model / strong_model; user model_aliases win over all of this.
# Date and snapshot suffixes (gpt-4o-2024-08-06, gpt-4-0613) are dropped before the exact table.
OPENAI_MODELS = {
    "gpt-4o": "claude-sonnet-4", "gpt-4": "claude-sonnet-4",
    "gpt-4o-mini": "claude-haiku-4.5", "gpt-3.5-turbo": "claude-haiku-4.5",
    "o1": "claude-opus-4.5", "o1-preview": "claude-opus-4.5",
}
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")
_SMALL = re.compile(r"(?:^|[-_.])(?:mini|nano)(?:$|[-_.])")
_REASONING = re.compile(r"^o\d")
_FAMILY = re.compile(r"^(?:gpt-|chatgpt-|codex-)|^o\d")


def model_rule(name: str) -> Optional[str]:
    """A Kiro id or role for a lower-cased OpenAI model name; None for other names.

    gpt-4o, gpt-4 -> claude-sonnet-4; gpt-4o-mini, gpt-3.5-turbo -> claude-haiku-4.5; o1, o1-preview
    -> claude-opus-4.5; other names by family: a mini/nano word -> role "fast", o<digit>... ->
    "strong", other gpt-*/chatgpt-*/codex-* -> "default"."""
    name = name[len("openai/"):] if name.startswith("openai/") else name
    if not _FAMILY.search(name):
        return None
    exact = OPENAI_MODELS.get(name) or OPENAI_MODELS.get(_SNAPSHOT.sub("", name))
    if exact:
        return exact
    if _SMALL.search(name):
        return "fast"
    return "strong" if _REASONING.match(name) else "default"


def new_id(prefix: str = "chatcmpl-") -> str:
    return random_id(prefix)


def parse(body: Any) -> chat.ChatRequest:
    """A ChatRequest from a Chat Completions body. Raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: a model name is required", param="model")
    if body.get("n") not in (None, 1):
        raise BadRequest("n: only one choice per request is supported", param="n")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages: a non-empty list of messages is required", param="messages")
    conversation = Conversation()
    for index, raw in enumerate(raw_messages):
        conversation.add(raw, index)
    if not conversation.messages:
        raise BadRequest("messages: at least one user or assistant message is required", param="messages")
    declared = openai_messages.tools
    tools = declared(body.get("tools"), "tools") + declared(body.get("functions"), "functions")
    fields.number(body.get("top_p"), "top_p")
    return chat.ChatRequest(
        model=model.strip(),
        messages=tuple(conversation.messages),
        system="\n\n".join(s for s in conversation.system if s),
        tools=tools,
        tool_choice=openai_messages.tool_choice(body, {tool.name for tool in tools}),
        max_tokens=openai_messages.max_tokens(body),
        stop=fields.stops(body.get("stop"), "stop", single=True),
        thinking=openai_messages.thinking(body.get("reasoning_effort")),
        response_format=openai_messages.response_format(body.get("response_format")),
        temperature=fields.number(body.get("temperature"), "temperature"),
        stream=openai_messages.stream_flag(body),
    )


def wants_usage(body: Any) -> bool:
    """True when a streaming client asked for the usage chunk (stream_options.include_usage)."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def uses_legacy_functions(body: Any) -> bool:
    """True for a request in the pre-tools shape (`functions`, no `tools`): it is answered in
    that shape too (message.function_call, finish_reason "function_call")."""
    return isinstance(body, dict) and body.get("functions") is not None and not body.get("tools")


def usage_body(usage: chat.Usage) -> Dict[str, Any]:
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def tool_call_body(call: chat.ToolUse) -> Dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.input, ensure_ascii=False)}}


def finish_reason(reason: str, legacy_functions: bool = False) -> str:
    if legacy_functions and reason == "tool_use":
        return "function_call"
    return FINISH_REASONS.get(reason, "stop")


def render(reply: chat.Reply, *, model: str, completion_id: Optional[str] = None,
           created: Optional[int] = None, json_mode: bool = False,
           legacy_functions: bool = False) -> Dict[str, Any]:
    """A chat.completion. json_mode cuts fenced or prose-wrapped JSON down to the JSON (so the
    SDKs' .parse() helpers can read it); legacy_functions answers a tool call as the single
    `function_call` of the pre-tools API (a second call in the same reply is dropped)."""
    calls = reply.tool_uses
    text = jsonmode.extract_json(reply.text) if json_mode else reply.text
    message: Dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if reply.thinking:
        message["reasoning_content"] = reply.thinking
    if calls and legacy_functions:
        message["function_call"] = tool_call_body(calls[0])["function"]
    elif calls:
        message["tool_calls"] = [tool_call_body(call) for call in calls]
    return {"id": completion_id or new_id(), "object": "chat.completion",
            "created": int(time.time()) if created is None else created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(reply.finish, legacy_functions)}],
            "usage": usage_body(reply.usage)}


class _Chunks:
    """One streamed message: chunk framing (shared id/created/model), then what each neutral
    event becomes; tracks the tool calls (their index, whether arguments have streamed)."""

    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool,
                 legacy_functions: bool) -> None:
        self.head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage
        self.legacy = legacy_functions
        self.calls: Dict[str, int] = {}  # tool call id -> index within the message
        self.streamed: Dict[str, bool] = {}  # tool call id -> arguments text sent yet

    def delta(self, delta: Dict[str, Any], finish_reason: Optional[str] = None) -> bytes:
        chunk = {**self.head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def usage(self, usage: chat.Usage) -> bytes:
        return sse({**self.head, "choices": [], "usage": usage_body(usage)})

    def on(self, event: chat.Event) -> Optional[bytes]:
        """The chunk for a content event (text, thinking, tool call, heartbeat), if any."""
        if isinstance(event, chat.TextDelta) and event.text:
            return self.delta({"content": event.text})
        if isinstance(event, chat.ThinkingDelta) and event.text:
            return self.delta({"reasoning_content": event.text})
        if isinstance(event, chat.ToolCallStart):
            if self.legacy and self.calls:
                return None  # the legacy shape has room for one call only
            self.calls[event.id] = len(self.calls)
            return self._call(event.id, {"name": event.name, "arguments": ""}, id=event.id, type="function")
        if isinstance(event, chat.ToolCallDelta) and event.fragment and event.id in self.calls:
            self.streamed[event.id] = True
            return self._call(event.id, {"arguments": event.fragment})
        if isinstance(event, chat.ToolCallEnd) and event.id in self.calls and not self.streamed.get(event.id):
            # Clients JSON-parse the arguments: never leave them "".
            return self._call(event.id, {"arguments": json.dumps(event.input, ensure_ascii=False)})
        if isinstance(event, chat.Heartbeat):
            return comment()
        return None

    def _call(self, call_id: str, function: Dict[str, Any], **first: Any) -> bytes:
        if self.legacy:
            return self.delta({"function_call": function})
        return self.delta({"tool_calls": [{"index": self.calls[call_id], **first, "function": function}]})


def encode_stream(stream: chat.Stream, *, model: str, include_usage: bool = False,
                  completion_id: Optional[str] = None, created: Optional[int] = None,
                  json_mode: bool = False, legacy_functions: bool = False) -> Iterator[bytes]:
    """Chat completion chunks as events arrive, then [DONE]; a mid-stream ProxyError becomes a
    `data: {"error": ...}` frame and ends the body. Always closes `stream`. The opening role
    chunk goes out with the first event's chunk (the relay's streams start with an event in
    hand), and the closing chunks in one write.

    json_mode drops a ```json fence around the answer (holding back a few characters at a
    time); legacy_functions streams a tool call as `delta.function_call` (see render)."""
    chunks = _Chunks(model, completion_id or new_id(), int(time.time()) if created is None else created,
                     include_usage, legacy_functions)
    usage = chat.Usage(input_tokens=stream.input_tokens)
    events = jsonmode.strip_fences(stream) if json_mode else iter(stream)
    opening: Optional[bytes] = chunks.delta({"role": "assistant", "content": ""})
    try:
        for event in events:
            if isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
                chunk = None
            elif isinstance(event, chat.Finish):
                tail = [chunks.delta({}, finish_reason(event.reason, legacy_functions))]
                if include_usage:
                    tail.append(chunks.usage(usage))
                tail.append(DONE)
                yield (opening or b"") + b"".join(tail)
                return
            else:
                chunk = chunks.on(event)
            if opening is not None:
                chunk, opening = opening + (chunk or b""), None
            if chunk is not None:
                yield chunk
        raise Truncated("the answer ended without a finish signal")
    except ProxyError as exc:
        yield (opening or b"") + sse(error_body(exc)[1])
    finally:
        stream.close()


# kind -> (HTTP status, error type, default code); other kinds go by status.
_ERRORS = {
    "invalid_request": (None, "invalid_request_error", None),
    "authentication": (None, "authentication_error", None),
    "permission": (None, "permission_error", None),
    "not_found": (None, "invalid_request_error", None),
    "model_not_found": (404, "invalid_request_error", "model_not_found"),
    "context_length": (400, "invalid_request_error", "context_length_exceeded"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_exceeded"),
    "quota": (429, "insufficient_quota", "insufficient_quota"),
    # OpenAI clients know 503 as "overloaded, retry"; Anthropic's 529 means nothing to them.
    "overloaded": (503, "server_error", None),
    "unavailable": (503, "server_error", None),
}


def error_body(error: ProxyError) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
    """(status, body, headers) for any ProxyError in OpenAI's `{"error": {...}}` shape."""
    status, kind, code = _ERRORS.get(error.kind, (None, None, None))
    status = status or error.status
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    message = error.message
    tokens, limit = getattr(error, "tokens", None), getattr(error, "limit", None)
    if error.kind == "context_length" and tokens and limit:
        # The wording clients (and LangChain-style helpers) match to detect a context overflow.
        message = (f"This model's maximum context length is {limit} tokens. However, your messages "
                   f"resulted in {tokens} tokens. Please reduce the length of the messages.")
    headers: Dict[str, str] = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    if error.kind == "quota":
        headers["x-should-retry"] = "false"  # the SDKs would otherwise retry an exhausted quota
    body = {"error": {"message": message, "type": kind, "param": error.param, "code": error.code or code}}
    return status, body, headers


@dataclass(frozen=True)
class ChatOptions:
    """What the answer's shape depends on: the usage chunk, the pre-tools shape, JSON mode."""

    include_usage: bool = False
    legacy_functions: bool = False
    json_mode: bool = False


class ChatCompletions(ClientProtocol[ChatOptions]):
    """Chat Completions behind the interface; its model list is also the Responses API's."""

    name = NAME

    def parse(self, body: Dict[str, Any], call: Call) -> Tuple[chat.ChatRequest, ChatOptions]:
        req = parse(body)
        return req, ChatOptions(wants_usage(body), uses_legacy_functions(body), req.response_format is not None)

    def render(self, reply: chat.Reply, request: chat.ChatRequest, options: ChatOptions) -> Dict[str, Any]:
        return render(reply, model=request.model, json_mode=options.json_mode,
                      legacy_functions=options.legacy_functions)

    def encode_stream(self, stream: chat.Stream, request: chat.ChatRequest,
                      options: ChatOptions) -> Iterator[bytes]:
        return encode_stream(stream, model=request.model, include_usage=options.include_usage,
                             json_mode=options.json_mode, legacy_functions=options.legacy_functions)

    def error_body(self, error: ProxyError) -> ErrorBody:
        return error_body(error)

    def model_entry(self, info: ModelInfo, name: str) -> Dict[str, Any]:
        return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "kiro"}


PROTOCOL = ChatCompletions()
