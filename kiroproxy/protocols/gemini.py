"""Gemini API (generateContent / streamGenerateContent / countTokens): replies, streams, errors, names.

Parsing lives in gemini_request.py. Model names (model_rule): `gemini-*` with a `flash` or `lite`
part -> role "fast", any other `gemini-*` (`pro`, `exp`...) -> role "default"; aliases win. Thought
text is returned only on request; a thinking block's signature rides on the part after it. In JSON
mode answers lose their fences (jsonmode.py). Pure: no Flask, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .. import chat, jsonmode
from ..errors import ProxyError
from ..kiro.models import ModelInfo
from . import gemini_request, gemini_thoughts
from .ids import random_id
from .interface import Call, CountingProtocol, ErrorBody, query_int
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
METHODS = ("generateContent", "streamGenerateContent", "countTokens")

_FAST = re.compile(r"(?:^|[-_.])(?:flash|lite)(?:$|[-_.])")

parse = gemini_request.parse
parse_count = gemini_request.parse_count
include_thoughts = gemini_request.include_thoughts


def model_rule(name: str) -> Optional[str]:
    """The role for a lower-cased Gemini model name (gemini-3.8-flash -> "fast"); None otherwise."""
    name = name[len("models/"):] if name.startswith("models/") else name
    if not name.startswith("gemini-"):
        return None
    return "fast" if _FAST.search(name) else "default"


def new_id() -> str:
    return random_id(length=22)


class Thoughts:
    """The reasoning on its way out: thought parts only when `visible`, and a signature per
    thinking block on the first part after it (a text or functionCall part), where Gemini puts it
    and Gemini CLI keeps it. The signature holds the reasoning text (gemini_thoughts), so the
    reasoning comes back even from clients that drop thought parts."""

    def __init__(self, visible: bool) -> None:
        self.visible = visible
        self._texts: List[str] = []
        self._signature: Optional[str] = None
        self._signed = False  # the last block ended with its signature
        self._open = False

    def think(self, text: str) -> Optional[Dict[str, Any]]:
        """The thought part for `text`; None when thoughts are hidden or `text` is empty."""
        if not text:
            return None
        if self._signed and self._texts:
            self._texts.append("\n\n")  # a new block after a signed one that no part carried yet
        self._signed = False
        self._texts.append(text)
        self._open = True
        return {"text": text, "thought": True} if self.visible else None

    def sign(self, signature: str) -> None:
        self._signature = signature
        self._signed = self._open = True

    def carry(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """`body`, with the signature of the thinking block that ended right before it."""
        if self._open:
            thinking = chat.Thinking("".join(self._texts), self._signature)
            body["thoughtSignature"] = gemini_thoughts.signature_out(thinking)
            self._texts, self._signature, self._signed, self._open = [], None, False, False
        return body

    def rest(self) -> Optional[Dict[str, Any]]:
        """A last empty text part for a signature no part followed (as Gemini streams it)."""
        return self.carry({"text": ""}) if self._open else None


def usage_metadata(usage: chat.Usage) -> Dict[str, Any]:
    """Gemini counts thoughts apart from the candidates; Usage.output_tokens includes them."""
    prompt, output = usage.input_tokens or 0, usage.output_tokens or 0
    thoughts = min(usage.reasoning_tokens, output)
    body = {"promptTokenCount": prompt, "candidatesTokenCount": output - thoughts,
            "totalTokenCount": prompt + output, "thoughtsTokenCount": thoughts}
    if usage.cache_read_tokens:
        body["cachedContentTokenCount"] = usage.cache_read_tokens
    return body


def part_body(part: chat.Part, thoughts: Thoughts) -> Optional[Dict[str, Any]]:
    """One reply part in Gemini's shape, or None when nothing is shown for it."""
    if isinstance(part, chat.Thinking):
        body = thoughts.think(part.text)
        if part.signature:
            thoughts.sign(part.signature)
        return body
    if isinstance(part, chat.Text):
        return thoughts.carry({"text": part.text}) if part.text else None
    if isinstance(part, chat.ToolUse):
        return thoughts.carry({"functionCall": {"id": part.id, "name": part.name, "args": part.input}})
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
           json_mode: bool = False, include_thoughts: bool = False) -> Dict[str, Any]:
    """A GenerateContentResponse. Thought text only with include_thoughts. With json_mode, an
    answer that is not valid JSON but holds a JSON object or array (fenced, or with prose around
    it) is cut down to that JSON."""
    parts = jsonmode.json_parts(reply.parts) if json_mode else reply.parts
    thoughts = Thoughts(include_thoughts)
    bodies = [b for b in (part_body(p, thoughts) for p in parts) if b is not None]
    rest = thoughts.rest()
    if rest is not None:
        bodies.append(rest)
    return response_body(bodies, model=model, response_id=response_id or new_id(), finish=reply.finish,
                         usage=reply.usage)


