"""The admin JSON API blueprint (/api/...). Every route needs `Authorization: Bearer <admin key>`.

Errors answer as {"error": {"type", "message"}} with a real status; token values never appear.
"""
from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..accounts.credentials import from_token_file
from ..errors import BadRequest, NotFound, ProxyError, Unauthorized

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__)


def services():
    return current_app.extensions["kiroproxy"]


def admin_error(error: ProxyError) -> Response:
    response = jsonify({"error": {"type": error.kind, "message": error.message}})
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kiroproxy admin"'
    return response


@bp.before_request
def require_admin_key() -> Any:
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    expected = services().admin_key
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return admin_error(Unauthorized("the admin API needs Authorization: Bearer <admin key>"))
    return None


@bp.errorhandler(ProxyError)
def proxy_error(error: ProxyError) -> Response:
    return admin_error(error)


def body_object() -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


# ----- accounts ----------------------------------------------------------------------------


@bp.get("/accounts")
def list_accounts() -> Response:
    return jsonify({"accounts": services().pool.summaries()})


@bp.post("/accounts")
def add_account() -> Response:
    data = body_object()
    token = data.get("token") if isinstance(data.get("token"), dict) else data
    creds = from_token_file(token, name=str(data.get("name") or ""))
    existed = services().pool.find(lambda c: c.refresh_token == creds.refresh_token) is not None
    creds = services().pool.add(creds)
    response = jsonify({"account": services().pool.summary(creds.id), "created": not existed})
    response.status_code = 200 if existed else 201
    return response


@bp.get("/accounts/<account_id>")
def get_account(account_id: str) -> Response:
    return jsonify({"account": services().pool.summary(account_id)})


@bp.delete("/accounts/<account_id>")
def delete_account(account_id: str) -> Response:
    if not services().pool.remove(account_id):
        raise NotFound(f"no account with id '{account_id}'")
    return jsonify({"deleted": account_id})
