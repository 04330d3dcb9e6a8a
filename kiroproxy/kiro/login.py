"""Sign-in calls: AWS OIDC device authorization (Builder ID / Identity Center) and Kiro's social
login (Google / GitHub) with PKCE, as in kiro-upstream.md §10.

One method = one HTTP call; callers decide when to poll. Holds no login state except a cache of
OIDC client registrations. Never logs codes, secrets or tokens.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import quote, urlencode

from .transport import ClientIdentity, Endpoints, Sessions

log = logging.getLogger(__name__)

SCOPES = ("codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations")
BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SOCIAL_REDIRECT_URI = "kiro://kiro.kiroAgent/authenticate-success"
SOCIAL_REGION = "us-east-1"
PROVIDERS = {"google": "Google", "github": "Github"}  # what Kiro's `idp` parameter expects
REGISTRATION_MARGIN_SECONDS = 3600  # re-register this long before a client secret expires

PENDING, SLOW_DOWN, SUCCESS = "pending", "slow_down", "success"

# OAuth error codes (`error`) and AWS exception names (`__type` / x-amzn-ErrorType) mean the same.
_AWS_ERRORS = {"AuthorizationPendingException": "authorization_pending", "SlowDownException": "slow_down",
               "ExpiredTokenException": "expired_token", "AccessDeniedException": "access_denied",
               "InvalidGrantException": "invalid_grant", "InvalidClientException": "invalid_client"}


class LoginError(Exception):
    """A sign-in call failed. `code` is the OAuth error ('' for transport or unexpected HTTP
    failures); `transient` means trying the same call again later may work."""

    def __init__(self, message: str, *, code: str = "", status: int = 0, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.transient = transient


class LoginExpired(LoginError):
    """The device code (or authorization) expired before the user approved it."""


class LoginDenied(LoginError):
    """The user (or the identity provider) refused the sign-in."""


@dataclass(frozen=True)
class Registration:
    """An OIDC public client. `expires_at` is epoch seconds (the client secret's expiry)."""

    client_id: str
    client_secret: str
    expires_at: float
    region: str
    start_url: str


@dataclass(frozen=True)
class DeviceAuthorization:
    """What the user needs (user code, URLs) and the secret device code we poll with. Seconds."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: float
    profile_arn: Optional[str] = None


@dataclass(frozen=True)
class DevicePoll:
    """One token poll: `state` is PENDING, SLOW_DOWN (poll 5 s less often) or SUCCESS (`tokens` set)."""

    state: str
    tokens: Optional[Tokens] = None


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce(nbytes: int = 32) -> Pkce:
    """A fresh verifier (`nbytes` random bytes, base64url unpadded) and its S256 challenge."""
    verifier = _b64url(secrets.token_bytes(max(32, nbytes)))
    return Pkce(verifier, challenge_for(verifier))


def challenge_for(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def social_authorize_url(auth_base: str, provider: str, challenge: str, state: str) -> str:
    """The page the user opens to sign in with Google / GitHub (`provider` as in PROVIDERS' values)."""
    query = urlencode({"idp": provider, "redirect_uri": SOCIAL_REDIRECT_URI, "code_challenge": challenge,
                       "code_challenge_method": "S256", "state": state}, quote_via=quote, safe="")
    return f"{auth_base.rstrip('/')}/login?{query}"


class KiroLogin:
    """The sign-in endpoints. Thread-safe: HTTP sessions are per thread, the cache is locked."""

    def __init__(self, endpoints: Endpoints, sessions: Sessions, identity: ClientIdentity,
                 timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.endpoints = endpoints
        self.sessions = sessions
        self.identity = identity
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._registrations: Dict[Tuple[str, str], Registration] = {}

    def register(self, region: str, start_url: str = BUILDER_ID_START_URL) -> Registration:
        """A client registration for (region, start_url), reused until shortly before it expires."""
        key = (region, start_url)
        with self._lock:
            cached = self._registrations.get(key)
        if cached is not None and cached.expires_at - self.clock() > REGISTRATION_MARGIN_SECONDS:
            return cached
        body = {"clientName": "Kiro IDE", "clientType": "public", "scopes": list(SCOPES),
                "grantTypes": [DEVICE_CODE_GRANT, "refresh_token"], "issuerUrl": start_url}
        data = self._post(self.endpoints.oidc(region) + "/client/register", body, self._oidc_headers())
        client_id, client_secret = data.get("clientId"), data.get("clientSecret")
        if not (isinstance(client_id, str) and isinstance(client_secret, str) and client_id and client_secret):
            raise LoginError("the client registration answer has no clientId / clientSecret", transient=True)
        expires = data.get("clientSecretExpiresAt")
        expires_at = float(expires) if isinstance(expires, (int, float)) else self.clock() + 90 * 86400
        registration = Registration(client_id, client_secret, expires_at, region, start_url)
        with self._lock:
            self._registrations[key] = registration
        log.info("registered an OIDC client for %s (%s)", region, start_url)
        return registration

    def forget(self, registration: Registration) -> None:
        """Drop a cached registration the server no longer accepts (invalid_client)."""
        with self._lock:
            key = (registration.region, registration.start_url)
            if self._registrations.get(key) == registration:
                del self._registrations[key]

    def authorize_device(self, registration: Registration) -> DeviceAuthorization:
        body = {"clientId": registration.client_id, "clientSecret": registration.client_secret,
                "startUrl": registration.start_url}
        data = self._post(self.endpoints.oidc(registration.region) + "/device_authorization", body,
                          self._oidc_headers())
        try:
            uri = str(data["verificationUri"])
            return DeviceAuthorization(
                device_code=str(data["deviceCode"]), user_code=str(data["userCode"]), verification_uri=uri,
                verification_uri_complete=str(data.get("verificationUriComplete") or uri),
                expires_in=float(data.get("expiresIn") or 600), interval=float(_number(data.get("interval"), 5)))
        except (KeyError, TypeError, ValueError):
            raise LoginError("the device authorization answer is incomplete", transient=True) from None

    def poll_device(self, registration: Registration, device_code: str) -> DevicePoll:
        """One POST /token. Raises LoginExpired, LoginDenied or LoginError."""
        body = {"clientId": registration.client_id, "clientSecret": registration.client_secret,
                "grantType": DEVICE_CODE_GRANT, "deviceCode": device_code}
        try:
            data = self._post(self.endpoints.oidc(registration.region) + "/token", body, self._oidc_headers())
        except LoginError as exc:
            if exc.code == "authorization_pending":
                return DevicePoll(PENDING)
            if exc.code == "slow_down":
                return DevicePoll(SLOW_DOWN)
            raise
        return DevicePoll(SUCCESS, _tokens(data))

    def exchange_social(self, code: str, verifier: str, machine_id: str) -> Tokens:
        """POST {auth}/oauth/token with the code the browser came back with and the PKCE verifier."""
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*",
                   "User-Agent": f"KiroIDE-{self.identity.kiro_version}-{machine_id}"}
        body = {"code": code, "code_verifier": verifier, "redirect_uri": SOCIAL_REDIRECT_URI}
        data = self._post(self.endpoints.social_auth(SOCIAL_REGION) + "/oauth/token", body, headers)
        return _tokens(data)

    def social_url(self, provider: str, challenge: str, state: str) -> str:
        return social_authorize_url(self.endpoints.social_auth(SOCIAL_REGION), provider, challenge, state)

    def _oidc_headers(self) -> Dict[str, str]:
        return {"Content-Type": "application/json", "x-amz-user-agent": "aws-sdk-js/3.980.0 KiroIDE",
                "user-agent": f"aws-sdk-js/3.980.0 ua/2.1 os/{self.identity.os_version} lang/js "
                              f"md/nodejs#{self.identity.node_version} api/sso-oidc#3.980.0 m/E KiroIDE"}

    def _post(self, url: str, body: Dict[str, Any], headers: Dict[str, str]) -> Dict[str, Any]:
        import requests  # loaded by the first upstream call, not at start-up

        try:
            response = self.sessions.get().post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise LoginError(f"sign-in call failed: {type(exc).__name__}", transient=True) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict):
            return data
        raise _failure(response.status_code, data if isinstance(data, dict) else {},
                       response.headers.get("x-amzn-ErrorType", ""))


def _tokens(data: Dict[str, Any]) -> Tokens:
    access = data.get("accessToken") or data.get("access_token")
    refresh = data.get("refreshToken") or data.get("refresh_token")
    if not (isinstance(access, str) and isinstance(refresh, str) and access and refresh):
        raise LoginError("the token answer has no access or refresh token")
    expires_in = data.get("expiresIn") or data.get("expires_in") or 3600
    profile = data.get("profileArn")
    return Tokens(access, refresh, float(expires_in), profile if isinstance(profile, str) and profile else None)


def _number(value: Any, default: float) -> float:
    """A numeric field, `default` when absent (0 is a value: poll without waiting)."""
    return default if value is None or value == "" else float(value)


def _failure(status: int, data: Dict[str, Any], error_type: str) -> LoginError:
    """A typed error from an OAuth / AWS error answer; the message never echoes the request."""
    code = data.get("error") if isinstance(data.get("error"), str) else ""
    if not code:
        aws_type = str(data.get("__type") or error_type).split("#")[-1].split(":")[0]
        code = _AWS_ERRORS.get(aws_type, "")
    if code in ("expired_token", "invalid_grant"):
        return LoginExpired("the sign-in expired; start again", code=code, status=status)
    if code == "access_denied":
        return LoginDenied("the sign-in was denied", code=code, status=status)
    if code:
        return LoginError(f"sign-in failed: {code} (HTTP {status})", code=code, status=status)
    return LoginError(f"sign-in failed (HTTP {status})", status=status, transient=status == 429 or status >= 500)
