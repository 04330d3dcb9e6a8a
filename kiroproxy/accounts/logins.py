"""Sign-ins in progress: device logins (Builder ID / Identity Center) and social logins (Google /
GitHub), each a session with a random id that expires; a finished one adds its account to the pool.

Thread-safe; the lock is held to decide, never across the network or the pool. The client's polls
drive device logins, but the token endpoint is never called more often than the server allows.
Device codes, PKCE verifiers, client secrets and tokens stay here: no result or log carries them.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Union
from urllib.parse import parse_qs, urlsplit

from ..errors import BadRequest, NotFound, ProxyError, RateLimited, UpstreamError
from ..kiro.login import (
    BUILDER_ID_START_URL,
    PENDING,
    PROVIDERS,
    SLOW_DOWN,
    SOCIAL_REGION,
    DeviceAuthorization,
    KiroLogin,
    LoginDenied,
    LoginError,
    LoginExpired,
    Registration,
    Tokens,
    new_pkce,
)
from .credentials import Credentials, from_token_file
from .pool import AccountPool

log = logging.getLogger(__name__)

SUCCESS, EXPIRED, DENIED, CANCELLED, FAILED = "success", "expired", "denied", "cancelled", "error"
SLOW_DOWN_STEP = 5.0       # seconds added to the poll interval on each slow_down (RFC 8628)
RESULT_SECONDS = 300.0     # how long a finished login still answers its polls
MIN_RETRY_AFTER = 0.1
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
START_URL = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?(/[^\s?#]*)?")


@dataclass(frozen=True)
class DeviceStart:
    """What the user needs to approve a device login. Seconds; `expires_at` is epoch seconds."""

    id: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    expires_at: float
    interval: float


@dataclass(frozen=True)
class SocialStart:
    id: str
    provider: str
    url: str
    expires_in: float
    expires_at: float


@dataclass(frozen=True)
class PollResult:
    """A login's state: PENDING (poll again after `retry_after` seconds), SUCCESS (`account_id`),
    EXPIRED, DENIED, CANCELLED or FAILED (`message`)."""

    id: str
    status: str
    account_id: Optional[str] = None
    retry_after: Optional[float] = None
    message: str = ""


@dataclass(frozen=True)
class _Device:
    id: str
    registration: Registration
    authorization: DeviceAuthorization
    expires_at: float
    interval: float
    next_poll_at: float
    polling: bool = False
    machine_id: str = ""


@dataclass(frozen=True)
class _Social:
    id: str
    provider: str
    state: str
    verifier: str
    expires_at: float
    machine_id: str


_Session = Union[_Device, _Social]


class Logins:
    def __init__(self, login: KiroLogin, pool: AccountPool, *, default_region: str = "us-east-1",
                 max_sessions: int = 20, social_seconds: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.login = login
        self.pool = pool
        self.default_region = default_region
        self.max_sessions = max_sessions
        self.social_seconds = social_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: Dict[str, _Session] = {}
        self._results: Dict[str, tuple] = {}  # id -> (PollResult, forget_at)

    # ----- device login ------------------------------------------------------------------

    def start_device(self, region: Optional[str] = None, start_url: Optional[str] = None) -> DeviceStart:
        """Register (or reuse) an OIDC client and start a device authorization.

        Raises BadRequest (region, start URL), RateLimited when too many logins are pending,
        UpstreamError when AWS fails."""
        region = region or self.default_region
        start_url = start_url or BUILDER_ID_START_URL
        # Both end up in upstream URLs and bodies: accept only what AWS could mean.
        if not REGION.fullmatch(region):
            raise BadRequest(f"region must look like us-east-1, got {region!r}", param="region")
        if not START_URL.fullmatch(start_url):
            raise BadRequest("start_url must be your Identity Center start URL (https://...)", param="start_url")
        self._check_room()
        try:
            registration = self.login.register(region, start_url)
            try:
                authorization = self.login.authorize_device(registration)
            except LoginError as exc:
                if exc.code != "invalid_client":
                    raise
                self.login.forget(registration)  # revoked or expired early: register once more
                registration = self.login.register(region, start_url)
                authorization = self.login.authorize_device(registration)
        except LoginError as exc:
            raise UpstreamError(f"could not start the device login: {exc.message}") from None
        now = self.clock()
        session = _Device(id=_new_id(), registration=registration, authorization=authorization,
                          expires_at=now + authorization.expires_in, interval=authorization.interval,
                          next_poll_at=now + authorization.interval, machine_id=secrets.token_hex(32))
        self._insert(session)
        log.info("device login %s started (region %s)", session.id, region)
        return DeviceStart(session.id, authorization.user_code, authorization.verification_uri,
                           authorization.verification_uri_complete, authorization.expires_in,
                           session.expires_at, authorization.interval)

    def poll(self, login_id: str) -> PollResult:
        """The login's state; calls the token endpoint only when the interval has passed.

        Raises NotFound for unknown ids (and for results older than RESULT_SECONDS)."""
        now = self.clock()
        with self._lock:
            self._sweep(now)
            session = self._sessions.get(login_id)
            if session is None:
                return self._result(login_id)
            if not isinstance(session, _Device):
                return PollResult(login_id, PENDING, retry_after=max(MIN_RETRY_AFTER, session.expires_at - now),
                                  message="waiting for the redirect URL (POST /api/kiro/social/exchange)")
            if session.polling or now < session.next_poll_at:
                return PollResult(login_id, PENDING, retry_after=max(MIN_RETRY_AFTER, session.next_poll_at - now))
            self._sessions[login_id] = replace(session, polling=True)
        try:
            answer = self.login.poll_device(session.registration, session.authorization.device_code)
        except LoginError as exc:
            return self._device_failed(session, exc)
        if answer.state in (PENDING, SLOW_DOWN):
            return self._device_waiting(session, answer.state == SLOW_DOWN)
        assert answer.tokens is not None
        with self._lock:
            if session.id not in self._sessions:  # cancelled while we were asking: keep it cancelled
                return self._result(session.id)
        return self._finish(session.id, lambda: self._device_account(session, answer.tokens))

    def _device_waiting(self, session: _Device, slow_down: bool) -> PollResult:
        now = self.clock()
        interval = session.interval + (SLOW_DOWN_STEP if slow_down else 0.0)
        with self._lock:
            if session.id not in self._sessions:  # cancelled while we were asking
                return self._result(session.id)
            self._sessions[session.id] = replace(session, interval=interval, next_poll_at=now + interval,
                                                 polling=False)
        if slow_down:
            log.info("device login %s: asked to slow down, polling every %.0f s", session.id, interval)
        return PollResult(session.id, PENDING, retry_after=max(MIN_RETRY_AFTER, interval))

    def _device_failed(self, session: _Device, exc: LoginError) -> PollResult:
        if exc.transient:
            # A hiccup (5xx, network): keep the login and try again after the interval.
            log.warning("device login %s: poll failed (%s); will retry", session.id, exc.message)
            return self._device_waiting(session, False)
        status = EXPIRED if isinstance(exc, LoginExpired) else DENIED if isinstance(exc, LoginDenied) else FAILED
        log.info("device login %s ended: %s", session.id, status)
        return self._end(session.id, status, exc.message)

    def _device_account(self, session: _Device, tokens: Tokens) -> Credentials:
        registration = session.registration
        enterprise = registration.start_url != BUILDER_ID_START_URL
        data = {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token,
                "expiresIn": tokens.expires_in, "authMethod": "IdC",
                "provider": "Enterprise" if enterprise else "BuilderId", "region": registration.region,
                "clientId": registration.client_id, "clientSecret": registration.client_secret,
                "machineId": session.machine_id}
        if enterprise:
            data["startUrl"] = registration.start_url
        return from_token_file(data, registration={"expiresAt": registration.expires_at}, now=self.clock())

    # ----- social login ------------------------------------------------------------------

    def start_social(self, provider: str) -> SocialStart:
        """A PKCE sign-in with Google or GitHub; the user opens `url` in any browser. Raises BadRequest."""
        idp = PROVIDERS.get(str(provider or "").strip().lower())
        if idp is None:
            raise BadRequest("provider must be 'google' or 'github'", param="provider")
        self._check_room()
        pkce = new_pkce()
        now = self.clock()
        session = _Social(id=_new_id(), provider=idp, state=secrets.token_urlsafe(24), verifier=pkce.verifier,
                          expires_at=now + self.social_seconds, machine_id=secrets.token_hex(32))
        self._insert(session)
        log.info("social login %s started (%s)", session.id, idp)
        return SocialStart(session.id, idp, self.login.social_url(idp, pkce.challenge, session.state),
                           self.social_seconds, session.expires_at)

    def exchange(self, pasted: str, *, state: Optional[str] = None, login_id: Optional[str] = None) -> PollResult:
        """Finish a social login from what the user copied back: the redirect URL, its query, or the
        bare code (then `state` or `login_id` names the login). Raises BadRequest (unknown or wrong
        state, denied, bad code) or UpstreamError; on success the account is in the pool."""
        code, pasted_state, error = parse_redirect(pasted)
        if error:
            self._drop_social(pasted_state or state, login_id)
            raise BadRequest(f"the sign-in was not completed: {error}")
        if not code:
            raise BadRequest("paste the URL your browser ended on (kiro://...?code=...&state=...) or the code",
                             param="url")
        if pasted_state and state and pasted_state != state:
            raise BadRequest("the state in the URL does not match the given state", param="state")
        session = self._take_social(pasted_state or state, login_id)
        try:
            tokens = self.login.exchange_social(code, session.verifier, session.machine_id)
        except LoginError as exc:
            if exc.transient and session.expires_at > self.clock():
                self._insert(session, check_room=False)  # let the user paste again
                raise UpstreamError(f"the code exchange failed: {exc.message}; try again") from None
            log.info("social login %s failed: %s", session.id, exc.message)
            self._end(session.id, FAILED, exc.message)
            raise BadRequest(f"the code was not accepted ({exc.code or exc.status}); sign in again") from None
        result = self._finish(session.id, lambda: self._social_account(session, tokens))
        if result.status != SUCCESS:
            raise BadRequest(f"the new account was not added: {result.message}")
        return result

    def _take_social(self, state: Optional[str], login_id: Optional[str]) -> _Social:
        """Remove and return the social login named by state (checked against login_id) or login_id."""
        now = self.clock()
        with self._lock:
            self._sweep(now)
            if state:
                found = next((s for s in self._sessions.values()
                              if isinstance(s, _Social) and secrets.compare_digest(s.state, state)), None)
                if found is None or (login_id and found.id != login_id):
                    raise BadRequest("the state does not match a sign-in in progress (it expired, was used "
                                     "already, or belongs to another sign-in); start again", param="state")
            else:
                found = self._sessions.get(login_id or "")
                if not isinstance(found, _Social):
                    raise BadRequest("give the state (or the login id) with a bare code", param="state")
            del self._sessions[found.id]
            return found

    def _drop_social(self, state: Optional[str], login_id: Optional[str]) -> None:
        try:
            session = self._take_social(state, login_id)
        except BadRequest:
            return
        self._end(session.id, DENIED, "the sign-in was not completed")

    def _social_account(self, session: _Social, tokens: Tokens) -> Credentials:
        data = {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token,
                "expiresIn": tokens.expires_in, "authMethod": "social", "provider": session.provider,
                "profileArn": tokens.profile_arn, "region": SOCIAL_REGION, "machineId": session.machine_id}
        return from_token_file(data, now=self.clock())

    # ----- shared --------------------------------------------------------------------------

    def cancel(self, login_id: str) -> PollResult:
        """Stop a login. Raises NotFound for unknown ids; a finished login keeps its result."""
        with self._lock:
            self._sweep(self.clock())
            if self._sessions.pop(login_id, None) is None:
                return self._result(login_id)
        log.info("login %s cancelled", login_id)
        return self._end(login_id, CANCELLED, "the sign-in was cancelled")

    def describe(self, account_id: str) -> Dict[str, object]:
        """The pool's summary of an account a login added (no token values)."""
        return self.pool.summary(account_id)

    def newest(self, device_only: bool = False) -> Optional[str]:
        """The id of the newest login still in progress (a device login with `device_only`), else of
        the newest finished one still remembered; None when there is neither. Scripts written for
        the seed API poll and cancel without an id."""
        with self._lock:
            self._sweep(self.clock())
            waiting = [i for i, s in self._sessions.items() if not device_only or isinstance(s, _Device)]
            if waiting:
                return waiting[-1]
            return next(reversed(list(self._results)), None)

    def pending(self) -> int:
        with self._lock:
            self._sweep(self.clock())
            return len(self._sessions)

    def _finish(self, login_id: str, build: Callable[[], Credentials]) -> PollResult:
        try:
            creds = self.pool.add(build())
        except ProxyError as exc:
            log.warning("login %s: the new account was not added: %s", login_id, exc.message)
            return self._end(login_id, FAILED, exc.message)
        with self._lock:
            self._sessions.pop(login_id, None)
            result = PollResult(login_id, SUCCESS, account_id=creds.id)
            self._results[login_id] = (result, self.clock() + RESULT_SECONDS)
        log.info("login %s succeeded: account %s", login_id, creds.id)
        return result

    def _end(self, login_id: str, status: str, message: str) -> PollResult:
        result = PollResult(login_id, status, message=message)
        with self._lock:
            self._sessions.pop(login_id, None)
            self._results[login_id] = (result, self.clock() + RESULT_SECONDS)
        return result

    def _check_room(self) -> None:
        with self._lock:
            self._sweep(self.clock())
            if len(self._sessions) >= self.max_sessions:
                raise RateLimited(f"{self.max_sessions} sign-ins are already in progress; finish or cancel "
                                  "one, or wait until they expire", retry_after=30.0)

    def _insert(self, session: _Session, check_room: bool = True) -> None:
        with self._lock:
            if check_room and len(self._sessions) >= self.max_sessions:
                raise RateLimited(f"{self.max_sessions} sign-ins are already in progress", retry_after=30.0)
            self._sessions[session.id] = session

    def _result(self, login_id: str) -> PollResult:
        """A finished login's result. Caller holds the lock."""
        entry = self._results.get(login_id)
        if entry is None:
            raise NotFound(f"no sign-in with id '{login_id}' (finished long ago, or never started)")
        return entry[0]

    def _sweep(self, now: float) -> None:
        """Expire overdue logins (their secrets go with them) and forget old results. Caller holds the lock."""
        for login_id, session in list(self._sessions.items()):
            if session.expires_at <= now and not (isinstance(session, _Device) and session.polling):
                del self._sessions[login_id]
                self._results[login_id] = (PollResult(login_id, EXPIRED, message="the sign-in expired; start again"),
                                           now + RESULT_SECONDS)
                log.info("login %s expired", login_id)
        for login_id, (_, forget_at) in list(self._results.items()):
            if forget_at <= now:
                del self._results[login_id]


def follow(poll: Callable[[], PollResult], wait: Callable[[float], object],
           default_wait: float = 5.0) -> PollResult:
    """Poll a device login until it is no longer pending, calling wait(seconds) between polls as
    the answers say. For the command line; KeyboardInterrupt from wait() propagates."""
    while True:
        result = poll()
        if result.status != PENDING:
            return result
        wait(result.retry_after if result.retry_after is not None else default_wait)


def parse_redirect(pasted: str) -> tuple:
    """(code, state, error) from a pasted redirect URL, its query string, or a bare code."""
    text = (pasted or "").strip()
    if not text:
        return "", "", ""
    if "=" not in text:
        return text, "", ""
    query = urlsplit(text).query if "?" in text else text
    params = {k: v[0] for k, v in parse_qs(query.split("#", 1)[0]).items() if v}
    return params.get("code", ""), params.get("state", ""), params.get("error", "")


def _new_id() -> str:
    return secrets.token_urlsafe(12)
