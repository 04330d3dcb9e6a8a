"""Kiro's credentials: the token file format, expiry, machine ids and outbound proxy URLs.

Pure: no file or network I/O (callers read files and pass their JSON in). The account store
keeps these records; this module knows nothing about it.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

from ..errors import BadRequest

SOCIAL = "social"
IDC = "idc"
EXTERNAL_IDP = "external_idp"
AUTH_METHODS = (SOCIAL, IDC, EXTERNAL_IDP)
SECRET_FIELDS = ("access_token", "refresh_token", "client_secret")
DEFAULT_SOCIAL_PROFILE = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
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


def first_text(data: Mapping[str, Any], *names: str) -> Optional[str]:
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
    refresh = first_text(merged, "refreshToken", "refresh_token")
    access = first_text(merged, "accessToken", "access_token") or ""
    if not refresh:
        raise BadRequest("refreshToken is required", param="refreshToken")
    if len(refresh) < 100 or refresh.endswith("..."):
        raise BadRequest("refreshToken looks truncated (shorter than 100 characters or ending in '...'); "
                         "copy the whole token file", param="refreshToken")
    method = auth_method_of(merged)
    client_id = first_text(merged, "clientId", "client_id")
    client_secret = first_text(merged, "clientSecret", "client_secret")
    if method == IDC and not (client_id and client_secret):
        raise BadRequest("an IdC (Builder ID / Identity Center) account needs clientId and clientSecret "
                         "(from the client registration file next to the token file)", param="clientId")
    expires_at = parse_time(_first(merged, "expiresAt", "expires_at"))
    expires_in = _first(merged, "expiresIn", "expires_in")
    lifetime = _seconds(expires_in) if expires_in is not None else 0.0
    if not expires_at and lifetime:
        expires_at = (time.time() if now is None else now) + lifetime - 60
    provider = first_text(merged, "provider") or ("BuilderId" if method == IDC else "")
    profile = first_text(merged, "profileArn", "profile_arn")
    return Credentials(
        id=account_id or uuid.uuid4().hex[:12],
        access_token=access,
        refresh_token=refresh,
        auth_method=method,
        expires_at=expires_at,
        name=name or first_text(merged, "name", "email") or provider or method,
        provider=provider,
        region=first_text(merged, "region") or "us-east-1",
        profile_arn=profile,
        client_id=client_id,
        client_secret=client_secret,
        client_id_hash=first_text(merged, "clientIdHash"),
        client_secret_expires_at=parse_time(registration.get("expiresAt")) if registration else None,
        token_endpoint=first_text(merged, "tokenEndpoint"),
        scopes=_scopes(merged.get("scopes")),
        start_url=first_text(merged, "startUrl", "start_url"),
        machine_id=first_text(merged, "machineId") or machine_id_for(client_id or refresh),
        source_path=source_path,
        proxy_url=proxy_url_of(_first(merged, "proxyUrl", "proxy_url")),
    )


def _first(data: Mapping[str, Any], *names: str) -> Any:
    return next((data[name] for name in names if data.get(name) is not None), None)


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
