"""The Flask app factory. Nothing happens at import; create_app() wires blueprints to services."""
from __future__ import annotations

import logging
import re
from typing import Any, Callable, Optional

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from .config import Settings
from .errors import BadRequest, NotFound, ProxyError
from .services import Services
from .store.encoding import LONE_SURROGATE, scrub
from .web import admin, completions, flows, gemini, guard, health, keys, logins, messages, models, proxy, ui  # noqa: F401  (routes register)
from .web.guard import is_admin_path, is_client_call

log = logging.getLogger(__name__)

MAX_BODY = 64 * 2**20


def create_app(settings: Settings, services: Optional[Services] = None) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.url_rule_class = Route
    app.json = JSONAnswers(app)
    app.wsgi_app = PathFix(app.wsgi_app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["kiroproxy"] = services or Services.build(settings)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp, url_prefix="/api")
    app.before_request(guard.check)  # first: a refused request meets no key check, no view
    app.register_blueprint(ui.bp)
    app.before_request(guard_unrouted_admin_paths)
    app.after_request(guard.add_cors)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


class Route(Rule):
    """A werkzeug rule whose URL builders compile on first use. werkzeug compiles two per rule (Python
    source through ast and compile()) as the rule is added: about 10 ms of the start-up for our ~60
    rules, for URLs this app never builds (no url_for, no redirects)."""

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., Any]:
        compiled: Optional[Callable[..., Any]] = None

        def build(rule: Rule, **values: Any) -> Any:
            nonlocal compiled
            if compiled is None:  # two threads may both compile; either result is the same
                compiled = Rule._compile_builder(rule, append_unknown)
            return compiled(rule, **values)

        return build


class JSONAnswers(DefaultJSONProvider):
    """Flask's JSON, with a lone surrogate (which UTF-8 cannot carry) shown as U+FFFD instead of
    failing the whole answer: no value that reached a view can turn into a 500 here."""

    def dumps(self, obj, **kwargs) -> str:
        text = super().dumps(obj, **kwargs)
        return scrub(text) if not text.isascii() and LONE_SURROGATE.search(text) else text


class PathFix:
    """Folds the paths clients produce when a version sits in their base URL: `//v1beta/...`,
    `/v1/v1beta/...` -> `/v1beta/...`."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            path = re.sub("/{2,}", "/", path)
        for doubled in ("/v1/v1beta/", "/v1/v1/", "/v1beta/v1beta/", "/v1/v1alpha/"):
            if path.startswith(doubled):
                path = path[len("/v1"):] if doubled != "/v1beta/v1beta/" else path[len("/v1beta"):]
        environ["PATH_INFO"] = path
        return self.app(environ, start_response)


def guard_unrouted_admin_paths() -> Optional[Response]:
    """The admin blueprint checks the key only on routes it has: without this, an unknown path or
    a wrong method under /api would answer 404/405 to anyone and so reveal which routes exist."""
    if is_admin_path(request.path) and request.routing_exception is not None:
        return admin.require_admin_key()
    return None


def _render(error: ProxyError) -> Response:
    if is_admin_path(request.path):
        return admin.admin_error(error)
    return proxy.error_response(proxy.protocol_for_request(), error)


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
    if is_client_call(request.method, request.path):
        proxy.record_rejected(proxy.protocol_for_request(), error)
    return _render(error)


def unexpected_error(exc: Exception) -> Response:
    # The one broad catch: log once with the traceback, answer without it.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _render(ProxyError("internal server error; see the server log", status=500))
