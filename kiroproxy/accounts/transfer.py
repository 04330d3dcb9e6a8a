"""Configuration export and import: settings plus accounts as one JSON document.

Export masks secrets unless asked not to. Import validates the whole document before changing
anything, then merges: accounts matched by identity are updated, new ones added, none dropped.
Pure apart from what the caller passes in (no file or network I/O here).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Dict, List, Optional, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .. import __version__
from ..config import ConfigError, Settings, validate
from ..errors import BadRequest
from .credentials import AUTH_METHODS, SECRET_FIELDS, Credentials, machine_id_for, mask
from .pool import AccountPool

FORMAT = 1
SECRET_SETTINGS = ("admin_key", "api_keys")
RUNTIME_SETTINGS = ("data_dir",)


def _account_doc() -> Any:
    """One account in an export document: every Credentials field, all optional (secrets may be
    masked when exported without them), plus `enabled`. Derived, so the two never drift apart."""
    hints = get_type_hints(Credentials)
    spec: Dict[str, Any] = {}
    for item in fields(Credentials):
        if item.name != "source_path":  # a path on the exporting machine means nothing elsewhere
            spec[item.name] = (Optional[hints[item.name]], None if item.default is MISSING else item.default)
    spec["enabled"] = (bool, True)
    return create_model("AccountDoc", __config__=ConfigDict(extra="ignore"), **spec)


AccountDoc = _account_doc()


class ExportDoc(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kiroproxy_export: int
    settings: Dict[str, Any] = {}
    accounts: List[AccountDoc] = []


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
    return bool(value) and ("…(" in value or value == "***")  # type: ignore[operator]


def export(pool: AccountPool, settings_file: Dict[str, Any], *, include_secrets: bool) -> Dict[str, Any]:
    accounts = []
    for account_id in pool.ids():
        record = pool.creds(account_id).to_record()
        record["enabled"] = pool.summary(account_id)["enabled"]
        record.pop("source_path", None)
        if not include_secrets:
            for key in SECRET_FIELDS:
                record[key] = mask(record.get(key))
        accounts.append(record)
    settings = {k: v for k, v in settings_file.items() if k not in RUNTIME_SETTINGS}
    if not include_secrets:
        for key in SECRET_SETTINGS:
            if settings.get(key):
                settings[key] = mask(settings[key]) if isinstance(settings[key], str) else \
                    [mask(v) for v in settings[key]]
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
        if account.auth_method not in AUTH_METHODS:
            problems.append(f"accounts.{index}.auth_method: must be one of {', '.join(AUTH_METHODS)}")
        token = account.refresh_token
        if token and not is_masked(token) and (len(token) < 100 or token.endswith("...")):
            problems.append(f"accounts.{index}.refresh_token: looks truncated")
    if problems:
        raise BadRequest("the import document is invalid: " + "; ".join(problems))
    return doc


def plan(doc: ExportDoc, pool: AccountPool, settings_file: Dict[str, Any]) -> tuple:
    """Decide every change before applying any: (credentials to add/update, ImportResult)."""
    result = ImportResult()
    changes: List[tuple] = []
    for index, account in enumerate(doc.accounts):
        label = account.name or account.id or f"accounts.{index}"
        existing = _match(pool, account)
        if existing is not None:
            changes.append(("update", _merged(existing, account), account.enabled))
            result.updated.append({"id": existing.id, "name": label})
        elif not account.refresh_token or is_masked(account.refresh_token):
            result.skipped.append({"name": label, "reason": "no refresh token in the document "
                                   "(exported without secrets) and no matching account here"})
        elif account.auth_method == "idc" and (not account.client_secret or is_masked(account.client_secret)):
            result.skipped.append({"name": label, "reason": "IdC account without its client secret"})
        else:
            creds = _new(account)
            changes.append(("add", creds, account.enabled))
            result.added.append({"id": creds.id, "name": label})
    incoming = {k: v for k, v in doc.settings.items() if k not in RUNTIME_SETTINGS and not _masked_setting(v)}
    if incoming:
        merged = dict(settings_file)
        merged.update(incoming)
        try:
            validate(merged)
        except ConfigError as exc:
            raise BadRequest(f"the import document's settings are invalid: {exc}") from None
        unknown = set(incoming) - set(Settings.model_fields)
        if unknown:
            raise BadRequest(f"unknown settings in the import document: {', '.join(sorted(unknown))}")
        result.settings = merged
    return changes, result


def apply(changes: List[tuple], pool: AccountPool) -> None:
    for _, creds, enabled in changes:
        pool.add(creds)
        pool.set_enabled(creds.id, enabled)


def _masked_setting(value: Any) -> bool:
    if isinstance(value, str):
        return is_masked(value)
    if isinstance(value, list):
        return any(isinstance(v, str) and is_masked(v) for v in value)
    return False


def _match(pool: AccountPool, account: AccountDoc) -> Optional[Credentials]:
    def same(creds: Credentials) -> bool:
        if account.id and creds.id == account.id:
            return True
        if account.machine_id and creds.machine_id == account.machine_id:
            return True
        return bool(account.refresh_token) and creds.refresh_token == account.refresh_token

    return pool.find(same)


def _merged(existing: Credentials, account: AccountDoc) -> Credentials:
    """The existing account with the document's values; masked secrets keep the current ones."""
    values = account.model_dump(exclude={"enabled", "id", "machine_id", "created_at"})
    for key in SECRET_FIELDS:
        if not values.get(key) or is_masked(values[key]):
            values.pop(key, None)
    if "access_token" not in values or values.get("expires_at", 0) <= existing.expires_at:
        # Keep the token we have when it is newer; an expiry only describes its own token, so
        # the document's goes too (a masked token must not lend ours its later expiry).
        values.pop("access_token", None)
        values.pop("expires_at", None)
    values = {k: v for k, v in values.items() if v is not None}
    return replace(existing, **values)


def _new(account: AccountDoc) -> Credentials:
    data = account.model_dump(exclude={"enabled"})
    data = {k: v for k, v in data.items() if v is not None}
    if not data.get("machine_id"):
        data["machine_id"] = machine_id_for(account.client_id or account.refresh_token or "")
    if not data.get("created_at"):
        data["created_at"] = time.time()
    data.setdefault("access_token", "")
    if not data.get("id"):
        data["id"] = uuid.uuid4().hex[:12]
    return Credentials.from_record(data)
