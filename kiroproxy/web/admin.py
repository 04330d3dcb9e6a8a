"""The admin JSON API blueprint (/api/...). Every route needs `Authorization: Bearer <admin key>`.

Errors answer as {"error": {"type", "message"}} with a real status; token values never appear.
"""
from __future__ import annotations

import hmac
import json
import logging
from dataclasses import asdict, replace
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..accounts import scan, transfer
from ..accounts.credentials import from_token_file
from ..config import read_file
from ..errors import BadRequest, NotFound, ProxyError, Unauthorized
from ..kiro.auth import RefreshError
from ..store.jsondb import write_atomic

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


def attachment(response: Response, filename: str) -> Response:
    """Mark a response as a download that no cache may keep (exports hold private data)."""
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    response.headers["Cache-Control"] = "no-store"
    return response


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
    services().sync_models_soon()
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


@bp.patch("/accounts/<account_id>")
def update_account(account_id: str) -> Response:
    """Change an account's name, outbound proxy or enabled flag."""
    data = body_object()
    pool = services().pool
    pool.summary(account_id)  # 404 for unknown ids
    changes = {}
    if "name" in data:
        if not isinstance(data["name"], str):
            raise BadRequest("name must be a string", param="name")
        changes["name"] = data["name"].strip()
    if "proxy_url" in data:
        proxy_url = data["proxy_url"]
        if proxy_url is not None and (not isinstance(proxy_url, str) or "://" not in proxy_url):
            raise BadRequest("proxy_url must be a URL such as http://host:3128 or null", param="proxy_url")
        changes["proxy_url"] = proxy_url or None
    if changes:
        pool.update_creds(account_id, lambda creds: replace(creds, **changes))
    if "enabled" in data:
        pool.set_enabled(account_id, bool(data["enabled"]))
    return jsonify({"account": pool.summary(account_id)})


@bp.post("/accounts/<account_id>/toggle")
def toggle_account(account_id: str) -> Response:
    data = body_object()
    pool = services().pool
    current = pool.summary(account_id)["enabled"]
    enabled = bool(data["enabled"]) if "enabled" in data else not current
    pool.set_enabled(account_id, enabled)
    return jsonify({"account": pool.summary(account_id)})


@bp.post("/accounts/<account_id>/refresh")
def refresh_account(account_id: str) -> Response:
    svc = services()
    svc.pool.summary(account_id)
    try:
        svc.refresher.ensure_fresh(account_id, force=True)
    except RefreshError as exc:
        status = 409 if exc.permanent else 502
        raise ProxyError(f"token refresh failed: {exc.message}", status=status,
                         kind="refresh_failed") from None
    return jsonify({"account": svc.pool.summary(account_id), "refreshed": True})


@bp.post("/accounts/<account_id>/restore")
def restore_account(account_id: str) -> Response:
    services().pool.restore(account_id)
    return jsonify({"account": services().pool.summary(account_id)})


@bp.get("/accounts/<account_id>/usage")
def account_usage(account_id: str) -> Response:
    svc = services()
    svc.pool.summary(account_id)
    try:
        entry = svc.monitor.usage(account_id, max_age=0)
    except RefreshError as exc:
        raise ProxyError(f"token refresh failed: {exc.message}", status=502, kind="refresh_failed") from None
    return jsonify(entry)


@bp.post("/accounts/refresh-all")
def refresh_all() -> Response:
    return jsonify({"results": services().monitor.refresh_all()})


@bp.get("/quota")
def quota() -> Response:
    return jsonify(services().monitor.quota())


# ----- token files -------------------------------------------------------------------------


@bp.get("/token/scan")
def token_scan() -> Response:
    svc = services()
    found = scan.scan(svc.settings.scan_home_path)
    out = []
    for item in found:
        row = asdict(item)
        known = svc.pool.find(lambda c, path=item.path: c.source_path == path)
        row["account_id"] = known.id if known else None
        row["already_added"] = known is not None
        out.append(row)
    return jsonify({"tokens": out, "scanned": str(svc.settings.scan_home_path)})


@bp.post("/token/add-from-scan")
def add_from_scan() -> Response:
    data = body_object()
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise BadRequest("path is required: one of the paths GET /api/token/scan lists", param="path")
    svc = services()
    creds = scan.load(path, svc.settings.scan_home_path)
    if data.get("name"):
        creds = replace(creds, name=str(data["name"]))
    existed = svc.pool.find(lambda c: c.source_path == path or c.refresh_token == creds.refresh_token)
    creds = svc.pool.add(creds)
    svc.sync_models_soon()
    response = jsonify({"account": svc.pool.summary(creds.id), "created": existed is None})
    response.status_code = 201 if existed is None else 200
    return response


@bp.post("/token/refresh-check")
def refresh_check() -> Response:
    return jsonify({"accounts": services().monitor.refresh_check()})


# ----- configuration -----------------------------------------------------------------------


def _settings_file() -> dict:
    return read_file(services().home / "config.json")


@bp.get("/config/export")
def config_export() -> Response:
    include = request.args.get("include_secrets", "").lower() in ("1", "true", "yes")
    document = transfer.export(services().pool, _settings_file(), include_secrets=include)
    return attachment(jsonify(document), "kiroproxy-config.json")


@bp.post("/config/import")
def config_import() -> Response:
    svc = services()
    document = transfer.parse_document(body_object())
    changes, result = transfer.plan(document, svc.pool, _settings_file())
    if result.settings is not None:
        data = json.dumps(result.settings, indent=2, ensure_ascii=False).encode("utf-8")
        write_atomic(svc.home / "config.json", data, 0o600)
    transfer.apply(changes, svc.pool)
    if result.added:
        svc.sync_models_soon()
    return jsonify(result.summary())
