"""Translate Kiro event-stream frames into neutral chat events (upstream reference §5, §6.3-6.7).

Sans-IO: frames in, chat events out; no clock, no network, and answer content is never logged.
Exception frames raise KiroFailure, invalid-state events UpstreamError, and a stream that ends
before its completion signal raises Truncated.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

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

log = logging.getLogger(__name__)

# Real answers repeat short chunks ("\n", "|", "**"); only long exact repeats are upstream duplicates.
MIN_DUPLICATE_CHUNK = 8

CALL_HEAD = "[Called "
CALL_ARGS = " with args: "
MAX_CALL_NAME = 256
MAX_CALL_ARGS = 256 * 1024  # chars of text-form arguments held before giving up on a match
_CALL_NAME = re.compile(r"[\w.:\-]+")

_OUTPUT = (TextDelta, ThinkingDelta, ThinkingSignature, ToolCallStart, ToolCallDelta, ToolCallEnd)
_REFUSAL_STOPS = ("filter", "guardrail", "refusal")
_LENGTH_STOPS = {"max_tokens", "length", "model_context_window_exceeded"}


def new_tool_id() -> str:
    return "tooluse_" + secrets.token_urlsafe(16)


@dataclass(frozen=True)
class TextCall:
    """A tool call the model wrote as text: `[Called <name> with args: {…}]`."""

    name: str
    args: dict


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


def parse_arguments(raw: str) -> Tuple[dict, bool]:
    """(arguments, ok) for a finished call's input text; empty means {}. Cut or malformed
    input (unbalanced braces, an unclosed string, not an object) gives ({}, False)."""
    text = raw.strip()
    if not text:
        return {}, True
    try:
        value = json.loads(text)
    except ValueError:
        return {}, False
    return (value, True) if isinstance(value, dict) else ({}, False)


def is_cut(raw: str) -> bool:
    """True when JSON input text stops early (§6.5 "truncated"), not merely malformed."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string")
    return False


def unrun_call_notice(name: str, raw: str) -> str:
    """What the client (and, replayed next turn, the model) reads instead of a broken call."""
    if is_cut(raw):
        return (f"[The call to tool {name} was cut off before its input was complete "
                f"({len(raw)} characters arrived), so it was not run. Make the call again with "
                f"smaller input, for example by splitting the work into several calls.]")
    return (f"[The call to tool {name} was not run: its input was not a JSON object. "
            f"Make the call again with a JSON object as input.]")


class _OpenCall:
    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.raw = ""
        self.held: List[Event] = []  # its start and input fragments, released when it ends well


class ToolCalls:
    """Native tool calls (§6.5), deduplicated by id and by name + arguments.

    A call is held until it ends: only a call whose input is a whole JSON object reaches the
    client (start, every fragment, end), so no client ever runs a cut or malformed call. Such a
    call becomes a TextDelta notice instead and sets `malformed` (a length stop).
    """

    def __init__(self, tool_names: Optional[Mapping[str, str]], new_id: Callable[[], str]) -> None:
        self._names = dict(tool_names or {})
        self._new_id = new_id
        self._open: Optional[_OpenCall] = None
        self._ended: Set[str] = set()
        self._finished: List[Tuple[str, dict]] = []  # name, arguments
        self.completed = 0
        self.malformed = False

    @property
    def open_id(self) -> Optional[str]:
        return self._open.id if self._open is not None else None

    def feed(self, payload: dict) -> List[Event]:
        call_id = str(payload.get("toolUseId") or self.open_id or self._new_id())
        if call_id in self._ended:
            return []  # the upstream repeats frames of calls that already stopped
        events: List[Event] = []
        if self._open is not None and self._open.id != call_id:
            events += self.close()  # calls do not interleave: a new id ends the open one
        if self._open is None:
            name = self._names.get(str(payload.get("name") or ""), str(payload.get("name") or ""))
            self._open = _OpenCall(call_id, name)
            self._open.held.append(ToolCallStart(call_id, name))
        fragment = self._fragment(payload.get("input"))
        if fragment:
            self._open.raw += fragment
            self._open.held.append(ToolCallDelta(call_id, fragment))
        if payload.get("stop") is True:
            events += self.close()
        return events

    def add_whole(self, name: str, args: dict) -> List[Event]:
        """A complete call found in the answer text; a repeat of a finished call yields nothing."""
        name = self._names.get(name, name)
        if self._is_repeat(name, args):
            return []
        call_id = self._new_id()
        raw = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
        self._finished.append((name, args))
        self._ended.add(call_id)
        self.completed += 1
        return [ToolCallStart(call_id, name), ToolCallDelta(call_id, raw), ToolCallEnd(call_id, args)]

    def _fragment(self, value: object) -> str:
        if isinstance(value, str):
            return value
        if value is None or (self._open is not None and self._open.raw):
            return ""  # a whole object repeated after input already arrived adds nothing
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def close(self) -> List[Event]:
        """End the open call (if any): its held events, a notice, or nothing for a repeat."""
        call = self._open
        if call is None:
            return []
        self._open = None
        self._ended.add(call.id)
        args, ok = parse_arguments(call.raw)
        if not ok:
            self.malformed = True
            log.warning("Kiro tool call %s ended with cut or malformed arguments (%d chars); not sent",
                        call.id, len(call.raw))
            return [TextDelta(unrun_call_notice(call.name, call.raw))]
        if self._is_repeat(call.name, args):
            log.info("dropping Kiro tool call %s: it repeats a finished call", call.id)
            return []
        self._finished.append((call.name, args))
        self.completed += 1
        return call.held + [ToolCallEnd(call.id, args)]

    def _is_repeat(self, name: str, args: dict) -> bool:
        return any(done_name == name and done_args == args for done_name, done_args in self._finished)


