"""The one interface every client protocol implements, and the call context it is handed.

A protocol object reads a client body once into the neutral request plus its own options (what
its render and encode steps need), renders a whole reply or encodes a stream, shapes errors, and
describes models. The web layer drives any of them the same way. Pure: no Flask; the only I/O is
what an object was constructed with (the Responses API's response store).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Generic, Iterator, List, Mapping, Tuple, TypeVar

from .. import chat
from ..errors import BadRequest, ProxyError
from ..kiro.models import ModelInfo

Options = TypeVar("Options")
ErrorBody = Tuple[int, Dict[str, Any], Dict[str, str]]


@dataclass(frozen=True)
class Call:
    """What the route says besides the body: Gemini names the model and the method in the path
    (`stream` for :streamGenerateContent) and asks for SSE with ?alt=sse."""

    model: str = ""
    stream: bool = False
    sse: bool = True


PLAIN = Call()  # a call whose route says nothing beyond the body


class ClientProtocol(ABC, Generic[Options]):
    """One client API. `Options` is its frozen options type (or None when it needs none)."""

    name: str  # the flow record's protocol name

    @abstractmethod
    def parse(self, body: Dict[str, Any], call: Call) -> Tuple[chat.ChatRequest, Options]:
        """The neutral request and the options; raises BadRequest (or NotFound) naming the field."""

    @abstractmethod
    def render(self, reply: chat.Reply, request: chat.ChatRequest, options: Options) -> Dict[str, Any]:
        """The whole answer as a JSON document."""

    @abstractmethod
    def encode_stream(self, stream: chat.Stream, request: chat.ChatRequest, options: Options) -> Iterator[bytes]:
        """The streamed answer's bytes as the events arrive; closes `stream` when done."""

    def mimetype(self, options: Options) -> str:
        return "text/event-stream"

    @abstractmethod
    def error_body(self, error: ProxyError) -> ErrorBody:
        """(status, JSON body, headers) for `error` in this protocol's shape."""

    @abstractmethod
    def model_entry(self, info: ModelInfo, name: str) -> Dict[str, Any]:
        """One model as this API lists it, under `name` (the id the client asked for)."""

    def model_page(self, entries: List[Dict[str, Any]], args: Mapping[str, str]) -> Dict[str, Any]:
        """The model list document for `entries`, paged by the query `args` where the API pages."""
        return {"object": "list", "data": entries}


class CountingProtocol(ClientProtocol[Options]):
    """A protocol with a token-counting endpoint."""

    @abstractmethod
    def parse_count(self, body: Dict[str, Any], call: Call) -> chat.ChatRequest:
        """The request whose prompt is counted; raises BadRequest naming the field."""

    @abstractmethod
    def count_body(self, total: int) -> Dict[str, Any]:
        """The answer for a prompt of `total` tokens."""


def query_int(args: Mapping[str, str], name: str, default: int) -> int:
    """A paging query argument: absent or 0 -> `default`; not a non-negative integer -> BadRequest."""
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", param=name) from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative", param=name)
    return value or default
