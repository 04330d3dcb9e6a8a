"""OpenAI routes: Chat Completions and the Responses API (on the proxy blueprint).

Also served without the /v1 prefix for clients whose base URL leaves it out.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from flask import Response, jsonify

from ..errors import NotFound, ProxyError
from ..protocols import openai, responses
from .proxy import bp, check_client_key, error_response, relay_call, services


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def chat_completions() -> Response:
    return relay_call(
        openai, openai.parse,
        lambda reply, req, body: openai.render(
            reply, model=req.model, json_mode=req.response_format is not None,
            legacy_functions=openai.uses_legacy_functions(body)),
        lambda stream, req, body: openai.encode_stream(
            stream, model=req.model, include_usage=openai.wants_usage(body),
            json_mode=req.response_format is not None, legacy_functions=openai.uses_legacy_functions(body)))


@bp.post("/v1/responses")
@bp.post("/responses")
def create_response() -> Response:
    store = services().responses
    response_id = responses.new_id()
    created = int(time.time())
    found: dict = {}

    def parse(body: Any):
        previous: Optional[dict] = None
        previous_id = body.get("previous_response_id") if isinstance(body, dict) else None
        if previous_id:
            previous = store.get(str(previous_id))
            if previous is None:
                raise NotFound(f"previous response '{previous_id}' not found (it was not stored, "
                               f"expired, or was created with store: false)", param="previous_response_id")
        found["previous"] = previous
        return responses.parse(body, previous)

    def keep(body: Any, document: dict) -> None:
        if responses.should_store(body):
            store.save(document["id"], responses.record(body, found.get("previous"), document))

    # req.model, not the body's: a follow-up without `model` serves the previous response's.
    def render(reply, req, body: Any) -> dict:
        document = responses.render(reply, body=body, response_id=response_id, created=created,
                                    model=req.model, json_mode=req.response_format is not None)
        keep(body, document)
        return document

    def encode(stream, req, body: Any):
        return responses.encode_stream(stream, body=body, response_id=response_id, created=created,
                                       on_complete=lambda document: keep(body, document),
                                       model=req.model, json_mode=req.response_format is not None)

    return relay_call(responses, parse, render, encode)


@bp.get("/v1/responses/<response_id>")
@bp.get("/responses/<response_id>")
def get_response(response_id: str) -> Response:
    try:
        check_client_key()
        record = services().responses.get(response_id)
        if record is None:
            raise NotFound(f"response '{response_id}' not found")
    except ProxyError as error:
        return error_response(responses, error)
    return jsonify(record["response"])
