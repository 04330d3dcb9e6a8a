"""JSON mode cleanup shared by the client protocols: cut an answer down to the JSON it holds.

The upstream is only asked (in the prompt) for bare JSON; models still wrap it in ```json fences or
prose. Whole answers are cut to the JSON value (extract_json, json_parts); streams lose a leading
fence line and a trailing fence (FenceStripper, strip_fences) while holding back only a few
characters. Pure: no I/O, and never buffers a whole streamed answer.
"""
from __future__ import annotations

import json
import re
from typing import Iterable, Iterator, List, Optional, Sequence

from . import chat

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)```", re.S)
_JSON_START = re.compile(r"[\[{]")
_MAX_JSON_STARTS = 200  # bounds the work on a long answer that holds no JSON at all

# An opening fence line as a whole answer starts: optional blank space, ``` and a language word.
_OPEN = re.compile(r"[ \t\r\n]*```[A-Za-z0-9_-]*[ \t]*\r?\n")
# What may still grow into an opening fence line (nothing decided yet).
_OPEN_PENDING = re.compile(r"[ \t\r\n]*(?:`{0,2}|```[A-Za-z0-9_-]*[ \t]*\r?)")
# The longest tail that may still grow into the closing fence: blank space, then up to three
# backticks, then (after all three) blank space again.
_CLOSE_PENDING = re.compile(r"[ \t\r\n]*(?:```[ \t\r\n]*|`{1,2})?\Z")
_MAX_OPEN = 40  # a fence line longer than this is not one: stop holding the start back


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


def extract_json(text: str) -> str:
    """`text` cut down to the JSON value it holds; unchanged when it is JSON already or holds none."""
    found = json_value_in(text)
    return text if found is None else found


def json_parts(parts: Sequence[chat.Part]) -> List[chat.Part]:
    """A reply's parts with their text cut down to JSON: the texts (joined) become one Text at the
    place of the first one. Thinking and tool calls stay as they are; unchanged if no JSON is found."""
    texts = [i for i, p in enumerate(parts) if isinstance(p, chat.Text)]
    if not texts:
        return list(parts)
    found = json_value_in("".join(parts[i].text for i in texts))
    if found is None:
        return list(parts)
    keep = list(parts)
    keep[texts[0]] = chat.Text(found)
    return [p for i, p in enumerate(keep) if i not in texts[1:]]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class FenceStripper:
    """Removes a leading ```json fence line and a trailing ``` from text fed piece by piece.

    feed() returns what can be sent now; flush() returns the rest at the end of the text (and
    resets, so the next text segment may have fences of its own). Held back at any time: at most
    the first ~40 characters (until the start is known) or the blank space and backticks at the
    end of what was fed. A text that does not open with a fence passes through untouched.
    """

    def __init__(self) -> None:
        self._head: Optional[str] = ""  # the start, while undecided; None once decided
        self._fenced = False
        self._tail = ""  # held back: may be the start of the closing fence

    def _reset(self) -> None:
        self._head, self._fenced, self._tail = "", False, ""

    def feed(self, text: str) -> str:
        if self._head is not None:
            text = self._decide(self._head + text)
            if self._head is not None:
                return ""
        if not self._fenced:
            return text
        pending = self._tail + text
        cut = _CLOSE_PENDING.search(pending).start()
        self._tail = pending[cut:]
        return pending[:cut]

    def flush(self) -> str:
        if self._head is not None:
            rest = self._head
        elif "```" in self._tail:
            rest = ""  # the closing fence, and the blank space around it
        else:
            rest = self._tail
        self._reset()
        return rest

    def _decide(self, start: str) -> str:
        """Settle the start once it is known; return the text after it (or "" while undecided)."""
        opened = _OPEN.match(start)
        if opened is not None:
            self._head, self._fenced = None, True
            return start[opened.end():]
        if len(start) <= _MAX_OPEN and _OPEN_PENDING.fullmatch(start):
            self._head = start
            return ""
        self._head = None
        return start


def strip_fences(events: Iterable[chat.Event]) -> Iterator[chat.Event]:
    """`events` with fences stripped from each run of text (see FenceStripper).

    Held text is released before the next event that is neither text, usage nor a heartbeat
    (thinking, a tool call, the finish), and when the events run out."""
    stripper = FenceStripper()
    for event in events:
        if isinstance(event, chat.TextDelta):
            text = stripper.feed(event.text)
            if text:
                yield chat.TextDelta(text)
            continue
        if not isinstance(event, (chat.Usage, chat.Heartbeat)):
            rest = stripper.flush()
            if rest:
                yield chat.TextDelta(rest)
        yield event
    rest = stripper.flush()
    if rest:
        yield chat.TextDelta(rest)
