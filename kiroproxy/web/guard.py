"""Refuses what a web page could make a browser send: a Host that is not a name of the proxy (DNS
rebinding), a foreign Origin or a cross-site fetch on the APIs, and client bodies a page can send
without a preflight (text/plain, forms). Answers CORS only for allowed_origins, never with '*'.

Runs before every view and every key check: a refused request reads no body and touches no account.
"""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

from flask import Response, request

from ..errors import Forbidden, ProxyError
from ..exposure import is_loopback
from . import admin, proxy, services

# First path segments of the client APIs; other GETs (a browser's "/", favicon) are not API calls.
CLIENT_API_ROOTS = {"v1", "v1beta", "v1alpha", "models", "chat", "responses", "messages"}
BODY_METHODS = ("POST", "PUT", "PATCH")
# What an allowed origin's page may send in a preflighted request: header names only.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
EXPOSED_HEADERS = "retry-after, request-id, x-request-id, x-should-retry"


def is_admin_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_client_call(method: str, path: str) -> bool:
    """A request meant for the client APIs, so a refusal deserves a flow."""
    if is_admin_path(path):
        return False
    return method not in ("GET", "HEAD", "OPTIONS") or path.split("/", 2)[1] in CLIENT_API_ROOTS


def host_name(header: str) -> str:
    """The name part of a Host header or an allowed_hosts entry, lower case: "[::1]:8080" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def host_allowed(header: str, listen_host: str, allowed_hosts: list) -> bool:
    """Loopback names always; allowed_hosts entries (a name, or name:port for that port only); any
    other name only when listening beyond loopback with no allowed_hosts set."""
    if not header:
        return True  # HTTP/1.0 without Host: no browser sends that
    if is_loopback(host_name(header)):
        return True
    entries = {entry.strip().lower() for entry in allowed_hosts}
    if header.strip().lower() in entries or host_name(header) in entries:
        return True
    return not is_loopback(listen_host) and not allowed_hosts


def normal_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def is_own_origin(origin: str, host_header: str) -> bool:
    """Whether `origin` names the host the request was sent to (scheme-default ports folded), as
    the proxy's own web page does; behind a TLS proxy the page is https and the hop to us is http."""
    try:
        parts = urlsplit(normal_origin(origin))
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or not host_header:
        return False
    default = 443 if parts.scheme == "https" else 80
    header = host_header.strip().lower()
    tail = header.rsplit("]", 1)[-1] if header.startswith("[") else header
    header_port = int(tail.rsplit(":", 1)[1]) if tail.count(":") == 1 and tail.rsplit(":", 1)[1].isdigit() \
        else default
    return parts.hostname == host_name(header) and (port or default) == header_port


def _guarded(path: str) -> bool:
    return is_admin_path(path) or is_client_call(request.method, path)


def _allowed_origin(origin: Optional[str]) -> Optional[str]:
    """`origin` normalised when allowed_origins lists it and the path is a client API (the admin
    API answers only the proxy's own page)."""
    if not origin or is_admin_path(request.path) or not is_client_call(request.method, request.path):
        return None
    normal = normal_origin(origin)
    return normal if normal in services().settings.allowed_origins else None


def host_refusal() -> Optional[ProxyError]:
    settings = services().settings
    header = request.environ.get("HTTP_HOST", "")
    if host_allowed(header, settings.host, settings.allowed_hosts):
        return None
    return ProxyError(f"this proxy does not answer to the host name {host_name(header)[:100]!r} (a page using "
                      "DNS rebinding sends such names); to reach it under this name, add the name to "
                      "allowed_hosts", status=421, kind="invalid_request")


def origin_refusal() -> Optional[ProxyError]:
    if not _guarded(request.path):
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        if is_own_origin(origin, request.environ.get("HTTP_HOST", "")) or _allowed_origin(origin):
            return None
        where = "the admin API answers only the proxy's own page" if is_admin_path(request.path) else \
            "to call the proxy from a web app, add the app's origin to allowed_origins"
        return Forbidden(f"cross-origin request from {origin[:100]!r} refused: {where}")
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return Forbidden("cross-site request refused (Sec-Fetch-Site: cross-site)")
    return None


def content_refusal() -> Optional[ProxyError]:
    """Client bodies must be declared JSON (or carry no type): a page can send text/plain, form
    and multipart bodies cross-site without a preflight."""
    if request.method not in BODY_METHODS or not is_client_call(request.method, request.path):
        return None
    declared = request.mimetype
    if not declared or declared == "application/json" or declared.endswith("+json"):
        return None
    return ProxyError(f"Content-Type {declared[:100]} is not accepted: send the JSON body with "
                      "Content-Type: application/json", status=415, kind="invalid_request")


def refuse(error: ProxyError) -> Response:
    if is_admin_path(request.path):
        return admin.admin_error(error)
    proto = proxy.protocol_for_request()
    if is_client_call(request.method, request.path):
        proxy.record_rejected(proto, error)
    return proxy.error_response(proto, error)


def check() -> Optional[Response]:
    """before_request: refuse, answer an allowed origin's preflight, or let the request through."""
    error = host_refusal() or origin_refusal() or content_refusal()
    if error is not None:
        return refuse(error)
    origin = _allowed_origin(request.headers.get("Origin"))
    if origin and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return preflight(origin)
    return None


def preflight(origin: str) -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    wanted = request.headers.get("Access-Control-Request-Headers", "").strip()
    if wanted and _HEADER_LIST.match(wanted):
        response.headers["Access-Control-Allow-Headers"] = wanted
    response.headers["Access-Control-Max-Age"] = "600"
    response.headers["Vary"] = "Origin"
    return response


def add_cors(response: Response) -> Response:
    """after_request: an allowed origin may read the answer; nobody else gets CORS headers."""
    origin = _allowed_origin(request.headers.get("Origin"))
    if origin and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.vary.add("Origin")
    return response
