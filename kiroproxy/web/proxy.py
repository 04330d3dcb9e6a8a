"""The client-facing API blueprint (/v1...): thin views over a protocol module and the relay.

Views parse, open the relay, and either render a whole reply or stream the protocol's SSE.
"""
from __future__ import annotations

import hmac
import json
import logging
from contextlib import closing
from types import ModuleType
from typing import Any, Callable, Iterable, Optional

from flask import Blueprint, Response, current_app, jsonify, request

from .. import chat, tokens
from ..errors import BadRequest, ProxyError, Unauthorized
from ..exchange import Exchange
from ..protocols import anthropic, gemini, openai, sse
from ..redaction import safe_headers

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
               render: Callable[[chat.Reply, chat.ChatRequest, Any], Any],
               encode: Callable[[chat.Stream, chat.ChatRequest, Any], Iterable[bytes]],
               mimetype: str = "text/event-stream") -> Response:
    """Parse, open the relay, then render or stream; every failure answers in `proto`'s shape.

    render(reply, req, body) returns the JSON document; encode(stream, req, body) yields the
    streamed bytes (it must close the stream when done)."""
    svc = services()
    exchange = Exchange(protocol=proto.NAME, path=request.path, client=request.remote_addr or "",
                        headers=safe_headers(request.headers))
    svc.relay.begin(exchange)
    try:
        check_client_key()
        body = json_body()
        exchange.body = body
        req = parse(body)
        exchange.request, exchange.requested_model, exchange.stream = req, req.model, req.stream
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
        return jsonify(render(reply, req, body))
    response = Response(encode(stream, req, body), mimetype=mimetype, headers=sse.HEADERS)
    response.call_on_close(stream.close)
    return response


def count_call(proto: ModuleType, parse: Callable[[Any], chat.ChatRequest],
               render: Callable[[int], Any]) -> Response:
    """A token-counting endpoint: parse, check the model is served, count with the shared tokenizer."""
    try:
        check_client_key()
        req = parse(json_body())
        services().catalog.resolve(req.model)
    except ProxyError as error:
        return error_response(proto, error)
    return jsonify(render(tokens.count_request(req)))


# ----- which protocol a request speaks -----------------------------------------------------


GEMINI_ACTIONS = (":generateContent", ":streamGenerateContent", ":countTokens")


def model_shape() -> str:
    """/v1/models is claimed by all three APIs: decide by the headers the client sent."""
    if request.headers.get("anthropic-version"):
        return "anthropic"
    if request.headers.get("x-goog-api-key") or request.args.get("key"):
        return "gemini"
    return "openai"


def protocol_for_request() -> ModuleType:
    """Whose error shape fits a request that failed before reaching a view (404, 405, 413...)."""
    path = request.path
    if path.startswith("/v1/messages"):
        return anthropic
    if path.startswith(("/v1beta/", "/v1alpha/")) or path.endswith(GEMINI_ACTIONS):
        return gemini
    if "/models" in path:
        return {"anthropic": anthropic, "gemini": gemini}.get(model_shape(), openai)
    return openai
