"""Tool calls in Kiro's answers (upstream reference §6.5-6.7): native toolUseEvent calls held until
their input is whole, and calls the model wrote as text (`[Called <name> with args: {…}]`).

Sans-IO helpers for events.Translator: they only turn pieces of calls into chat events.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Set, Tuple, Union

from ..chat import Event, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart

log = logging.getLogger(__name__)

CALL_HEAD = "[Called "
CALL_ARGS = " with args: "
MAX_CALL_NAME = 256
MAX_CALL_ARGS = 256 * 1024  # chars of text-form arguments held before giving up on a match
_CALL_NAME = re.compile(r"[\w.:\-]+")


def new_tool_id() -> str:
    return "tooluse_" + secrets.token_urlsafe(16)


@dataclass(frozen=True)
class TextCall:
    """A tool call the model wrote as text: `[Called <name> with args: {…}]`."""

    name: str
    args: dict



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
        self.fragments: List[str] = []  # joined once at the end: += would copy the input each time
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
            self._open.fragments.append(fragment)
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
        if value is None or (self._open is not None and self._open.fragments):
            return ""  # a whole object repeated after input already arrived adds nothing
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def close(self) -> List[Event]:
        """End the open call (if any): its held events, a notice, or nothing for a repeat."""
        call = self._open
        if call is None:
            return []
        self._open = None
        self._ended.add(call.id)
        raw = "".join(call.fragments)
        args, ok = parse_arguments(raw)
        if not ok:
            self.malformed = True
            log.warning("Kiro tool call %s ended with cut or malformed arguments (%d chars); not sent",
                        call.id, len(raw))
            return [TextDelta(unrun_call_notice(call.name, raw))]
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

