"""The Flask app factory. Nothing happens at import; create_app() wires blueprints to services."""
from __future__ import annotations

import logging
from typing import Optional

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .config import Settings
from .errors import BadRequest, NotFound, ProxyError
from .protocols import anthropic
from .services import Services
from .web import admin, proxy

log = logging.getLogger(__name__)

MAX_BODY = 64 * 2**20


def create_app(settings: Settings, services: Optional[Services] = None) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["kiroproxy"] = services or Services.build(settings)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(admin.bp, url_prefix="/api")
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def _render(error: ProxyError) -> Response:
    if request.path.startswith("/api/"):
        return admin.admin_error(error)
    return proxy.error_response(anthropic, error)


def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        error: ProxyError = NotFound(f"no such endpoint: {request.method} {request.path}")
    elif status == 405:
        error = ProxyError(f"method {request.method} is not allowed on {request.path}", status=405,
                           kind="invalid_request")
    elif status == 413:
        error = ProxyError(f"request body larger than {MAX_BODY // 2**20} MiB", status=413,
                           kind="request_too_large")
    elif status < 500:
        error = BadRequest(exc.description or "bad request", status=status)
    else:
        error = ProxyError("internal server error", status=status)
    return _render(error)


def unexpected_error(exc: Exception) -> Response:
    # The one broad catch: log once with the traceback, answer without it.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _render(ProxyError("internal server error; see the server log", status=500))
