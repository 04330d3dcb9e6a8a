"""/healthz (no key: status and reasons, nothing secret) and /metrics (Prometheus text; the admin
key is required when the server listens beyond loopback, as Prometheus can send a bearer token)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .. import health, metrics
from ..exposure import is_loopback
from . import services
from .admin import require_admin_key

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    svc = services()
    body = health.report(svc.pool.counts(), svc.upstream_health, svc.home)
    response = jsonify(body)
    response.status_code = 200 if body["status"] == "ok" else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def prometheus() -> Response:
    svc = services()
    if not is_loopback(svc.settings.host):
        refused = require_admin_key()
        if refused is not None:
            return refused
    return Response(svc.metrics.render(), content_type=metrics.CONTENT_TYPE)
