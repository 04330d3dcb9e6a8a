"""OpenAI Chat Completions: parse requests, render replies, encode the SSE stream, shape errors.

Model names (model_rule): gpt-4o, gpt-4 -> claude-sonnet-4; gpt-4o-mini, gpt-3.5-turbo -> claude-haiku-4.5;
o1, o1-preview -> claude-opus-4.5; other OpenAI names by family: a mini/nano word -> role "fast",
o<digit>... -> "strong", other gpt-*/chatgpt-*/codex-* -> "default". Pure: no Flask, no I/O.
"""
from __future__ import annotations

import json
import math
import re
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from .. import chat
from ..errors import BadRequest, ProxyError, Truncated
from .ids import random_id
from .openai_messages import Conversation
from .sse import comment, sse

NAME = "openai"
DONE = b"data: [DONE]\n\n"
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
    """A Kiro id or role for a lower-cased OpenAI model name; None for other names."""
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


# ----- parsing -----------------------------------------------------------------------------


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
    return chat.ChatRequest(
        model=model.strip(),
        messages=tuple(conversation.messages),
        system="\n\n".join(s for s in conversation.system if s),
        tools=_tools(body.get("tools"), "tools") + _tools(body.get("functions"), "functions"),
        tool_choice=_tool_choice(body.get("tool_choice", body.get("function_call"))),
        max_tokens=_max_tokens(body),
        stop=_stops(body.get("stop")),
        thinking=_thinking(body.get("reasoning_effort")),
        response_format=_response_format(body.get("response_format")),
        temperature=_temperature(body.get("temperature")),
        stream=bool(body.get("stream")),
    )


def wants_usage(body: Any) -> bool:
    """True when a streaming client asked for the usage chunk (stream_options.include_usage)."""
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _tools(tools: Any, field: str) -> Tuple[chat.Tool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise BadRequest(f"{field}: must be a list", param=field)
    out = []
    for index, tool in enumerate(tools):
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


def _tool_choice(choice: Any) -> chat.ToolChoice:
    if choice is None or choice == "auto":
        return chat.ToolChoice()
    if choice in ("none", "required"):
        return chat.ToolChoice(choice)
    if isinstance(choice, dict):
        function = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        if isinstance(function.get("name"), str) and function["name"]:
            return chat.ToolChoice("tool", function["name"])
        allowed = choice.get("allowed_tools")
        if isinstance(allowed, dict) and allowed.get("mode") == "required":
            return chat.ToolChoice("required")
        if choice.get("type") == "allowed_tools":
            return chat.ToolChoice()
    raise BadRequest("tool_choice: must be 'none', 'auto', 'required' or "
                     "{\"type\": \"function\", \"function\": {\"name\": ...}}", param="tool_choice")


def _max_tokens(body: Dict[str, Any]) -> Optional[int]:
    found: Optional[int] = None
    for field in ("max_tokens", "max_completion_tokens"):  # the same setting, old and new name
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"{field}: must be a positive integer", param=field)
        found = value
    return found


def _stops(stop: Any) -> Tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop: must be a string or a list of strings", param="stop")
    return tuple(s for s in stop if s)


def _thinking(effort: Any) -> Optional[chat.ThinkingConfig]:
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise BadRequest("reasoning_effort: must be a string such as 'low', 'medium' or 'high'",
                         param="reasoning_effort")
    effort = effort.strip().lower()
    if effort in ("", "none", "minimal"):
        return None
    return chat.ThinkingConfig("adaptive", effort=effort)


def _response_format(value: Any) -> Optional[chat.ResponseFormat]:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return chat.ResponseFormat()
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise BadRequest("response_format.json_schema: an object with name and schema is required",
                             param="response_format")
        schema, name = spec.get("schema"), spec.get("name")
        return chat.ResponseFormat(schema if isinstance(schema, dict) else None,
                                   name if isinstance(name, str) and name else None)
    raise BadRequest("response_format.type: must be 'text', 'json_object' or 'json_schema'",
                     param="response_format")


