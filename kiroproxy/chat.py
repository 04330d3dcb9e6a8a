"""The neutral chat model shared by every client protocol and the upstream.

A ChatRequest goes in, a Stream of events comes out. No client protocol's words and none of
Kiro's camelCase appear here. Pure: no I/O, no Flask.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, List, Optional, Tuple, Union

from .errors import BadRequest

_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Image:
    """An inline image: `media_type` like image/png, `data` plain base64 (no data: prefix)."""

    media_type: str
    data: str


@dataclass(frozen=True)
class Thinking:
    """Reasoning the assistant produced earlier (or now). `signature` is opaque."""

    text: str
    signature: Optional[str] = None


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content: Tuple[Union[Text, Image], ...]
    is_error: bool = False

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.content if isinstance(p, Text))


Part = Union[Text, Image, Thinking, ToolUse, ToolResult]


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    parts: Tuple[Part, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # auto | none | required | tool
    name: Optional[str] = None


@dataclass(frozen=True)
class ThinkingConfig:
    mode: str = "enabled"  # enabled | adaptive
    budget: Optional[int] = None  # tokens
    effort: Optional[str] = None  # low | medium | high | ...


@dataclass(frozen=True)
class ResponseFormat:
    """The client asked for JSON output, optionally matching `schema`."""

    schema: Optional[dict] = None
    name: Optional[str] = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: Tuple[Message, ...]
    system: str = ""
    tools: Tuple[Tool, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    max_tokens: Optional[int] = None
    stop: Tuple[str, ...] = ()
    thinking: Optional[ThinkingConfig] = None
    response_format: Optional[ResponseFormat] = None
    temperature: Optional[float] = None
    stream: bool = False

    def with_messages(self, messages: Tuple[Message, ...]) -> ChatRequest:
        return replace(self, messages=messages)



@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True)
class ThinkingSignature:
    """Closes the current thinking block with an opaque signature from the upstream."""

    signature: str


@dataclass(frozen=True)
class ToolCallStart:
    id: str
    name: str


@dataclass(frozen=True)
class ToolCallDelta:
    id: str
    fragment: str  # a piece of the JSON arguments text, in order


@dataclass(frozen=True)
class ToolCallEnd:
    id: str
    input: dict  # the parsed arguments


@dataclass(frozen=True)
class Usage:
    """Token counts. In a stream the last Usage event wins; None means unknown."""

    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    context_percent: Optional[float] = None  # share of the context window used, 0-100
    credits: Optional[float] = None


FINISH_REASONS = ("end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal")


@dataclass(frozen=True)
class Finish:
    reason: str  # one of FINISH_REASONS
    stop_sequence: Optional[str] = None


@dataclass(frozen=True)
class Heartbeat:
    """Nothing new yet; encoders may write a keep-alive so idle connections stay open."""


Event = Union[TextDelta, ThinkingDelta, ThinkingSignature, ToolCallStart, ToolCallDelta, ToolCallEnd,
              Usage, Finish, Heartbeat]


class Stream:
    """A single-use iterator of events plus what is known before the first event.

    The owner must call close() (idempotent); it releases the upstream connection. Iterating may
    raise ProxyError when the upstream fails mid-answer.
    """

    def __init__(self, events: Iterator[Event], *, model: str, input_tokens: int = 0,
                 on_close: Optional[Callable[[], None]] = None) -> None:
        self._events = events
        self.model = model
        self.input_tokens = input_tokens
        self._on_close = on_close
        self.closed = False
        # Set by the web layer: True once the client has gone away (checked while waiting upstream).
        self.client_gone: Callable[[], bool] = lambda: False

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close_events = getattr(self._events, "close", None)
        try:
            if close_events is not None:
                close_events()
        finally:
            if self._on_close is not None:
                self._on_close()



@dataclass
class Reply:
    """A whole answer: parts in order (Thinking, Text, ToolUse), finish and usage."""

    model: str
    parts: List[Part] = field(default_factory=list)
    finish: str = "end_turn"
    stop_sequence: Optional[str] = None
    usage: Usage = Usage()

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def thinking(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Thinking))

    @property
    def tool_uses(self) -> List[ToolUse]:
        return [p for p in self.parts if isinstance(p, ToolUse)]


class ReplyBuilder:
    """Folds events into a Reply, merging neighbouring text and thinking pieces.

    The pieces of the part being written are kept in a list and joined when the reply is read:
    rebuilding the string on every delta made a long answer cost quadratic time."""

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self._reply = Reply(model=model, usage=Usage(input_tokens=input_tokens))
        self._tool_names: dict = {}
        self._run: List[str] = []  # pieces of the reply's last part while it is an open Text/Thinking
        self._run_kind: Optional[type] = None

    @property
    def reply(self) -> Reply:
        self._join()
        return self._reply

    def _join(self) -> None:
        if len(self._run) > 1:
            self._run = ["".join(self._run)]
            self._reply.parts[-1] = self._run_kind(self._run[0])  # type: ignore[misc]

    def _close(self) -> None:
        self._join()
        self._run, self._run_kind = [], None

    def _piece(self, kind: type, text: str) -> None:
        if self._run_kind is kind:
            self._run.append(text)
            return
        self._close()
        self._reply.parts.append(kind(text))
        self._run, self._run_kind = [text], kind

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._piece(Text, event.text)
        elif isinstance(event, ThinkingDelta):
            self._piece(Thinking, event.text)
        elif isinstance(event, ThinkingSignature):
            self._close()
            parts = self._reply.parts
            if parts and isinstance(parts[-1], Thinking):
                parts[-1] = Thinking(parts[-1].text, event.signature)
            else:
                parts.append(Thinking("", event.signature))
        elif isinstance(event, ToolCallStart):
            self._tool_names[event.id] = event.name
        elif isinstance(event, ToolCallEnd):
            self._close()
            self._reply.parts.append(ToolUse(event.id, self._tool_names.get(event.id, ""), event.input))
        elif isinstance(event, Usage):
            self._reply.usage = merge_usage(self._reply.usage, event)
        elif isinstance(event, Finish):
            self._reply.finish = event.reason
            self._reply.stop_sequence = event.stop_sequence


def merge_usage(old: Usage, new: Usage) -> Usage:
    """The newer Usage wins field by field, except where it does not know a value."""
    return Usage(
        input_tokens=new.input_tokens if new.input_tokens is not None else old.input_tokens,
        output_tokens=new.output_tokens if new.output_tokens is not None else old.output_tokens,
        cache_read_tokens=new.cache_read_tokens or old.cache_read_tokens,
        cache_write_tokens=new.cache_write_tokens or old.cache_write_tokens,
        reasoning_tokens=new.reasoning_tokens or old.reasoning_tokens,
        context_percent=new.context_percent if new.context_percent is not None else old.context_percent,
        credits=new.credits if new.credits is not None else old.credits,
    )


def collect(stream: Stream) -> Reply:
    """Drain a stream into a Reply. Raises whatever the stream raises; does not close it."""
    builder = ReplyBuilder(stream.model, stream.input_tokens)
    for event in stream:
        builder.add(event)
    return builder.reply


def image_from_data_url(url: str, *, where: str = "image data URL", param: Optional[str] = None) -> Optional[Image]:
    """An Image from `data:image/png;base64,...`; None when `url` is not a base64 data URL.

    Raises BadRequest naming `where` (the field) when the data after the comma is not base64."""
    if not url.startswith("data:") or ";base64," not in url[:200]:
        return None
    head, _, data = url.partition(",")
    media_type = head[5:].split(";", 1)[0] or "image/png"
    return Image(media_type=media_type.lower(), data=image_base64(data, where, param))


def image_base64(data: str, where: str, param: Optional[str] = None) -> str:
    """`data` as standard, padded base64, the form the upstream takes.

    Accepts what real clients send: URL-safe letters, missing padding, line breaks. Decodes once
    to check (no copy is kept); raises BadRequest naming `where` when `data` is not base64.
    """
    text = data.strip()
    if _SPACE.search(text):
        text = "".join(text.split())
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: the image data is not valid base64", param=param) from None
    return text
