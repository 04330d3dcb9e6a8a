"""The OpenAI Responses API behind the protocol interface, with its response store.

previous_response_id is looked up and finished responses are saved (unless `store: false`) in
the store handed in at construction; ids and the creation time come from the injected makers.
No Flask; the store is the only I/O.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, Iterator, Optional, Protocol, Tuple

from .. import chat
from ..errors import NotFound, ProxyError
from ..kiro.models import ModelInfo
from . import openai, responses
from .interface import Call, ClientProtocol, ErrorBody


class ResponseStore(Protocol):
    def get(self, response_id: str) -> Optional[dict]: ...

    def save(self, response_id: str, record: dict) -> None: ...


@dataclass(frozen=True)
class ResponseOptions:
    """Read from the body once: the settings the response object echoes (`body`), the stored
    response it follows, whether to store this one; plus its id and creation time (epoch s)."""

    body: Dict[str, Any]
    response_id: str
    created: int
    previous: Optional[dict] = None
    store: bool = True
    json_mode: bool = False


class ResponsesAPI(ClientProtocol[ResponseOptions]):
    name = responses.NAME

    def __init__(self, store: ResponseStore, clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = responses.new_id) -> None:
        self.store, self.clock, self.new_id = store, clock, new_id

    def parse(self, body: Dict[str, Any], call: Call) -> Tuple[chat.ChatRequest, ResponseOptions]:
        previous = self._previous(body.get("previous_response_id"))
        req = responses.parse(body, previous)
        return req, ResponseOptions(body, self.new_id(), int(self.clock()), previous, responses.should_store(body),
                                    req.response_format is not None)

    def _previous(self, previous_id: Any) -> Optional[dict]:
        if not previous_id:
            return None
        found = self.store.get(str(previous_id))
        if found is None:
            raise NotFound(f"previous response '{previous_id}' not found (it was not stored, expired, or was "
                           f"created with store: false)", param="previous_response_id")
        return found

    # request.model, not the body's: a follow-up without `model` serves the previous response's.
    def render(self, reply: chat.Reply, request: chat.ChatRequest, options: ResponseOptions) -> Dict[str, Any]:
        document = responses.render(reply, body=options.body, response_id=options.response_id,
                                    created=options.created, model=request.model, json_mode=options.json_mode)
        self._keep(options, document)
        return document

    def encode_stream(self, stream: chat.Stream, request: chat.ChatRequest,
                      options: ResponseOptions) -> Iterator[bytes]:
        return responses.encode_stream(stream, body=options.body, response_id=options.response_id,
                                       created=options.created, on_complete=partial(self._keep, options),
                                       model=request.model, json_mode=options.json_mode)

    def _keep(self, options: ResponseOptions, document: dict) -> None:
        if options.store:
            self.store.save(document["id"], responses.record(options.body, options.previous, document))

    def retrieve(self, response_id: str) -> Dict[str, Any]:
        """A stored response object (GET /v1/responses/{id}); NotFound when none is kept."""
        found = self.store.get(response_id)
        if found is None:
            raise NotFound(f"response '{response_id}' not found")
        return found["response"]

    def error_body(self, error: ProxyError) -> ErrorBody:
        return openai.error_body(error)

    def model_entry(self, info: ModelInfo, name: str) -> Dict[str, Any]:
        return openai.PROTOCOL.model_entry(info, name)