def _temperature(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest("temperature: must be a number", param="temperature")
    return float(value)


# ----- rendering ---------------------------------------------------------------------------


def usage_body(usage: chat.Usage) -> Dict[str, Any]:
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def tool_call_body(call: chat.ToolUse) -> Dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.input, ensure_ascii=False)}}


def render(reply: chat.Reply, *, model: str, completion_id: Optional[str] = None,
           created: Optional[int] = None) -> Dict[str, Any]:
    calls = reply.tool_uses
    message: Dict[str, Any] = {"role": "assistant", "content": reply.text or (None if calls else ""),
                               "refusal": None}
    if reply.thinking:
        message["reasoning_content"] = reply.thinking
    if calls:
        message["tool_calls"] = [tool_call_body(call) for call in calls]
    return {"id": completion_id or new_id(), "object": "chat.completion",
            "created": int(time.time()) if created is None else created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": FINISH_REASONS.get(reply.finish, "stop")}],
            "usage": usage_body(reply.usage)}


class _Chunks:
    """Chunk framing (shared id/created/model) and the tool call indexes of one streamed message."""

    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        self.head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage
        self.calls: Dict[str, int] = {}  # tool call id -> index within the message
        self.streamed: Dict[str, bool] = {}  # tool call id -> arguments text sent yet

    def delta(self, delta: Dict[str, Any], finish_reason: Optional[str] = None) -> bytes:
        chunk = {**self.head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def tool_delta(self, call_id: str, function: Dict[str, Any], **first: Any) -> bytes:
        return self.delta({"tool_calls": [{"index": self.calls[call_id], **first, "function": function}]})

    def usage(self, usage: chat.Usage) -> bytes:
        return sse({**self.head, "choices": [], "usage": usage_body(usage)})


def encode_stream(stream: chat.Stream, *, model: str, include_usage: bool = False,
                  completion_id: Optional[str] = None, created: Optional[int] = None) -> Iterator[bytes]:
    """Chat completion chunks as events arrive, then [DONE]; a mid-stream ProxyError becomes a
    `data: {"error": ...}` frame and ends the body. Always closes `stream`."""
    chunks = _Chunks(model, completion_id or new_id(), int(time.time()) if created is None else created,
                     include_usage)
    usage = chat.Usage(input_tokens=stream.input_tokens)
    try:
        yield chunks.delta({"role": "assistant", "content": ""})
        for event in stream:
            if isinstance(event, chat.TextDelta) and event.text:
                yield chunks.delta({"content": event.text})
            elif isinstance(event, chat.ThinkingDelta) and event.text:
                yield chunks.delta({"reasoning_content": event.text})
            elif isinstance(event, chat.ToolCallStart):
                chunks.calls[event.id] = len(chunks.calls)
                yield chunks.tool_delta(event.id, {"name": event.name, "arguments": ""}, id=event.id,
                                        type="function")
            elif isinstance(event, chat.ToolCallDelta) and event.fragment and event.id in chunks.calls:
                chunks.streamed[event.id] = True
                yield chunks.tool_delta(event.id, {"arguments": event.fragment})
            elif isinstance(event, chat.ToolCallEnd) and event.id in chunks.calls:
                if not chunks.streamed.get(event.id):  # clients JSON-parse the arguments: never leave ""
                    yield chunks.tool_delta(event.id, {"arguments": json.dumps(event.input, ensure_ascii=False)})
            elif isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
            elif isinstance(event, chat.Heartbeat):
                yield comment()
            elif isinstance(event, chat.Finish):
                yield chunks.delta({}, FINISH_REASONS.get(event.reason, "stop"))
                if include_usage:
                    yield chunks.usage(usage)
                yield DONE
                return
        raise Truncated("the answer ended without a finish signal")
    except ProxyError as exc:
        yield sse(error_body(exc)[1])
    finally:
        stream.close()


# ----- errors ------------------------------------------------------------------------------

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
