"""Anthropic Messages routes: /v1/messages and /v1/messages/count_tokens (on the proxy blueprint)."""
from __future__ import annotations

from flask import Response, jsonify

from .. import tokens
from ..errors import ProxyError
from ..protocols import anthropic
from .proxy import bp, check_client_key, error_response, json_body, relay_call, services


@bp.post("/v1/messages")
def messages() -> Response:
    return relay_call(
        anthropic, anthropic.parse,
        lambda reply, req, body: anthropic.render(reply, model=req.model),
        lambda stream, req, body: anthropic.encode_stream(stream, model=req.model))


@bp.post("/v1/messages/count_tokens")
def count_tokens() -> Response:
    try:
        check_client_key()
        req = anthropic.parse(json_body(), count_only=True)
        services().catalog.resolve(req.model)
    except ProxyError as error:
        return error_response(anthropic, error)
    return jsonify({"input_tokens": tokens.count_request(req)})


