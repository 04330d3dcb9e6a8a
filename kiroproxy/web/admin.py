"""The admin JSON API blueprint (/api/...). Every route needs `Authorization: Bearer <admin key>`.

Errors answer as {"error": {"type", "message"}} with a real status; token values never appear.
"""
from __future__ import annotations

import hmac
import json
import logging
import math
from dataclasses import asdict, replace
from typing import Any, Optional, Set, Tuple

from flask import Blueprint, Response, jsonify, request

from ..accounts import scan
from ..accounts.credentials import Credentials, explicit_fields, from_token_file, mask_proxy_url, proxy_url_of
from ..accounts.pool import AccountPool
from ..accounts.refresher import failure_text
from ..config import ConfigError, read_file
from ..errors import BadRequest, NotFound, ProxyError, RateLimited, Unauthorized
from ..kiro.auth import RefreshError
from ..store.jsondb import write_atomic
from . import bodies, services

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__)


def admin_error(error: ProxyError) -> Response:
    response = jsonify({"error": {"type": error.kind, "message": error.message}})
    response.status_code = error.status
    return response


@bp.before_request
def require_admin_key() -> Any:
    """The admin key, compared in constant time; an address that sent too many wrong keys is
    refused (429) for a while without its key being looked at."""
    lockout = services().admin_lockout
    address = request.remote_addr or ""
    wait = lockout.locked_for(address)
    if wait > 0:
        response = admin_error(RateLimited("too many wrong admin keys from this address; retry later",
                                           retry_after=wait))
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    expected = services().admin_key
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        if given and lockout.failed(address):
            log.warning("admin API: %d wrong keys from %s; refusing that address for %.0f s",
                        lockout.max_failures, address, lockout.lockout_seconds)
        response = admin_error(Unauthorized("the admin API needs Authorization: Bearer <admin key>"))
        response.headers["WWW-Authenticate"] = 'Bearer realm="kiroproxy admin"'
        return response
    lockout.succeeded(address)
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
    """The request's JSON object ({} when the body is empty); BadRequest for anything else."""
    return bodies.read_object(empty_ok=True)[0]


def flag(data: dict, key: str) -> Optional[bool]:
    """data[key] when it is a JSON boolean, None when absent; BadRequest for "false", 0 and the like."""
    if key not in data:
        return None
    if not isinstance(data[key], bool):
        raise BadRequest(f"{key} must be true or false", param=key)
    return data[key]


def text(data: dict, key: str) -> Optional[str]:
    """data[key] stripped when it is a non-empty string, None when absent or empty."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", param=key)
    return value.strip() if value and value.strip() else None


def added(pool: AccountPool, creds: Credentials, explicit: Set[str]) -> Response:
    """Add or update an account; 201 when new, 200 saying what happened when it was known."""
    known = pool.match(creds)
    stored = pool.add(creds, explicit=explicit)
    services().sync_models_soon()
    body = {"account": pool.summary(stored.id), "created": known is None}
    if known is not None:
        body["message"] = (f"already added as account {known.id} ({known.name or known.id}): its tokens were "
                           "updated; its name, proxy and source file were kept unless this request set them")
    response = jsonify(body)
    response.status_code = 200 if known is not None else 201
    return response



@bp.get("/accounts")
def list_accounts() -> Response:
    return jsonify({"accounts": services().pool.summaries()})


@bp.post("/accounts")
def add_account() -> Response:
    """A Kiro token file or pasted tokens. When a scanned Kiro token file holds the same refresh
    token, the account remembers that file, so newer tokens Kiro writes there can be adopted."""
    data = body_object()
    token = data.get("token") if isinstance(data.get("token"), dict) else data
    name = text(data, "name")
    creds = from_token_file(token, name=name or "")
    explicit = set(explicit_fields(token)) | ({"name"} if name else set())
    source = scan.path_holding(services().settings.scan_home_path, creds.refresh_token)
    if source:  # the account's own source file, if it already has one, stays (not explicit)
        creds = replace(creds, source_path=source)
    return added(services().pool, creds, explicit)


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
        changes["name"] = text(data, "name") or ""
    if "proxy_url" in data:
        proxy_url = proxy_url_of(data["proxy_url"], param="proxy_url")
        # The listing shows the password masked: sending that back unchanged keeps the real one.
        if proxy_url is None or proxy_url != mask_proxy_url(pool.creds(account_id).proxy_url):
            changes["proxy_url"] = proxy_url
    enabled = flag(data, "enabled")  # checked before anything changes
    if changes:
        pool.update_creds(account_id, lambda creds: replace(creds, **changes))
    if enabled is not None:
        pool.set_enabled(account_id, enabled)
    return jsonify({"account": pool.summary(account_id)})


@bp.post("/accounts/<account_id>/toggle")
def toggle_account(account_id: str) -> Response:
    data = body_object()
    pool = services().pool
    current = pool.summary(account_id)["enabled"]
    enabled = flag(data, "enabled")
    pool.set_enabled(account_id, not current if enabled is None else enabled)
    return jsonify({"account": pool.summary(account_id)})


@bp.post("/accounts/<account_id>/refresh")
def refresh_account(account_id: str) -> Response:
    svc = services()
    svc.pool.summary(account_id)
    try:
        svc.refresher.ensure_fresh(account_id, force=True)
    except RefreshError as exc:
        status = 409 if exc.permanent else 502
        raise ProxyError(failure_text(exc), status=status, kind="refresh_failed") from None
    return jsonify({"account": svc.pool.summary(account_id), "refreshed": True})


@bp.post("/accounts/<account_id>/restore")
def restore_account(account_id: str) -> Response:
    services().pool.restore(account_id)
    return jsonify({"account": services().pool.summary(account_id)})


@bp.get("/accounts/<account_id>/usage")
def account_usage(account_id: str) -> Response:
    """Live usage. Kiro's failures answer 502/503 (never 401, which means a wrong admin key)."""
    svc = services()
    svc.pool.summary(account_id)
    return jsonify(svc.monitor.usage(account_id, max_age=0))


