"""The client-facing API blueprint (/v1...): thin views over a protocol module and the relay.

Views parse, open the relay, and either render a whole reply or stream the protocol's SSE.
"""
from __future__ import annotations

import hmac
import json
import logging
from contextlib import closing
from types import ModuleType
from typing import Any, Callable, Optional

from flask import Blueprint, Response, current_app, jsonify, request

from .. import chat, tokens
from ..errors import BadRequest, ProxyError, Unauthorized
from ..exchange import Exchange
from ..protocols import anthropic, sse

log = logging.getLogger(__name__)

bp = Blueprint("proxy", __name__)


def services():
    return current_app.extensions["kiroproxy"]


# ----- shared plumbing ---------------------------------------------------------------------


def error_response(proto: ModuleType, error: ProxyError) -> Response:
    status, body, headers = proto.error_body(error)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def json_body() -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def client_key() -> Optional[str]:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return (request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
            or request.args.get("key"))


def check_client_key() -> None:
    """When client keys are configured, every proxy call must carry one of them."""
    keys = services().settings.api_keys
    if not keys:
        return
    given = client_key() or ""
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise Unauthorized("invalid API key: send one of the keys configured in api_keys", code="invalid_api_key")


def relay_call(proto: ModuleType, parse: Callable[[Any], chat.ChatRequest],
               render: Callable[[chat.Reply, chat.ChatRequest], Any],
               encode: Callable[[chat.Stream, chat.ChatRequest], Any]) -> Response:
    """Parse, open the relay, then render or stream; every failure answers in `proto`'s shape."""
    svc = services()
    exchange = Exchange(protocol=proto.NAME, path=request.path, client=request.remote_addr or "")
    svc.relay.begin(exchange)
    try:
        check_client_key()
        body = json_body()
        exchange.body = body
        req = parse(body)
        exchange.requested_model, exchange.stream = req.model, req.stream
        stream = svc.relay.open(req, exchange)
    except ProxyError as error:
        svc.relay.abort(exchange, error)
        return error_response(proto, error)
    gone = request.environ.get("waitress.client_disconnected")
    if gone is not None:
        stream.client_gone = gone
    if not req.stream:
        try:
            with closing(stream):
                reply = chat.collect(stream)
        except ProxyError as error:
            return error_response(proto, error)
        return jsonify(render(reply, req))
    response = Response(encode(stream, req), mimetype="text/event-stream", headers=sse.HEADERS)
    response.call_on_close(stream.close)
    return response


# ----- Anthropic ---------------------------------------------------------------------------


@bp.post("/v1/messages")
def messages() -> Response:
    return relay_call(
        anthropic, anthropic.parse,
        lambda reply, req: anthropic.render(reply, model=req.model),
        lambda stream, req: anthropic.encode_stream(stream, model=req.model))


@bp.post("/v1/messages/count_tokens")
def count_tokens() -> Response:
    try:
        check_client_key()
        req = anthropic.parse(json_body(), count_only=True)
        services().catalog.resolve(req.model)
    except ProxyError as error:
        return error_response(anthropic, error)
    return jsonify({"input_tokens": tokens.count_request(req)})


# ----- models (shared by the protocols) ----------------------------------------------------


def model_shape() -> str:
    if request.headers.get("anthropic-version"):
        return "anthropic"
    if request.headers.get("x-goog-api-key") or request.args.get("key"):
        return "gemini"
    return "openai"


CREATED = 1735689600  # 2025-01-01: a fixed creation time for models Kiro does not date


def model_entry(shape: str, info) -> dict:
    if shape == "anthropic":
        return {"type": "model", "id": info.id, "display_name": info.display_name,
                "created_at": "2025-01-01T00:00:00Z", "max_input_tokens": info.context_window,
                "max_tokens": info.max_output}
    return {"id": info.id, "object": "model", "created": CREATED, "owned_by": "kiro"}


@bp.get("/v1/models")
def models() -> Response:
    svc = services()
    shape = model_shape()
    try:
        check_client_key()
    except ProxyError as error:
        return error_response(anthropic, error)
    infos = svc.served_models()
    entries = [model_entry(shape, info) for info in infos]
    if shape == "anthropic":
        return jsonify({"data": entries, "has_more": False,
                        "first_id": entries[0]["id"] if entries else None,
                        "last_id": entries[-1]["id"] if entries else None})
    return jsonify({"object": "list", "data": entries})


@bp.get("/v1/models/<path:model_id>")
def model(model_id: str) -> Response:
    svc = services()
    shape = model_shape()
    try:
        check_client_key()
        for info in svc.served_models():
            if info.id == model_id:
                return jsonify(model_entry(shape, info))
        resolved = svc.catalog.resolve(model_id)
        info = svc.catalog.info(resolved)
    except ProxyError as error:
        return error_response(anthropic, error)
    entry = model_entry(shape, info)
    entry["id"] = model_id
    return jsonify(entry)
