"""Gemini API (generateContent / streamGenerateContent / countTokens): replies, streams, errors, names.

Parsing lives in gemini_request.py. Model names (model_rule): `gemini-*` with a `flash` or `lite`
part -> role "fast", any other `gemini-*` (`pro`, `exp`...) -> role "default"; aliases win. In JSON
mode a whole answer that wraps its JSON in fences or prose is cut down to the JSON (render).
Pure: no Flask, no I/O.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .. import chat
from ..errors import ProxyError
from . import gemini_request
from .ids import random_id
from .sse import dumps, sse

NAME = "gemini"
FINISH_REASONS = {"end_turn": "STOP", "tool_use": "STOP", "stop_sequence": "STOP",
                  "max_tokens": "MAX_TOKENS", "refusal": "SAFETY"}
# Google's canonical error statuses by HTTP status.
STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
            409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
            503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
# A keep-alive for both stream shapes: a blank line. Not an SSE comment: google-genai (Python
# 3.6.1 and the JS SDK inside Gemini CLI 0.61) parses every non-`data:` line as JSON and fails.
HEARTBEAT = b"\n"

_FAST = re.compile(r"(?:^|[-_.])(?:flash|lite)(?:$|[-_.])")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)```", re.S)
_JSON_START = re.compile(r"[\[{]")
_MAX_JSON_STARTS = 200

parse = gemini_request.parse
parse_count = gemini_request.parse_count


def model_rule(name: str) -> Optional[str]:
    """The role for a lower-cased Gemini model name (gemini-3.8-flash -> "fast"); None otherwise."""
    name = name[len("models/"):] if name.startswith("models/") else name
    if not name.startswith("gemini-"):
        return None
    return "fast" if _FAST.search(name) else "default"


def new_id() -> str:
    return random_id(length=22)


# ----- rendering ---------------------------------------------------------------------------


def usage_metadata(usage: chat.Usage) -> Dict[str, Any]:
    """Gemini counts thoughts apart from the candidates; Usage.output_tokens includes them."""
    prompt, output = usage.input_tokens or 0, usage.output_tokens or 0
    thoughts = min(usage.reasoning_tokens, output)
    body = {"promptTokenCount": prompt, "candidatesTokenCount": output - thoughts,
            "totalTokenCount": prompt + output, "thoughtsTokenCount": thoughts}
    if usage.cache_read_tokens:
        body["cachedContentTokenCount"] = usage.cache_read_tokens
    return body


def part_body(part: chat.Part) -> Optional[Dict[str, Any]]:
    if isinstance(part, chat.Thinking):
        body: Dict[str, Any] = {"text": part.text, "thought": True}
        if part.signature:
            body["thoughtSignature"] = gemini_request.signature_out(part.signature)
        return body
    if isinstance(part, chat.Text):
        return {"text": part.text} if part.text else None
    if isinstance(part, chat.ToolUse):
        return {"functionCall": {"id": part.id, "name": part.name, "args": part.input}}
    return None


def response_body(parts: List[Dict[str, Any]], *, model: str, response_id: str,
                  finish: Optional[str] = None, usage: Optional[chat.Usage] = None) -> Dict[str, Any]:
    candidate: Dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = FINISH_REASONS.get(finish, "OTHER")
    body: Dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage_metadata(usage)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def render(reply: chat.Reply, *, model: str, response_id: Optional[str] = None,
           json_mode: bool = False) -> Dict[str, Any]:
    """A GenerateContentResponse. With json_mode, an answer that is not valid JSON but holds a
    JSON object or array (fenced, or with prose around it) is cut down to that JSON."""
    parts = list(reply.parts)
    if json_mode:
        parts = _json_only(parts)
    bodies = [b for b in (part_body(p) for p in parts) if b is not None]
    return response_body(bodies, model=model, response_id=response_id or new_id(), finish=reply.finish,
                         usage=reply.usage)


def _json_only(parts: List[chat.Part]) -> List[chat.Part]:
    texts = [i for i, p in enumerate(parts) if isinstance(p, chat.Text)]
    if not texts:
        return parts
    found = json_value_in("".join(parts[i].text for i in texts))
    if found is None:
        return parts
    keep = [p for i, p in enumerate(parts) if i not in texts[1:]]
    keep[texts[0]] = chat.Text(found)
    return keep


def json_value_in(text: str) -> Optional[str]:
    """The JSON object or array inside `text`, or None when `text` is already JSON or holds none.

    Tries a fenced block first (```json ... ```), then the first `{` or `[` that starts a value.
    """
    if _is_json(text):
        return None
    for block in _FENCE.findall(text):
        if _is_json(block) and block.strip()[:1] in ("{", "["):
            return block.strip()
    decoder = json.JSONDecoder()
    for count, match in enumerate(_JSON_START.finditer(text)):
        if count >= _MAX_JSON_STARTS:
            break
        try:
            _, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return text[match.start():end]
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# ----- streaming ---------------------------------------------------------------------------


def _documents(stream: chat.Stream, model: str, response_id: str) -> Iterator[Optional[Dict[str, Any]]]:
    """Response chunks as the events arrive (None for a heartbeat), each with only the new parts.

    A tool call is held from its start to its end and sent whole. The last chunk carries the
    finishReason and usage; after a ProxyError the last document is the error body instead."""
    names: Dict[str, str] = {}
    usage = chat.Usage(input_tokens=stream.input_tokens)
    finish = "end_turn"
    try:
        for event in stream:
            if isinstance(event, chat.Heartbeat):
                yield None
            elif isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
            elif isinstance(event, chat.Finish):
                finish = event.reason  # read on to the end, so the relay records a completed answer
            else:
                part = _stream_part(event, names)
                if part is not None:
                    yield response_body([part], model=model, response_id=response_id)
    except ProxyError as error:
        yield error_body(error)[1]
        return
    yield response_body([], model=model, response_id=response_id, finish=finish, usage=usage)


def _stream_part(event: chat.Event, names: Dict[str, str]) -> Optional[Dict[str, Any]]:
    if isinstance(event, chat.TextDelta):
        return part_body(chat.Text(event.text))
    if isinstance(event, chat.ThinkingDelta):
        return part_body(chat.Thinking(event.text)) if event.text else None
    if isinstance(event, chat.ThinkingSignature):
        return part_body(chat.Thinking("", event.signature))
    if isinstance(event, chat.ToolCallStart):
        names[event.id] = event.name
    elif isinstance(event, chat.ToolCallEnd):
        return part_body(chat.ToolUse(event.id, names.pop(event.id, ""), event.input))
    return None


def encode_sse(stream: chat.Stream, *, model: str, response_id: Optional[str] = None) -> Iterator[bytes]:
    """`data:` chunks (no event lines, no [DONE]); closes the stream.

    An error after the first byte goes out twice: as a bare JSON line, which is what both
    google-genai SDKs look for in a stream (they raise on it), then as a `data:` chunk for
    plain SSE readers."""
    try:
        for document in _documents(stream, model, response_id or new_id()):
            if document is None:
                yield HEARTBEAT
            elif "error" in document:
                yield dumps(document).encode() + b"\n\n"
                yield sse(document)
            else:
                yield sse(document)
    finally:
        stream.close()


def encode_json_array(stream: chat.Stream, *, model: str, response_id: Optional[str] = None) -> Iterator[bytes]:
    """One JSON array written progressively: `[`, chunks separated by `,`, `]`; closes the stream.

    An error after the first byte is the next element; the array is closed after it."""
    try:
        yield b"["
        separator = b""
        for document in _documents(stream, model, response_id or new_id()):
            if document is None:
                yield HEARTBEAT
                continue
            yield separator + dumps(document).encode()
            separator = b",\n"
        yield b"]"
    finally:
        stream.close()


# ----- errors ------------------------------------------------------------------------------


def error_body(error: ProxyError) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
    """(status, body, headers) in Google's shape {"error": {"code", "message", "status"}}.

    Overloaded and bad-gateway failures answer 503 UNAVAILABLE, which Gemini clients retry."""
    status = error.status
    if status in (502, 529) or error.kind == "overloaded":
        status = 503
    canonical = STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    body: Dict[str, Any] = {"code": status, "message": error.message, "status": canonical}
    headers: Dict[str, str] = {}
    if error.retry_after is not None:
        seconds = max(1, int(round(error.retry_after)))
        headers["retry-after"] = str(seconds)
        # Gemini CLI reads the delay from RetryInfo, as Google sends it.
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}]
    return status, {"error": body}, headers
