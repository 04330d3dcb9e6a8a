"""The client-facing API blueprint (/v1...): thin views over a protocol module and the relay.

Views parse, open the relay, and either render a whole reply or stream the protocol's SSE.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
from contextlib import closing
from types import ModuleType
from typing import Any, Callable, Iterable, List, Optional, Tuple

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import chat, tokens
from ..errors import BadRequest, ProxyError, Unauthorized
from ..exchange import COMPLETED, Exchange
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


# Deeper bodies are refused: the translators (and the flow store) walk request values recursively.
MAX_DEPTH = 128
# A \uD800-\uDFFF escape in the raw body: the only way a lone surrogate gets into parsed JSON.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # after parsing, a valid pair is one character


def json_body() -> Tuple[Any, Optional[bytes]]:
    """The request's JSON, safe to translate, and its raw bytes (None when they were scrubbed).
    Raises BadRequest when it is empty, invalid or nested deeper than MAX_DEPTH, a 413 ProxyError
    when it is too large. Lone surrogates (a cut emoji from a JS client, binary tool output) cannot
    be UTF-8: they become U+FFFD in every string and key."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise ProxyError(f"request body larger than {(request.max_content_length or 0) // 2**20} MiB",
                         status=413, kind="request_too_large") from None
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"the request body nests JSON deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    scrub = _SURROGATE_ESCAPE.search(raw) is not None
    # Cheap guards first, so an ordinary body is never walked.
    if scrub or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        _clean(body, scrub)
    # The flow store keeps these bytes instead of copying the parsed body on the request thread
    # (immutable, so nothing the request does later can reach the record); not after a scrub.
    return body, None if scrub else raw


def _clean(body: Any, scrub: bool) -> None:
    """Check the nesting depth and, when `scrub`, replace lone surrogates in place. Iterative (one
    level at a time), so depth never costs stack; json.loads made every container, so changing
    them is safe. About half the cost of json.loads on a large Claude Code body."""
    level: List[Any] = [body]
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise BadRequest(f"the request body nests JSON deeper than {MAX_DEPTH} levels")
        below: List[Any] = []
        for value in level:
            if scrub:
                _scrub(value)
            for item in (value.values() if type(value) is dict else value):
                if type(item) is dict or type(item) is list:
                    below.append(item)
        level = below
        depth += 1


def _scrub(value: Any) -> None:
    """Lone surrogates -> U+FFFD in the keys and string items of one dict or list."""
    if type(value) is dict:
        if any(_LONE_SURROGATE.search(key) for key in value):
            items = [(_LONE_SURROGATE.sub("\ufffd", k), v) for k, v in value.items()]
            value.clear()
            value.update(items)
        keys: Iterable[Any] = list(value)
    else:
        keys = range(len(value))
    for key in keys:
        item = value[key]
        if type(item) is str and not item.isascii():
            value[key] = _LONE_SURROGATE.sub("\ufffd", item)


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


def begin_exchange(proto: ModuleType) -> Exchange:
    """This request's flow record, begun on the relay (the flow store shows it as in flight).
    Whoever calls this must end it: relay.abort(), relay.open()'s stream, or a finish."""
    exchange = Exchange(protocol=proto.NAME, path=request.path, client=request.remote_addr or "",
                        headers=safe_headers(request.headers))
    services().relay.begin(exchange)
    g.exchange = exchange
    return exchange


def abort_unexpected(exchange: Exchange) -> None:
    """End the flow of a request that hit a bug; the app's outermost handler logs and answers."""
    services().relay.abort(exchange, ProxyError("internal server error; see the server log"))


def record_rejected(proto: ModuleType, error: ProxyError) -> None:
    """Record a flow for a client call refused before a view took it (unknown route, wrong method)."""
    if g.get("exchange") is None:  # a view that began a flow has recorded it already
        services().relay.abort(begin_exchange(proto), error)


def _accept(exchange: Exchange, parse: Callable[[Any], chat.ChatRequest]) -> Tuple[Any, chat.ChatRequest]:
    """Check the client key, read and parse the body; what was read goes on `exchange`."""
    check_client_key()
    body, exchange.raw_body = json_body()
    exchange.body = body
    req = parse(body)
    exchange.request, exchange.requested_model = req, req.model
    return body, req


def relay_call(proto: ModuleType, parse: Callable[[Any], chat.ChatRequest],
               render: Callable[[chat.Reply, chat.ChatRequest, Any], Any],
               encode: Callable[[chat.Stream, chat.ChatRequest, Any], Iterable[bytes]],
               mimetype: str = "text/event-stream") -> Response:
    """Parse, open the relay, then render or stream; every failure answers in `proto`'s shape.

    render(reply, req, body) returns the JSON document; encode(stream, req, body) yields the
    streamed bytes (it must close the stream when done)."""
    svc = services()
    exchange = begin_exchange(proto)
    try:
        body, req = _accept(exchange, parse)
        exchange.stream = req.stream
        stream = svc.relay.open(req, exchange)
    except ProxyError as error:
        svc.relay.abort(exchange, error)
        return error_response(proto, error)
    except Exception:
        abort_unexpected(exchange)  # else the flow would stay "pending" for good
        raise
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
    """A token-counting endpoint: parse, check the model is served, count with the shared tokenizer.

    Recorded as a flow like every call, with no token usage: nothing was sent upstream."""
    svc = services()
    exchange = begin_exchange(proto)
    try:
        _, req = _accept(exchange, parse)
        exchange.model = svc.catalog.resolve(req.model)
        total = tokens.count_request(req)
    except ProxyError as error:
        svc.relay.abort(exchange, error)
        return error_response(proto, error)
    except Exception:
        abort_unexpected(exchange)
        raise
    exchange.state = COMPLETED
    svc.relay.finish(exchange)  # tells the flow store and stats, as abort() does for failures
    return jsonify(render(total))


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
    if "/messages" in path:  # also under a wrong base URL, e.g. /proxy/v1/messages
        return anthropic
    if path.startswith(("/v1beta/", "/v1alpha/")) or path.endswith(GEMINI_ACTIONS):
        return gemini
    if "/models" in path:
        return {"anthropic": anthropic, "gemini": gemini}.get(model_shape(), openai)
    return anthropic if request.headers.get("anthropic-version") else openai