def _documents(stream: chat.Stream, model: str, response_id: str, json_mode: bool,
               thoughts: Thoughts) -> Iterator[Optional[Dict[str, Any]]]:
    """Response chunks as the events arrive (None for a heartbeat), each with only the new parts.

    A tool call is held from its start to its end and sent whole; hidden reasoning is sent as
    heartbeats. The last chunk carries the finishReason and usage; after a ProxyError the last
    document is the error body instead."""
    names: Dict[str, str] = {}
    usage = chat.Usage(input_tokens=stream.input_tokens)
    finish = "end_turn"
    events = jsonmode.strip_fences(stream) if json_mode else iter(stream)
    try:
        for event in events:
            if isinstance(event, chat.Heartbeat):
                yield None
            elif isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
            elif isinstance(event, chat.Finish):
                finish = event.reason  # read on to the end, so the relay records a completed answer
            else:
                part = _stream_part(event, names, thoughts)
                if part is not None:
                    yield response_body([part], model=model, response_id=response_id)
                elif isinstance(event, chat.ThinkingDelta) and event.text:
                    yield None  # hidden reasoning: keep the connection busy all the same
    except ProxyError as error:
        yield error_body(error)[1]
        return
    rest = thoughts.rest()
    yield response_body([rest] if rest else [], model=model, response_id=response_id, finish=finish,
                        usage=usage)


def _stream_part(event: chat.Event, names: Dict[str, str], thoughts: Thoughts) -> Optional[Dict[str, Any]]:
    if isinstance(event, chat.TextDelta):
        return part_body(chat.Text(event.text), thoughts)
    if isinstance(event, chat.ThinkingDelta):
        return thoughts.think(event.text)
    if isinstance(event, chat.ThinkingSignature):
        thoughts.sign(event.signature)
    elif isinstance(event, chat.ToolCallStart):
        names[event.id] = event.name
    elif isinstance(event, chat.ToolCallEnd):
        return part_body(chat.ToolUse(event.id, names.pop(event.id, ""), event.input), thoughts)
    return None


def encode_sse(stream: chat.Stream, *, model: str, response_id: Optional[str] = None, json_mode: bool = False,
               include_thoughts: bool = False) -> Iterator[bytes]:
    """`data:` chunks (no event lines, no [DONE]); closes the stream.

    An error after the first byte goes out twice: as a bare JSON line, which is what both
    google-genai SDKs look for in a stream (they raise on it), then as a `data:` chunk for
    plain SSE readers."""
    try:
        documents = _documents(stream, model, response_id or new_id(), json_mode, Thoughts(include_thoughts))
        for document in documents:
            if document is None:
                yield HEARTBEAT
            elif "error" in document:
                yield dumps(document).encode() + b"\n\n"
                yield sse(document)
            else:
                yield sse(document)
    finally:
        stream.close()


def encode_json_array(stream: chat.Stream, *, model: str, response_id: Optional[str] = None,
                      json_mode: bool = False, include_thoughts: bool = False) -> Iterator[bytes]:
    """One JSON array written progressively: `[`, chunks separated by `,`, `]`; closes the stream.

    An error after the first byte is the next element; the array is closed after it."""
    try:
        yield b"["
        separator = b""
        documents = _documents(stream, model, response_id or new_id(), json_mode, Thoughts(include_thoughts))
        for document in documents:
            if document is None:
                yield HEARTBEAT
                continue
            yield separator + dumps(document).encode()
            separator = b",\n"
        yield b"]"
    finally:
        stream.close()


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


@dataclass(frozen=True)
class GeminiOptions:
    """The model named in the path (answers echo it), the stream's shape, JSON mode, thoughts."""

    model: str
    sse: bool = True
    json_mode: bool = False
    include_thoughts: bool = False


class GenerateContent(CountingProtocol[GeminiOptions]):
    """generateContent / streamGenerateContent / countTokens behind the interface."""

    name = NAME

    def parse(self, body: Dict[str, Any], call: Call) -> Tuple[chat.ChatRequest, GeminiOptions]:
        req = parse(body, model=call.model, stream=call.stream)
        return req, GeminiOptions(call.model, call.sse, req.response_format is not None, include_thoughts(body))

    def render(self, reply: chat.Reply, request: chat.ChatRequest, options: GeminiOptions) -> Dict[str, Any]:
        return render(reply, model=options.model, json_mode=options.json_mode,
                      include_thoughts=options.include_thoughts)

    def encode_stream(self, stream: chat.Stream, request: chat.ChatRequest,
                      options: GeminiOptions) -> Iterator[bytes]:
        encoder = encode_sse if options.sse else encode_json_array
        return encoder(stream, model=options.model, json_mode=options.json_mode,
                       include_thoughts=options.include_thoughts)

    def mimetype(self, options: GeminiOptions) -> str:
        return "text/event-stream" if options.sse else "application/json"

    def error_body(self, error: ProxyError) -> ErrorBody:
        return error_body(error)

    def model_entry(self, info: ModelInfo, name: str) -> Dict[str, Any]:
        return {"name": f"models/{name}", "baseModelId": name, "version": "001",
                "displayName": info.display_name, "description": f"Kiro model {info.id}",
                "inputTokenLimit": info.context_window, "outputTokenLimit": info.max_output,
                "supportedGenerationMethods": list(METHODS), "thinking": True}

    def model_page(self, entries: List[Dict[str, Any]], args: Mapping[str, str]) -> Dict[str, Any]:
        """pageSize / pageToken paging; the token is the offset of the next page."""
        size = query_int(args, "pageSize", 1000)
        start = query_int(args, "pageToken", 0) if args.get("pageToken") else 0
        body: Dict[str, Any] = {"models": entries[start:start + size]}
        if start + size < len(entries):
            body["nextPageToken"] = str(start + size)
        return body

    def parse_count(self, body: Dict[str, Any], call: Call) -> chat.ChatRequest:
        return parse_count(body, model=call.model)

    def count_body(self, total: int) -> Dict[str, Any]:
        return {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}


PROTOCOL = GenerateContent()
