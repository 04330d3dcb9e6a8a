"""Token refresh against Kiro's social auth service, AWS OIDC and external IdPs.

Network calls only; no pool state. Raises RefreshError telling permanent from transient failures.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .credentials import EXTERNAL_IDP, IDC, Credentials
from .transport import ClientIdentity, Endpoints, Sessions

log = logging.getLogger(__name__)

EXPIRY_SAFETY_SECONDS = 60


class RefreshError(Exception):
    """Refreshing failed. `permanent` means the refresh token is dead (re-login needed)."""

    def __init__(self, message: str, *, permanent: bool, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True)
class TokenUpdate:
    access_token: str
    refresh_token: Optional[str]
    expires_at: float
    profile_arn: Optional[str] = None


class Authenticator:
    def __init__(self, endpoints: Endpoints, sessions: Sessions, identity: ClientIdentity,
                 timeout: float = 30.0, clock=time.time) -> None:
        self.endpoints = endpoints
        self.sessions = sessions
        self.identity = identity
        self.timeout = timeout
        self.clock = clock

    def refresh(self, creds: Credentials) -> TokenUpdate:
        if creds.auth_method == IDC:
            url = self.endpoints.oidc(creds.region) + "/token"
            body: Any = {"clientId": creds.client_id, "clientSecret": creds.client_secret,
                         "grantType": "refresh_token", "refreshToken": creds.refresh_token}
            return self._call(creds, url, json_body=body)
        if creds.auth_method == EXTERNAL_IDP and creds.token_endpoint:
            form = {"grant_type": "refresh_token", "client_id": creds.client_id or "",
                    "refresh_token": creds.refresh_token}
            if creds.scopes:
                form["scope"] = creds.scopes
            return self._call(creds, creds.token_endpoint, form_body=form)
        url = self.endpoints.social_auth(creds.region) + "/refreshToken"
        return self._call(creds, url, json_body={"refreshToken": creds.refresh_token})

    def _call(self, creds: Credentials, url: str, *, json_body: Optional[Dict[str, Any]] = None,
              form_body: Optional[Dict[str, str]] = None) -> TokenUpdate:
        import requests  # loaded by the first upstream call, not at start-up

        headers = self.identity.auth_headers(creds)
        if form_body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        session = self.sessions.for_account(creds)
        for attempt in (1, 2):
            try:
                response = session.post(url, json=json_body, data=form_body, headers=headers, timeout=self.timeout)
                break
            except requests.ConnectionError as exc:
                # A pooled connection the server had just closed: the request never arrived.
                if attempt == 1 and "RemoteDisconnected" in repr(exc):
                    continue
                raise RefreshError(f"token refresh failed: {type(exc).__name__}", permanent=False) from None
            except requests.RequestException as exc:
                raise RefreshError(f"token refresh failed: {type(exc).__name__}", permanent=False) from None
        if response.status_code != 200:
            raise classify_refresh_failure(response.status_code, response.text)
        try:
            data = response.json()
        except ValueError:
            raise RefreshError("token refresh answered invalid JSON", permanent=False,
                               status=response.status_code) from None
        return parse_token_response(data, self.clock())


def parse_token_response(data: Dict[str, Any], now: float) -> TokenUpdate:
    access = data.get("accessToken") or data.get("access_token")
    if not access:
        raise RefreshError("token refresh answer has no access token", permanent=False)
    expires_in = data.get("expiresIn") or data.get("expires_in") or 3600
    return TokenUpdate(
        access_token=access,
        refresh_token=data.get("refreshToken") or data.get("refresh_token"),
        expires_at=now + float(expires_in) - EXPIRY_SAFETY_SECONDS,
        profile_arn=data.get("profileArn"),
    )


def classify_refresh_failure(status: int, text: str) -> RefreshError:
    lowered = (text or "").lower()
    permanent_markers = ("invalid_grant", "bad credentials", "invalid_client", "unauthorized_client",
                         "revoked", "expired refresh", "invalidgrantexception")
    if status in (400, 401, 403) and any(m in lowered for m in permanent_markers):
        return RefreshError(f"refresh token rejected (HTTP {status}); sign in again", permanent=True,
                            status=status)
    if status == 401:
        return RefreshError("refresh token rejected (HTTP 401); sign in again", permanent=True, status=status)
    return RefreshError(f"token refresh failed (HTTP {status})", permanent=status in (400, 403),
                        status=status)