_MORE = "more"  # the held text may still become a call
_NOT_A_CALL = "no"


class TextCalls:
    """Finds `[Called <name> with args: {…}]` in answer text and cuts it out (§6.5).

    feed() returns text pieces (str) and TextCall items in order. Only text that may still
    become a call is held back; text that turns out not to be one comes out unchanged.
    """

    def __init__(self) -> None:
        self._held = ""
        self._reset()

    def feed(self, text: str) -> List[Union[str, TextCall]]:
        self._held += text
        items: List[Union[str, TextCall]] = []
        while self._held:
            start = self._held.find("[")
            if start < 0:
                items.append(self._held)
                self._held = ""
                break
            if start:
                items.append(self._held[:start])
                self._held = self._held[start:]
            verdict = self._match()
            if verdict == _MORE:
                break
            self._reset()
            if isinstance(verdict, tuple):
                end, call = verdict
                items.append(call)
                self._held = self._held[end:]
            else:
                following = self._held.find("[", 1)
                cut = following if following > 0 else len(self._held)
                items.append(self._held[:cut])
                self._held = self._held[cut:]
        return items

    def finish(self) -> List[Union[str, TextCall]]:
        """Release held text (an unfinished call is just text); the extractor can be reused."""
        held, self._held = self._held, ""
        self._reset()
        return [held] if held else []

    def _reset(self) -> None:
        self._scanned = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._object_end = -1

    def _match(self) -> Union[str, Tuple[int, TextCall]]:
        """_MORE, _NOT_A_CALL or (end index, call) for the held text, which starts with "["."""
        held = self._held
        if len(held) <= len(CALL_HEAD) or not held.startswith(CALL_HEAD):
            return _MORE if CALL_HEAD.startswith(held) else _NOT_A_CALL
        name = _CALL_NAME.match(held, len(CALL_HEAD))
        if name is None or name.end() - len(CALL_HEAD) > MAX_CALL_NAME:
            return _NOT_A_CALL
        separator = held[name.end():name.end() + len(CALL_ARGS)]
        if separator != CALL_ARGS:
            return _MORE if len(separator) < len(CALL_ARGS) and CALL_ARGS.startswith(separator) \
                else _NOT_A_CALL
        start = name.end() + len(CALL_ARGS)
        if len(held) == start:
            return _MORE
        if held[start] != "{":
            return _NOT_A_CALL
        end = self._scan_object(start)
        if end < 0:
            return _MORE if len(held) - start <= MAX_CALL_ARGS else _NOT_A_CALL
        if len(held) == end:
            return _MORE
        if held[end] != "]":
            return _NOT_A_CALL
        args, ok = parse_arguments(held[start:end])
        if not ok:
            return _NOT_A_CALL
        return end + 1, TextCall(name.group(), args)

    def _scan_object(self, start: int) -> int:
        """Index just past the JSON object starting at `start`, or -1 while it is incomplete.

        Incremental: each character is looked at once however the text is chunked."""
        if self._object_end >= 0:
            return self._object_end
        held = self._held
        for index in range(max(self._scanned, start), len(held)):
            char = held[index]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char == "{":
                self._depth += 1
            elif char == "}":
                self._depth -= 1
                if self._depth == 0:
                    self._object_end = self._scanned = index + 1
                    return self._object_end
        self._scanned = len(held)
        return -1

