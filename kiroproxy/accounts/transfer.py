"""Configuration export and import: settings plus accounts as one JSON document.

Export masks secrets (tokens, client secrets, keys, proxy passwords) unless asked not to. Import
validates the whole document and plans every change before making any, then makes them all or none:
accounts matched by identity are updated, new ones added, duplicates and unusable ones skipped with
a reason. Pure apart from what the caller passes in (no file or network I/O here).
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .. import __version__
from ..config import FIELDS, ConfigError, validate
from ..errors import BadRequest
from .credentials import (
    AUTH_METHODS,
    IDC,
    LATEST_TIME,
    SECRET_FIELDS,
    USER_FIELDS,
    Credentials,
    is_safe_id,
    machine_id_for,
    mask,
    mask_proxy_url,
    proxy_url_of,
)
from .pool import AccountPool

log = logging.getLogger(__name__)

FORMAT = 1
SECRET_SETTINGS = ("admin_key", "api_keys")
RUNTIME_SETTINGS = ("data_dir",)
TIME_FIELDS = ("expires_at", "client_secret_expires_at", "created_at")
ADD, UPDATE = "add", "update"


def _account_doc() -> Any:
    """One account in an export document: every Credentials field, all optional (secrets may be
    masked when exported without them), plus `enabled`. Derived, so the two never drift apart.
    Strict: `"enabled": "false"` or `"expires_at": true` is an error, not a guess."""
    hints = get_type_hints(Credentials)
    spec: Dict[str, Any] = {}
    for item in fields(Credentials):
        if item.name != "source_path":  # a path on the exporting machine means nothing elsewhere
            spec[item.name] = (Optional[hints[item.name]], None if item.default is MISSING else item.default)
    spec["enabled"] = (bool, True)
    return create_model("AccountDoc", __config__=ConfigDict(extra="ignore", strict=True, allow_inf_nan=False),
                        **spec)


AccountDoc = _account_doc()


class ExportDoc(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kiroproxy_export: int
    settings: Dict[str, Any] = {}
    accounts: List[AccountDoc] = []


class Change(NamedTuple):
    """One planned account change: ADD or UPDATE these credentials, then set `enabled`."""

    action: str
    creds: Credentials
    enabled: bool


@dataclass
class ImportResult:
    added: List[Dict[str, str]] = field(default_factory=list)
    updated: List[Dict[str, str]] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    settings: Optional[Dict[str, Any]] = None  # the merged settings file to write, if any

    def summary(self) -> Dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "skipped": self.skipped,
                "settings_changed": sorted(self.settings) if self.settings is not None else [],
                "restart_required": self.settings is not None}


def is_masked(value: Optional[str]) -> bool:
    """A secret (or a proxy URL's password) as an export without secrets writes it."""
    return bool(value) and ("…(" in value or value == "***" or "***@" in value)  # type: ignore[operator]


def export(pool: AccountPool, settings_file: Dict[str, Any], *, include_secrets: bool) -> Dict[str, Any]:
    accounts = []
    for account_id in pool.ids():
        record = pool.creds(account_id).to_record()
        record["enabled"] = pool.summary(account_id)["enabled"]
        record.pop("source_path", None)
        if not include_secrets:
            for key in SECRET_FIELDS:
                record[key] = mask(record.get(key))
            record["proxy_url"] = mask_proxy_url(record.get("proxy_url"))
        accounts.append(record)
    settings = {k: v for k, v in settings_file.items() if k not in RUNTIME_SETTINGS}
    if not include_secrets:
        for key in SECRET_SETTINGS:
            if settings.get(key):
                settings[key] = mask(settings[key]) if isinstance(settings[key], str) else \
                    [mask(v) for v in settings[key]]
        if isinstance(settings.get("proxy_url"), str):
            settings["proxy_url"] = mask_proxy_url(settings["proxy_url"])
    return {"kiroproxy_export": FORMAT, "version": __version__, "exported_at": time.time(),
            "secrets_included": include_secrets, "settings": settings, "accounts": accounts}


def parse_document(data: Any) -> ExportDoc:
    """Validate a whole document; raises BadRequest listing every problem found."""
    if not isinstance(data, dict):
        raise BadRequest("the import document must be a JSON object (an export from GET /api/config/export)")
    try:
        doc = ExportDoc(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise BadRequest(f"the import document is invalid: {problems}") from None
    if doc.kiroproxy_export != FORMAT:
        raise BadRequest(f"unsupported export format {doc.kiroproxy_export} (this version reads {FORMAT})")
    problems = []
    for index, account in enumerate(doc.accounts):
        problems += _account_problems(f"accounts.{index}", account)
    if problems:
        raise BadRequest("the import document is invalid: " + "; ".join(problems))
    return doc


def _account_problems(where: str, account: Any) -> List[str]:
    problems = []
    if account.auth_method not in AUTH_METHODS:
        problems.append(f"{where}.auth_method: must be one of {', '.join(AUTH_METHODS)}")
    token = account.refresh_token
    if token and not is_masked(token) and (len(token) < 100 or token.endswith("...")):
        problems.append(f"{where}.refresh_token: looks truncated")
    for key in TIME_FIELDS:
        value = getattr(account, key)
        if value is not None and not 0 <= value <= LATEST_TIME:
            problems.append(f"{where}.{key}: not a plausible time (epoch seconds before 2100)")
    if account.proxy_url and not is_masked(account.proxy_url):
        try:
            proxy_url_of(account.proxy_url, param=f"{where}.proxy_url")
        except BadRequest as exc:
            problems.append(exc.message)
    return problems


def plan(doc: ExportDoc, pool: AccountPool, settings_file: Dict[str, Any]) -> Tuple[List[Change], ImportResult]:
    """Decide every change before applying any. An account that appears twice in the document
    (same refresh token, or matching the same account here) is taken once: later copies are
    skipped with a reason. Raises BadRequest for settings that are invalid."""
    result = ImportResult()
    changes: List[Change] = []
    claimed: Dict[str, str] = {}  # account id -> the document entry that took it
    tokens: Dict[str, str] = {}   # refresh token -> the document entry that brought it
    for index, account in enumerate(doc.accounts):
        where = f"accounts.{index}"
        label = account.name or account.id or where
        existing = _match(pool, account)
        token = account.refresh_token if account.refresh_token and not is_masked(account.refresh_token) else None
        earlier = (claimed.get(existing.id) if existing is not None else None) or tokens.get(token or "")
        if earlier is not None:
            result.skipped.append({"name": label, "reason": f"the same account as {earlier} of this document"})
            continue
        change, problem = _decide(account, existing, set(claimed))
        if change is None:
            result.skipped.append({"name": label, "reason": problem})
            continue
        claimed[change.creds.id] = where
        if token:
            tokens[token] = where
        changes.append(change)
        entry = {"id": change.creds.id, "name": label}
        if change.action == ADD and account.id and account.id != change.creds.id:
            entry["note"] = f"new id: {account.id!r} is not a usable id here (letters, digits, '-', '_')"
        (result.updated if change.action == UPDATE else result.added).append(entry)
    result.settings = _settings(doc, settings_file)
    return changes, result


def _decide(account: Any, existing: Optional[Credentials], taken: Set[str]) -> Tuple[Optional[Change], str]:
    if existing is not None:
        return Change(UPDATE, _merged(existing, account), account.enabled), ""
    if not account.refresh_token or is_masked(account.refresh_token):
        return None, "no refresh token in the document (exported without secrets) and no matching account here"
    if account.auth_method == IDC and (not account.client_secret or is_masked(account.client_secret)):
        return None, "IdC account without its client secret"
    if is_masked(account.proxy_url):
        return None, "its proxy URL's password is masked (exported without secrets) and no matching account here"
    return Change(ADD, _new(account, taken), account.enabled), ""


def _settings(doc: ExportDoc, settings_file: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The settings file merged with the document's settings; None when the document has none."""
    incoming = {k: v for k, v in doc.settings.items() if k not in RUNTIME_SETTINGS and not _masked_setting(v)}
    if not incoming:
        return None
    unknown = set(incoming) - set(FIELDS)
    if unknown:
        raise BadRequest(f"unknown settings in the import document: {', '.join(sorted(unknown))}")
    if incoming.get("proxy_url") is not None:
        proxy_url_of(incoming["proxy_url"], param="settings.proxy_url")
    merged = dict(settings_file)
    merged.update(incoming)
    try:
        validate(merged)
    except ConfigError as exc:
        raise BadRequest(f"the import document's settings are invalid: {exc}") from None
    return merged


def apply(changes: List[Change], pool: AccountPool, settings: Optional[Dict[str, Any]] = None,
          write_settings: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
    """Make every planned change, or none: accounts first, then write_settings(settings). When
    anything fails (a disk error), the accounts already changed are put back and the error re-raised."""
    done: List[Tuple[str, Optional[Dict[str, Any]]]] = []  # (account id, its record before; None: new)
    try:
        for change in changes:
            current = pool.match(change.creds)
            account_id = current.id if current is not None else change.creds.id
            done.append((account_id, pool.record(account_id) if current is not None else None))
            creds = pool.add(change.creds, explicit=USER_FIELDS)  # the plan already merged them
            if pool.summary(creds.id)["enabled"] != change.enabled:
                pool.set_enabled(creds.id, change.enabled)
        if settings is not None and write_settings is not None:
            write_settings(settings)
    except Exception:  # undo, whatever failed, then let it propagate unchanged
        _undo(done, pool)
        raise


def _undo(done: List[Tuple[str, Optional[Dict[str, Any]]]], pool: AccountPool) -> None:
    for account_id, before in reversed(done):
        try:
            if before is None:
                pool.remove(account_id)
            else:
                pool.put_back(before)
        except OSError as exc:  # memory is restored first; the next save writes it to disk
            log.error("import: could not write back account %s after a failure: %s", account_id, exc)


def _masked_setting(value: Any) -> bool:
    if isinstance(value, str):
        return is_masked(value)
    if isinstance(value, list):
        return any(isinstance(v, str) and is_masked(v) for v in value)
    return False


def _match(pool: AccountPool, account: Any) -> Optional[Credentials]:
    """The account here that a document entry describes: by id, else refresh token, else machine id."""
    token = account.refresh_token
    for wanted, same in ((account.id, lambda c: c.id == account.id),
                         (token and not is_masked(token), lambda c: c.refresh_token == token),
                         (account.machine_id, lambda c: c.machine_id == account.machine_id)):
        found = pool.find(same) if wanted else None
        if found is not None:
            return found
    return None


def _merged(existing: Credentials, account: Any) -> Credentials:
    """The existing account with what the document sets; masked secrets and empty or missing user
    fields (name, proxy) keep the current values."""
    values = account.model_dump(exclude_unset=True, exclude={"enabled", "id", "machine_id", "created_at"})
    for key in (*SECRET_FIELDS, "proxy_url"):
        if not values.get(key) or is_masked(values[key]):
            values.pop(key, None)
    if "access_token" not in values or (values.get("expires_at") or 0) <= existing.expires_at:
        # Keep the token we have when it is newer; an expiry only describes its own token, so
        # the document's goes too (a masked token must not lend ours its later expiry).
        values.pop("access_token", None)
        values.pop("expires_at", None)
    values = {k: v for k, v in values.items() if v is not None and not (k in USER_FIELDS and v == "")}
    return replace(existing, **values)


def _new(account: Any, taken: Set[str]) -> Credentials:
    data = account.model_dump(exclude={"enabled"})
    data = {k: v for k, v in data.items() if v is not None}
    if not data.get("machine_id"):
        data["machine_id"] = machine_id_for(account.client_id or account.refresh_token or "")
    if not data.get("created_at"):
        data["created_at"] = time.time()
    data.setdefault("access_token", "")
    # Ids end up in URLs: one that is not what the proxy itself generates is replaced.
    if not is_safe_id(data.get("id")) or data["id"] in taken:
        data["id"] = uuid.uuid4().hex[:12]
    return Credentials.from_record(data)
