"""Kiro credentials: parsing Kiro's token files, expiry, machine ids, identity, merging, redaction.

Pure: no file or network I/O (callers read files and pass their JSON in).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from ..errors import BadRequest

SOCIAL = "social"
IDC = "idc"
EXTERNAL_IDP = "external_idp"
AUTH_METHODS = (SOCIAL, IDC, EXTERNAL_IDP)
SECRET_FIELDS = ("access_token", "refresh_token", "client_secret")
DEFAULT_SOCIAL_PROFILE = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
# Account ids appear in URLs (/api/accounts/<id>); this is every id the proxy itself generates.
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
# Set by the user (or found once): adding the same account again keeps them unless it sets them.
USER_FIELDS = ("name", "proxy_url", "source_path")
# The account's own, never replaced by newer data for the same account.
OWN_FIELDS = ("id", "machine_id", "created_at")
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")
LATEST_TIME = 4_102_444_800.0  # 2100-01-01: anything later is a broken value, not an expiry
LONGEST_LIFETIME = 10 * 366 * 86400.0


@dataclass(frozen=True)
class Credentials:
    """One Kiro account's identity and tokens. `expires_at` is epoch seconds (0: unknown)."""

    id: str
    access_token: str
    refresh_token: str
    auth_method: str = SOCIAL
    expires_at: float = 0.0
    name: str = ""
    provider: str = ""
    region: str = "us-east-1"
    profile_arn: Optional[str] = None
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    client_id_hash: Optional[str] = None
    client_secret_expires_at: Optional[float] = None
    token_endpoint: Optional[str] = None
    scopes: Optional[str] = None
    start_url: Optional[str] = None
    machine_id: str = ""
    source_path: Optional[str] = None
    proxy_url: Optional[str] = None
    created_at: float = field(default_factory=time.time)

    @property
    def api_region(self) -> str:
        """The region of the Kiro service: the 4th field of the profile ARN, else us-east-1."""
        if self.profile_arn and self.profile_arn.count(":") >= 4:
            region = self.profile_arn.split(":")[3]
            if region:
                return region
        return "us-east-1"

    def expires_within(self, seconds: float, now: Optional[float] = None) -> bool:
        if not self.expires_at:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def public(self) -> Dict[str, Any]:
        """Everything except secrets, for listings (a proxy URL's password is masked)."""
        data = asdict(self)
        for key in SECRET_FIELDS:
            data.pop(key, None)
        data["proxy_url"] = mask_proxy_url(self.proxy_url)
        return data

    def to_record(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Credentials:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_tokens(self, access_token: str, refresh_token: Optional[str], expires_at: float,
                    profile_arn: Optional[str] = None) -> Credentials:
        return replace(self, access_token=access_token, refresh_token=refresh_token or self.refresh_token,
                       expires_at=expires_at, profile_arn=profile_arn or self.profile_arn)


def parse_time(value: Any) -> float:
    """Epoch seconds from ISO-8601 (with Z or offset, up to 9 fractional digits) or a number.

    0.0 for nothing; BadRequest for anything else that is not a time between 1970 and 2100."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"expiresAt is not a time: {value!r}")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise BadRequest("expiresAt is not a plausible time") from None
        return _plausible(number / (1000.0 if number > 1e11 else 1.0), value)
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:  # datetime.fromisoformat on 3.9 takes at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, rest))  # the offset's digits are not fraction
        tail = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"expiresAt is not an ISO-8601 time: {value!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return _plausible(stamp.timestamp(), value)


def _plausible(stamp: float, value: Any) -> float:
    if not math.isfinite(stamp) or not 0 <= stamp <= LATEST_TIME:
        raise BadRequest(f"expiresAt is not a plausible time: {str(value)[:40]!r}")
    return stamp


def _seconds(value: Any) -> float:
    """expiresIn as seconds; BadRequest unless a finite number from 0 to ten years."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"expiresIn must be a number of seconds, got {str(value)[:40]!r}", param="expiresIn")
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        raise BadRequest(f"expiresIn must be a number of seconds, got {str(value)[:40]!r}", param="expiresIn") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= LONGEST_LIFETIME:
        raise BadRequest(f"expiresIn must be between 0 and ten years of seconds, got {str(value)[:40]!r}",
                         param="expiresIn")
    return seconds


def machine_id_for(seed: str) -> str:
    """64 lowercase hex, stable for a seed (the account's first refresh token or client id)."""
    return hashlib.sha256(("KotlinNativeAPI/" + seed).encode("utf-8")).hexdigest()


def auth_method_of(data: Mapping[str, Any]) -> str:
    method = str(data.get("authMethod") or data.get("auth_method") or "").strip().lower()
    if method in ("idc", "builderid", "builder_id", "iam_identity_center", "enterprise"):
        return IDC
    if method in ("external_idp", "externalidp", "external-idp"):
        return EXTERNAL_IDP
    if method == SOCIAL:
        return SOCIAL
    if data.get("clientId") and data.get("clientSecret"):
        return IDC
    return SOCIAL


def _text(data: Mapping[str, Any], *names: str) -> Optional[str]:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _scopes(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    raise BadRequest("scopes must be a string or a list of strings", param="scopes")


def from_token_file(data: Mapping[str, Any], *, registration: Optional[Mapping[str, Any]] = None,
                    account_id: Optional[str] = None, name: str = "", source_path: Optional[str] = None,
                    now: Optional[float] = None) -> Credentials:
    """Credentials from a Kiro token file (camelCase, as Kiro writes it) or a pasted token.

    `registration` is the IdC client registration file (clientId/clientSecret) matched by
    clientIdHash. Raises BadRequest saying what is missing or wrong.
    """
    if not isinstance(data, Mapping):
        raise BadRequest("the account must be a JSON object (a Kiro token file)")
    # The registration's expiresAt is the client secret's expiry, never the access token's.
    merged: Dict[str, Any] = {k: v for k, v in (registration or {}).items() if k != "expiresAt"}
    merged.update({k: v for k, v in data.items() if v not in (None, "")})
    refresh = _text(merged, "refreshToken", "refresh_token")
    access = _text(merged, "accessToken", "access_token") or ""
    if not refresh:
        raise BadRequest("refreshToken is required", param="refreshToken")
    if len(refresh) < 100 or refresh.endswith("..."):
        raise BadRequest("refreshToken looks truncated (shorter than 100 characters or ending in '...'); "
                         "copy the whole token file", param="refreshToken")
    method = auth_method_of(merged)
    client_id = _text(merged, "clientId", "client_id")
    client_secret = _text(merged, "clientSecret", "client_secret")
    if method == IDC and not (client_id and client_secret):
        raise BadRequest("an IdC (Builder ID / Identity Center) account needs clientId and clientSecret "
                         "(from the client registration file next to the token file)", param="clientId")
    expires_at = parse_time(_first(merged, "expiresAt", "expires_at"))
    expires_in = _first(merged, "expiresIn", "expires_in")
    lifetime = _seconds(expires_in) if expires_in is not None else 0.0
    if not expires_at and lifetime:
        expires_at = (time.time() if now is None else now) + lifetime - 60
    provider = _text(merged, "provider") or ("BuilderId" if method == IDC else "")
    profile = _text(merged, "profileArn", "profile_arn")
    return Credentials(
        id=account_id or uuid.uuid4().hex[:12],
        access_token=access,
        refresh_token=refresh,
        auth_method=method,
        expires_at=expires_at,
        name=name or _text(merged, "name", "email") or provider or method,
        provider=provider,
        region=_text(merged, "region") or "us-east-1",
        profile_arn=profile,
        client_id=client_id,
        client_secret=client_secret,
        client_id_hash=_text(merged, "clientIdHash"),
        client_secret_expires_at=parse_time(registration.get("expiresAt")) if registration else None,
        token_endpoint=_text(merged, "tokenEndpoint"),
        scopes=_scopes(merged.get("scopes")),
        start_url=_text(merged, "startUrl", "start_url"),
        machine_id=_text(merged, "machineId") or machine_id_for(client_id or refresh),
        source_path=source_path,
        proxy_url=proxy_url_of(_first(merged, "proxyUrl", "proxy_url")),
    )


def _first(data: Mapping[str, Any], *names: str) -> Any:
    return next((data[name] for name in names if data.get(name) is not None), None)


def explicit_fields(data: Mapping[str, Any]) -> FrozenSet[str]:
    """The user fields (USER_FIELDS) a pasted token or token file sets itself."""
    found = set()
    if _text(data, "name"):
        found.add("name")
    if _text(data, "proxyUrl", "proxy_url"):
        found.add("proxy_url")
    return frozenset(found)


def proxy_url_of(value: Any, param: str = "proxyUrl") -> Optional[str]:
    """A checked outbound proxy URL (http, https, socks5), or None for none; BadRequest otherwise."""
    if value is None or value == "":
        return None
    problem = f"{param} must be a proxy URL such as http://host:3128 (or null for none)"
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 32 for c in value.strip()):
        raise BadRequest(problem, param=param)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise BadRequest(problem, param=param) from None
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname or parts.query or parts.fragment \
            or parts.path not in ("", "/"):
        raise BadRequest(problem, param=param)
    return value.strip()


def mask_proxy_url(url: Optional[str]) -> Optional[str]:
    """A proxy URL with its credentials masked: http://user:***@host:3128 (the user name stays)."""
    if not url or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user + ':***' if colon else '***'}@{host}"


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
