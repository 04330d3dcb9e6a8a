"""Kiro credentials: parsing Kiro's token files, expiry, machine ids, redaction.

Pure: no file or network I/O (callers read files and pass their JSON in).
"""
from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional

from ..errors import BadRequest

SOCIAL = "social"
IDC = "idc"
EXTERNAL_IDP = "external_idp"
AUTH_METHODS = (SOCIAL, IDC, EXTERNAL_IDP)
SECRET_FIELDS = ("access_token", "refresh_token", "client_secret")
DEFAULT_SOCIAL_PROFILE = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"


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
        """Everything except secrets, for listings."""
        data = asdict(self)
        for key in SECRET_FIELDS:
            data.pop(key, None)
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
    """Epoch seconds from ISO-8601 (with Z or offset, up to 9 fractional digits) or a number."""
    if value in (None, ""):
        return 0.0
    if isinstance(value, (int, float)):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    text = str(value).strip()
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
    return stamp.timestamp()


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
    expires_in = merged.get("expiresIn") or merged.get("expires_in")
    if merged.get("expiresAt") or merged.get("expires_at"):
        expires_at = parse_time(merged.get("expiresAt") or merged.get("expires_at"))
    elif expires_in:
        try:
            expires_at = (time.time() if now is None else now) + float(expires_in) - 60
        except (TypeError, ValueError):
            raise BadRequest(f"expiresIn must be a number of seconds, got {expires_in!r}") from None
    else:
        expires_at = 0.0
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
        proxy_url=_text(merged, "proxyUrl", "proxy_url"),
    )


def mask(value: Optional[str]) -> Optional[str]:
    """A secret reduced to a hint that reveals nothing usable: its first 3 characters and length."""
    if not value:
        return value
    return f"{value[:3]}…({len(value)} chars)"
