"""The client-facing API blueprint (/v1...): generic views over a protocol object and the relay.

relay_call and count_call serve any protocol (protocols.interface): parse once, open the relay,
then render a whole reply or stream the protocol's bytes; every failure answers in its shape.
"""
from __future__ import annotations

import copy
import hmac
import logging
from contextlib import closing
from typing import Any, Iterator, Optional, Tuple

from flask import Blueprint, Response, g, jsonify, request

from .. import chat, tokens
from ..errors import ProxyError, Unauthorized
from ..exchange import Exchange
from ..identity import identities, neutral
from ..protocols import anthropic, gemini, interface, openai, sse
from ..protocols.interface import Call, ClientProtocol, CountingProtocol
from ..redaction import safe_headers
from . import bodies, services

log = logging.getLogger(__name__)

bp = Blueprint("proxy", __name__)


def error_response(proto: ClientProtocol, error: ProxyError) -> Response:
    """`error` in `proto`'s shape, accounts named only by their neutral labels."""
    status, body, headers = proto.error_body(neutral_error(error, identities(services().pool.summaries())))
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def neutral_error(error: ProxyError, known: Tuple[Tuple[str, str], ...]) -> ProxyError:
    """`error`, or a copy whose message names accounts by label only (identity.neutral)."""
    shown = neutral(error.message, known)
    if shown == error.message:
        return error
    error = copy.copy(error)
    error.message = shown
    return error


def neutral_stream(stream: chat.Stream) -> chat.Stream:
    """The same events; an error raised mid-stream names accounts by label only."""
    pool = services().pool  # the generator runs after the request context is gone

    def events() -> Iterator[chat.Event]:
        try:
            yield from stream
        except ProxyError as error:
            raise neutral_error(error, identities(pool.summaries())) from None

    return chat.Stream(events(), model=stream.model, input_tokens=stream.input_tokens, on_close=stream.close)


def client_key() -> Optional[str]:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return (request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
            or request.args.get("key"))


def check_client_key() -> None:
    """Once client keys exist (`kiroproxy keys create`, or api_keys in the settings), every proxy
    call must carry one of them."""
    svc = services()
    configured = svc.settings.api_keys
    if not configured and not svc.keys.any():
        return
    given = client_key() or ""
    if any(hmac.compare_digest(given.encode(), key.encode()) for key in configured):
        return
    if svc.keys.verify(given) is None:
        raise Unauthorized("invalid API key: send one of this server's client keys (see `kiroproxy keys list`)",
                           code="invalid_api_key")


def begin_exchange(proto: ClientProtocol) -> Exchange:
    """This request's flow record, begun on the relay (the flow store shows it as in flight).
    Whoever calls this must end it: relay.abort(), relay.open()'s stream, or a finish."""
    exchange = Exchange(proto.name, request.path, client=request.remote_addr or "",
                        headers=safe_headers(request.headers))
    services().relay.begin(exchange)
    g.exchange = exchange
    return exchange


def abort_unexpected(exchange: Exchange) -> None:
    """End the flow of a request that hit a bug; the app's outermost handler logs and answers."""
    services().relay.abort(exchange, ProxyError("internal server error; see the server log"))


def record_rejected(proto: ClientProtocol, error: ProxyError) -> None:
    """Record a flow for a client call refused before a view took it (unknown route, wrong method)."""
    if g.get("exchange") is None:  # a view that began a flow has recorded it already
        services().relay.abort(begin_exchange(proto), error)


def _accept(exchange: Exchange) -> dict:
    """Check the client key and read the body; what was read goes on `exchange` (the caller
    records the parsed request with exchange.accepted())."""
    check_client_key()
    body, raw_body = bodies.read_object()
    exchange.read(body, raw_body)
    return body


def relay_call(proto: ClientProtocol[Any], call: Call = interface.PLAIN) -> Response:
    """Parse, open the relay, then render or stream; every failure answers in `proto`'s shape."""
    svc = services()
    exchange = begin_exchange(proto)
    try:
        req, options = proto.parse(_accept(exchange), call)
        exchange.accepted(req, stream=req.stream)
        slot = svc.slots.take()  # this request holds a thread until its answer ends
        try:
            stream = svc.relay.open(req, exchange)
        except BaseException:
            slot.release()
            raise
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
        finally:
            slot.release()
        return jsonify(proto.render(reply, req, options))
    stream = neutral_stream(stream)
    response = Response(proto.encode_stream(stream, req, options), mimetype=proto.mimetype(options),
                        headers=sse.HEADERS)
    response.call_on_close(stream.close)
    response.call_on_close(slot.release)
    return response


def count_call(proto: CountingProtocol[Any], call: Call = interface.PLAIN) -> Response:
    """A token-counting endpoint: parse, check the model is served, count with the shared tokenizer.

    Recorded as a flow like every call, with no token usage: nothing was sent upstream."""
    svc = services()
    exchange = begin_exchange(proto)
    try:
        req = proto.parse_count(_accept(exchange), call)
        exchange.accepted(req)
        exchange.routed(svc.catalog.resolve(req.model))
        total = tokens.count_request(req)
    except ProxyError as error:
        svc.relay.abort(exchange, error)
        return error_response(proto, error)
    except Exception:
        abort_unexpected(exchange)
        raise
    exchange.completed()
    svc.relay.finish(exchange)  # tells the flow store and stats, as abort() does for failures
    return jsonify(proto.count_body(total))


GEMINI_ACTIONS = (":generateContent", ":streamGenerateContent", ":countTokens")


def model_shape() -> ClientProtocol[Any]:
    """/v1/models is claimed by all three APIs: decide by the headers the client sent."""
    if request.headers.get("anthropic-version"):
        return anthropic.PROTOCOL
    if request.headers.get("x-goog-api-key") or request.args.get("key"):
        return gemini.PROTOCOL
    return openai.PROTOCOL


def protocol_for_request() -> ClientProtocol[Any]:
    """Whose error shape fits a request that failed before reaching a view (404, 405, 413...)."""
    path = request.path
    if "/messages" in path:  # also under a wrong base URL, e.g. /proxy/v1/messages
        return anthropic.PROTOCOL
    if path.startswith(("/v1beta/", "/v1alpha/")) or path.endswith(GEMINI_ACTIONS):
        return gemini.PROTOCOL
    if "/models" in path:
        return model_shape()
    return anthropic.PROTOCOL if request.headers.get("anthropic-version") else openai.PROTOCOL
