"""Split prompt-tag reasoning (`<thinking>…</thinking>` opening an answer) from the answer text.

Sans-IO (upstream reference §6.6): feed text chunks, get ThinkingDelta and TextDelta events. It
holds back only what a tag split across chunks needs, and never logs content.
"""
from __future__ import annotations

from typing import List, Union

from ..chat import TextDelta, ThinkingDelta

OPEN_TAGS = ("<thinking>", "<think>", "<reasoning>", "<thought>")

# The close tag only ends the reasoning when a blank line follows it (or nothing but whitespace
# up to the end of the stream); otherwise it is the model quoting the tag inside its reasoning.
_CLOSE_FOLLOWER = "\n\n"

_START, _THINKING, _TEXT = "start", "thinking", "text"

Piece = Union[ThinkingDelta, TextDelta]


class ThinkingSplitter:
    """One answer's text in, thinking and text pieces out, in order.

    Reasoning is only recognised at the very start of the answer (after optional whitespace);
    once visible text has begun everything else passes straight through.
    """

    def __init__(self) -> None:
        self._state = _START
        self._buffer = ""
        self._close = ""
        self._drop_newline = False  # the newline right after the open tag is not reasoning

    @property
    def in_thinking(self) -> bool:
        """True while the reasoning block is open (after finish(): the stream ended inside it)."""
        return self._state == _THINKING

    def feed(self, text: str) -> List[Piece]:
        if not text:
            return []
        if self._state == _TEXT:
            return [TextDelta(text)]
        self._buffer += text
        if self._state == _START:
            pieces = self._decide()
            if self._state != _THINKING:
                return pieces
        return self._split()

    def finish(self) -> List[Piece]:
        """Release everything held back; call once when the answer text ends."""
        held, self._buffer = self._buffer, ""
        if self._state == _START:
            self._state = _TEXT
            return [TextDelta(held)] if held else []
        if self._state == _TEXT or not held:
            return []
        # Everything held is reasoning, unless it is the close tag followed only by whitespace.
        closing = held[1:] if held.startswith("\n" + self._close) else held
        if closing.startswith(self._close) and not closing[len(self._close):].strip():
            self._state = _TEXT
            return []
        return [ThinkingDelta(held)]

    def _decide(self) -> List[Piece]:
        """At the start: enter reasoning, keep waiting, or prove there is no tag."""
        body = self._buffer.lstrip()
        if not body:
            return []
        for tag in OPEN_TAGS:
            if body.startswith(tag):
                self._state = _THINKING
                self._close = "</" + tag[1:]
                self._buffer = body[len(tag):]
                self._drop_newline = True
                return []
        if any(tag.startswith(body) for tag in OPEN_TAGS):
            return []
        self._state = _TEXT
        held, self._buffer = self._buffer, ""
        return [TextDelta(held)]

    def _split(self) -> List[Piece]:
        """Inside reasoning: emit it up to the close tag, or up to a possible partial close tag."""
        if self._drop_newline:
            if not self._buffer:
                return []
            self._drop_newline = False
            if self._buffer.startswith("\n"):
                self._buffer = self._buffer[1:]
        pieces: List[Piece] = []
        buffer, close = self._buffer, self._close
        index = buffer.find(close)
        while index >= 0:
            after = buffer[index + len(close):]
            # The newline before the close tag belongs to the tag, not to the reasoning.
            end = index - 1 if index and buffer[index - 1] == "\n" else index
            if after.startswith(_CLOSE_FOLLOWER):
                if end:
                    pieces.append(ThinkingDelta(buffer[:end]))
                self._state = _TEXT
                self._buffer = ""
                rest = after[len(_CLOSE_FOLLOWER):]
                if rest:
                    pieces.append(TextDelta(rest))
                return pieces
            if not after.strip():
                # Maybe the real close: wait for the blank line or the end of the stream.
                if end:
                    pieces.append(ThinkingDelta(buffer[:end]))
                self._buffer = buffer[end:]
                return pieces
            index = buffer.find(close, index + 1)
        keep = max(_partial_suffix(buffer, close), _partial_suffix(buffer, "\n" + close))
        if len(buffer) > keep:
            pieces.append(ThinkingDelta(buffer[:len(buffer) - keep]))
            self._buffer = buffer[len(buffer) - keep:]
        return pieces


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
