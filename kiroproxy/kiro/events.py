"""Translate Kiro event-stream frames into neutral chat events (upstream reference §5, §6.3-6.7).

Sans-IO: frames in, chat events out; no clock, no network, and answer content is never logged.
Exception frames raise KiroFailure, invalid-state events UpstreamError, and a stream that ends
before its completion signal raises Truncated.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Mapping, Optional, Union

from ..chat import (
    Event,
    Finish,
    Heartbeat,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from ..errors import Truncated, UpstreamError
from .errors import KiroFailure, classify_exception
from .eventstream import DecodeError, Frame
from .thinking import ThinkingSplitter
from .toolcalls import TextCall, TextCalls, ToolCalls, new_tool_id

log = logging.getLogger(__name__)

# Real answers repeat short chunks ("\n", "|", "**"); only long exact repeats are upstream duplicates.
MIN_DUPLICATE_CHUNK = 8


_OUTPUT = (TextDelta, ThinkingDelta, ThinkingSignature, ToolCallStart, ToolCallDelta, ToolCallEnd)
_REFUSAL_STOPS = ("filter", "guardrail", "refusal")
_LENGTH_STOPS = {"max_tokens", "length", "model_context_window_exceeded"}



class Translator:
    """One upstream answer: feed() every frame in order, then finish() once at the end of the body.

    `tool_names` maps the names sent upstream back to the client's names. `new_id` makes ids
    for text-form tool calls (Kiro's own tool-use ids are kept). feed() raises KiroFailure for
    exception frames, UpstreamError for invalidStateEvent and DecodeError when a known event's
    payload is not JSON; finish() raises Truncated (see there).
    """

    def __init__(self, tool_names: Optional[Mapping[str, str]] = None, *, thinking_tags: bool = True,
                 new_id: Callable[[], str] = new_tool_id) -> None:
        self._tools = ToolCalls(tool_names, new_id)
        self._thinking = ThinkingSplitter() if thinking_tags else None
        self._text_calls = TextCalls()
        self._last_chunk = ""
        self._saw_text = False
        self._refusal = False
        self._length_stop = False
        self._flushed = False
        self._began = False  # a Heartbeat already let the stream start
        self.completed = False  # an end-of-answer signal (context usage or metadata) was seen
        self.saw_output = False  # text, thinking or a tool call was emitted

    def feed(self, frame: Frame) -> List[Event]:
        if frame.message_type in ("exception", "error"):
            raise _failure(frame)
        if frame.message_type != "event":
            return []
        method = _EVENT_METHODS.get(frame.event_type)
        if method is None:
            log.debug("ignoring Kiro event %r", frame.event_type)
            return []
        payload = _unwrap(frame.event_type, frame.json())
        events: List[Event] = getattr(self, method)(payload)
        self._note(events)
        return events

    def flush(self) -> List[Event]:
        """Release held-back text and thinking. finish() calls it; a relay that wants the partial
        answer even when finish() raises Truncated calls it first. Idempotent."""
        if self._flushed:
            return []
        self._flushed = True
        events: List[Event] = []
        if self._thinking is not None:
            events += self._answer(self._thinking.finish())
        events += self._visible(self._text_calls.finish())
        self._note(events)
        return events

    def finish(self) -> List[Event]:
        """Held-back events, then Finish. Raises Truncated when no completion signal was seen; a
        tool call still open at a completed end is closed (sent if its input is whole)."""
        events = self.flush()
        if not self.completed:
            where = "inside a tool call" if self._tools.open_id is not None else "before the answer was complete"
            raise Truncated(f"upstream stream ended {where}")
        events += self._separate(self._tools.close())
        self._note(events)
        return events + [Finish(self._reason())]

    def _reason(self) -> str:
        if self._tools.malformed or self._length_stop:
            return "max_tokens"
        if self._tools.completed:
            return "tool_use"
        if self._refusal:
            return "refusal"
        if self._thinking is not None and self._thinking.in_thinking and not self._saw_text:
            return "max_tokens"  # the budget ran out while the model was still reasoning
        return "end_turn"

    def _note(self, events: List[Event]) -> None:
        for event in events:
            if isinstance(event, _OUTPUT):
                self.saw_output = True
            if isinstance(event, TextDelta) and event.text.strip():
                self._saw_text = True

    def _text(self, payload: dict) -> List[Event]:
        content = payload.get("content")
        if not isinstance(content, str) or not content:
            return []
        if len(content) >= MIN_DUPLICATE_CHUNK and content == self._last_chunk:
            return []
        self._last_chunk = content
        pieces = self._thinking.feed(content) if self._thinking is not None else [TextDelta(content)]
        return self._answer(pieces)

    def _answer(self, pieces: List[Union[TextDelta, ThinkingDelta]]) -> List[Event]:
        """Thinking passes through; answer text goes through the text-form tool-call extractor."""
        events: List[Event] = []
        for piece in pieces:
            if isinstance(piece, TextDelta):
                events += self._visible(self._text_calls.feed(piece.text))
            else:
                events.append(piece)
        return events

    def _visible(self, items: List[Union[str, TextCall]]) -> List[Event]:
        events: List[Event] = []
        for item in items:
            if isinstance(item, TextCall):
                events += self._tools.add_whole(item.name, item.args)
            elif item:
                events.append(TextDelta(item))
        return events

    def _tool_use(self, payload: dict) -> List[Event]:
        self._last_chunk = ""
        # A text-form call cannot span a native tool call: release what the extractor holds so
        # the answer keeps its order.
        events = self._visible(self._text_calls.finish())
        self._note(events)
        events += self._separate(self._tools.feed(payload))
        if not events and not self.saw_output and not self._began:
            # A call is held until its input is whole: an answer that opens with one would hold
            # back the response itself (no headers, no pings) for as long as the input takes.
            self._began = True
            return [Heartbeat()]
        return events

    def _separate(self, events: List[Event]) -> List[Event]:
        """The only text a tool call yields is a not-run notice: keep it off the answer's last line."""
        return [TextDelta("\n\n" + e.text) if isinstance(e, TextDelta) and self._saw_text else e
                for e in events]

    def _reasoning(self, payload: dict) -> List[Event]:
        self._last_chunk = ""
        events: List[Event] = []
        text, signature = payload.get("text"), payload.get("signature")
        if isinstance(text, str) and text:
            events.append(ThinkingDelta(text))
        if isinstance(signature, str) and signature:
            events.append(ThinkingSignature(signature))
        return events  # redactedContent carries nothing a client can show

    def _context_usage(self, payload: dict) -> List[Event]:
        self.completed = True
        percent = _number(payload.get("contextUsagePercentage"))
        return [Usage(context_percent=percent)] if percent is not None else []

    def _metadata(self, payload: dict) -> List[Event]:
        self.completed = True
        stop = payload.get("stopReason")
        if isinstance(stop, str):
            lowered = stop.lower()
            self._refusal = self._refusal or any(word in lowered for word in _REFUSAL_STOPS)
            self._length_stop = self._length_stop or lowered in _LENGTH_STOPS
        usage = payload.get("tokenUsage")
        if not isinstance(usage, dict):
            return []
        uncached = _count(usage.get("uncachedInputTokens"))
        cache_read = _count(usage.get("cacheReadInputTokens"))
        cache_write = _count(usage.get("cacheWriteInputTokens"))
        known_input = uncached is not None or cache_read is not None
        return [Usage(input_tokens=(uncached or 0) + (cache_read or 0) if known_input else None,
                      output_tokens=_count(usage.get("outputTokens")),
                      cache_read_tokens=cache_read or 0, cache_write_tokens=cache_write or 0)]

    def _metering(self, payload: dict) -> List[Event]:
        credits = _number(payload.get("usage"))
        return [Usage(credits=credits)] if credits is not None else []

    def _invalid_state(self, payload: dict) -> List[Event]:
        reason = str(payload.get("reason") or "")
        message = str(payload.get("message") or "")
        detail = ": ".join(part for part in (reason, message) if part) or "no detail"
        raise UpstreamError(f"Kiro reported an invalid state: {detail}")


_EVENT_METHODS: Dict[str, str] = {
    "assistantResponseEvent": "_text",
    "codeEvent": "_text",
    "toolUseEvent": "_tool_use",
    "reasoningContentEvent": "_reasoning",
    "contextUsageEvent": "_context_usage",
    "metadataEvent": "_metadata",
    "meteringEvent": "_metering",
    "invalidStateEvent": "_invalid_state",
}  # everything else (messageMetadataEvent, followupPromptEvent, citations, ...) is not answer text


def _failure(frame: Frame) -> KiroFailure:
    """The KiroFailure for an exception/error frame; the message comes from the payload or header."""
    message = ""
    try:
        data = frame.json()
    except DecodeError:
        data = frame.payload.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("Message") or "")
    elif isinstance(data, str):
        message = data
    header = frame.headers.get(":error-message")
    if not message and header:
        message = str(header)
    return classify_exception(frame.exception_type or "UnknownException", message)


def _unwrap(event_type: str, payload: object) -> dict:
    """Payload members are normally top level; some streams wrap them in {event_type: {...}}."""
    if isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get(event_type), dict):
        return payload[event_type]
    return payload if isinstance(payload, dict) else {}


def _number(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _count(value: object) -> Optional[int]:
    number = _number(value)
    return int(number) if number is not None else None
