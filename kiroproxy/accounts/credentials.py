"""Account rules around Kiro's credentials: ids, user fields, identity checks, merging, masking.

The credential type itself is Kiro's (kiro/credentials.py); it is re-exported here because the
account store keeps exactly that record. Pure: no file or network I/O.
"""
from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional

from ..kiro.credentials import (
    AUTH_METHODS,
    DEFAULT_SOCIAL_PROFILE,
    EXTERNAL_IDP,
    IDC,
    LATEST_TIME,
    SECRET_FIELDS,
    SOCIAL,
    Credentials,
    auth_method_of,
    first_text,
    from_token_file,
    machine_id_for,
    mask_proxy_url,
    parse_time,
    proxy_url_of,
)

__all__ = ["AUTH_METHODS", "DEFAULT_SOCIAL_PROFILE", "EXTERNAL_IDP", "IDC", "LATEST_TIME", "SECRET_FIELDS", "SOCIAL",
           "Credentials", "auth_method_of", "from_token_file", "machine_id_for", "mask_proxy_url",
           "parse_time", "proxy_url_of", "SAFE_ID", "USER_FIELDS", "explicit_fields", "is_safe_id",
           "identity_conflict", "merge", "mask"]

# Account ids appear in URLs (/api/accounts/<id>); this is every id the proxy itself generates.
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Set by the user (or found once): adding the same account again keeps them unless it sets them.
USER_FIELDS = ("name", "proxy_url", "source_path")
# The account's own, never replaced by newer data for the same account.
OWN_FIELDS = ("id", "machine_id", "created_at")
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")


def explicit_fields(data: Mapping[str, Any]) -> FrozenSet[str]:
    """The user fields (USER_FIELDS) a pasted token or token file sets itself."""
    found = set()
    if first_text(data, "name"):
        found.add("name")
    if first_text(data, "proxyUrl", "proxy_url"):
        found.add("proxy_url")
    return frozenset(found)


def is_safe_id(value: Any) -> bool:
    return isinstance(value, str) and bool(SAFE_ID.fullmatch(value))


def identity_conflict(current: Credentials, other: Credentials) -> Optional[str]:
    """Why `other` cannot be the same Kiro account as `current`; None when it may be.

    A shared refresh token proves the same sign-in. Otherwise a different sign-in method, provider,
    IdC start URL or profile ARN proves another account; equal values prove nothing (every social
    account shares one profile ARN), so callers that can should confirm further (e.g. by e-mail).
    """
    if current.refresh_token == other.refresh_token:
        return None
    for label, mine, theirs in (
            ("sign-in method", current.auth_method, other.auth_method),
            ("provider", (current.provider or "").lower(), (other.provider or "").lower()),
            ("start URL", (current.start_url or "").rstrip("/#"), (other.start_url or "").rstrip("/#")),
            ("profile ARN", current.profile_arn, other.profile_arn)):
        if mine and theirs and mine != theirs:
            return f"its {label} differs ({mine} vs {theirs})"
    return None


def merge(current: Credentials, new: Credentials, explicit: Iterable[str] = ()) -> Credentials:
    """`current` updated from `new`, the same account added again (a re-scan, a paste, an import).

    The id, machine id and creation time stay. Tokens come from `new` unless it carries the same
    refresh token with an older access token. User fields (USER_FIELDS) stay unless `explicit`
    names them or they are empty. Every other field takes `new`'s value when it has one.
    """
    wanted = set(explicit)
    stale = new.refresh_token == current.refresh_token and new.expires_at < current.expires_at \
        and bool(current.access_token)
    values: Dict[str, Any] = {}
    for item in fields(Credentials):
        key = item.name
        mine, theirs = getattr(current, key), getattr(new, key)
        if key in OWN_FIELDS:
            continue
        if key in USER_FIELDS:
            keep = key not in wanted and bool(mine)
        elif key in TOKEN_FIELDS:
            keep = stale
        else:
            keep = theirs is None or theirs == ""
        values[key] = mine if keep else theirs
    return replace(current, **values)


def mask(value: Optional[str]) -> Optional[str]:
    """A secret reduced to a hint that reveals nothing usable: its first 3 characters and length."""
    if not value:
        return value
    return f"{value[:3]}…({len(value)} chars)"