@bp.post("/accounts/refresh-all")
def refresh_all() -> Response:
    return jsonify({"results": services().monitor.refresh_all()})


@bp.get("/quota")
def quota() -> Response:
    return jsonify(services().monitor.quota())



@bp.get("/token/scan")
def token_scan() -> Response:
    svc = services()
    out = []
    for found, creds in scan.listing(svc.settings.scan_home_path):
        row = asdict(found)
        known, matched_by = known_as(svc.pool, found.path, creds)
        row["account_id"] = known.id if known else None
        row["already_added"] = known is not None
        row["matched_by"] = matched_by
        out.append(row)
    return jsonify({"tokens": out, "scanned": str(svc.settings.scan_home_path)})


def known_as(pool: AccountPool, path: str, creds: Optional[Credentials]) -> Tuple[Optional[Credentials], Optional[str]]:
    """The account a scanned entry already is, and how that is known ("refresh token": the same
    sign-in; "source file": added from that file and not provably another account since)."""
    if creds is None:
        known = pool.find(lambda c: c.source_path == path)
        return known, "source file" if known else None
    known = pool.match(creds)
    if known is None:
        return None, None
    return known, "refresh token" if known.refresh_token == creds.refresh_token else "source file"


@bp.post("/token/add-from-scan")
def add_from_scan() -> Response:
    data = body_object()
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise BadRequest("path is required: one of the paths GET /api/token/scan lists", param="path")
    name = text(data, "name")
    creds = scan.load(path, services().settings.scan_home_path)
    if name:
        creds = replace(creds, name=name)
    return added(services().pool, creds, {"source_path"} | ({"name"} if name else set()))


@bp.post("/token/refresh-check")
def refresh_check() -> Response:
    return jsonify({"accounts": services().monitor.refresh_check()})



def _settings_file() -> dict:
    path = services().home / "config.json"
    try:
        return read_file(path)
    except ConfigError as exc:
        raise ProxyError(f"{exc}; fix or remove the file, then try again", kind="config_error") from None
    except OSError as exc:
        raise ProxyError(f"{path} cannot be read ({exc.strerror}); fix its permissions, then try again",
                         kind="config_error") from None


@bp.get("/config/export")
def config_export() -> Response:
    from ..accounts import transfer  # pydantic loads with the first export or import, not at start-up

    include = request.args.get("include_secrets", "").lower() in ("1", "true", "yes")
    document = transfer.export(services().pool, _settings_file(), include_secrets=include)
    return attachment(jsonify(document), "kiroproxy-config.json")


@bp.post("/config/import")
def config_import() -> Response:
    from ..accounts import transfer

    svc = services()
    document = transfer.parse_document(body_object())
    changes, result = transfer.plan(document, svc.pool, _settings_file())

    def write_settings(settings: dict) -> None:
        data = json.dumps(settings, indent=2, ensure_ascii=False).encode("utf-8")
        write_atomic(svc.home / "config.json", data, 0o600)

    transfer.apply(changes, svc.pool, result.settings, write_settings)
    if result.added:
        svc.sync_models_soon()
    return jsonify(result.summary())
