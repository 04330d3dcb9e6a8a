"""Tests for accounts.logins: the sign-in registry (expiry, poll gating with slow_down, cap,
cleanup, cancel, social state checks) with a stub upstream and a fake clock."""
from __future__ import annotations

import threading
from collections import deque
from typing import Deque, List, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from kiroproxy.accounts.credentials import IDC, SOCIAL
from kiroproxy.accounts.logins import (
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    PENDING,
    RESULT_SECONDS,
    SUCCESS,
    Logins,
    PollResult,
    follow,
    parse_redirect,
)
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.errors import BadRequest, NotFound, RateLimited, UpstreamError
from kiroproxy.kiro.login import (
    DeviceAuthorization,
    DevicePoll,
    LoginDenied,
    LoginError,
    LoginExpired,
    Registration,
    Tokens,
    challenge_for,
    social_authorize_url,
)
from tests.factories import refresh_token

T0 = 1_700_000_000.0
BUILDER_ID = "https://view.awsapps.com/start"
ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"

Answer = Union[DevicePoll, LoginError]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def tokens(tag: str, **kw) -> Tokens:
    return Tokens(access_token=f"access-{tag}", refresh_token=kw.pop("refresh", refresh_token(tag)),
                  expires_in=3600, **kw)


class StubLogin:
    """Stands in for kiro.login.KiroLogin: records calls, answers scripted polls."""

    def __init__(self, interval: float = 5, expires_in: float = 600) -> None:
        self.interval = interval
        self.expires_in = expires_in
        self.registered: List[Tuple[str, str]] = []
        self.polls: List[str] = []
        self.answers: Deque[Answer] = deque()
        self.authorize_failures: Deque[LoginError] = deque()
        self.social_urls: List[str] = []
        self.exchanges: List[Tuple[str, str]] = []
        self.exchange_answer: Union[Tokens, LoginError] = tokens("social", profile_arn=ARN)
        self.gate: Optional[threading.Event] = None
        self.entered = threading.Event()
        self._serial = 0

    def register(self, region: str, start_url: str) -> Registration:
        self.registered.append((region, start_url))
        return Registration(f"client-{len(self.registered)}", f"client-secret-{len(self.registered)}",
                            T0 + 7776000, region, start_url)

    def forget(self, registration: Registration) -> None:
        self.registered.append(("forgot", registration.client_id))

    def authorize_device(self, registration: Registration) -> DeviceAuthorization:
        if self.authorize_failures:
            raise self.authorize_failures.popleft()
        self._serial += 1
        return DeviceAuthorization(f"device-code-{self._serial}", f"USER-{self._serial}", "https://device/",
                                   f"https://device/?user_code=USER-{self._serial}", self.expires_in, self.interval)

    def poll_device(self, registration: Registration, device_code: str) -> DevicePoll:
        self.polls.append(device_code)
        if self.gate is not None:
            self.entered.set()
            self.gate.wait(5)
        answer = self.answers.popleft() if self.answers else DevicePoll(PENDING)
        if isinstance(answer, LoginError):
            raise answer
        return answer

    def social_url(self, provider: str, challenge: str, state: str) -> str:
        url = social_authorize_url("https://auth", provider, challenge, state)
        self.social_urls.append(url)
        return url

    def exchange_social(self, code: str, verifier: str, machine_id: str) -> Tokens:
        self.exchanges.append((code, verifier))
        if isinstance(self.exchange_answer, LoginError):
            raise self.exchange_answer
        return self.exchange_answer


class Setup:
    def __init__(self, **stub) -> None:
        self.clock = Clock()
        self.stub = StubLogin(**stub)
        self.pool = AccountPool(clock=self.clock)
        self.logins = Logins(self.stub, self.pool, clock=self.clock, max_sessions=3)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds


def success(tag: str = "dev") -> DevicePoll:
    return DevicePoll(SUCCESS, tokens(tag))


def redirect_of(url: str, code: str = "the-code", state: Optional[str] = None) -> str:
    query = parse_qs(urlsplit(url).query)
    return f"kiro://kiro.kiroAgent/authenticate-success?code={code}&state={state or query['state'][0]}"


# ----- device login ---------------------------------------------------------------------------


def test_start_answers_what_the_user_needs_and_no_device_code():
    s = Setup()
    started = s.logins.start_device(region="eu-central-1")
    assert (started.user_code, started.verification_uri_complete) == ("USER-1", "https://device/?user_code=USER-1")
    assert (started.expires_in, started.expires_at, started.interval) == (600, T0 + 600, 5)
    assert "device-code" not in repr(started) and "secret" not in repr(started)
    assert s.stub.registered == [("eu-central-1", BUILDER_ID)]


def test_polls_are_gated_by_the_interval():
    s = Setup()
    started = s.logins.start_device()
    early = s.logins.poll(started.id)
    s.advance(4)
    still_early = s.logins.poll(started.id)
    s.advance(1)
    asked = s.logins.poll(started.id)
    again = s.logins.poll(started.id)

    assert (early.status, early.retry_after) == (PENDING, 5)
    assert (still_early.status, still_early.retry_after) == (PENDING, 1)
    assert (asked.status, asked.retry_after) == (PENDING, 5)
    assert again.status == PENDING
    assert s.stub.polls == ["device-code-1"]  # one upstream call in 5 seconds


def test_slow_down_adds_five_seconds_to_the_interval():
    s = Setup()
    s.stub.answers.extend([DevicePoll("slow_down"), DevicePoll(PENDING), success()])
    started = s.logins.start_device()
    s.advance(5)
    slowed = s.logins.poll(started.id)
    s.advance(5)
    gated = s.logins.poll(started.id)
    s.advance(5)
    asked = s.logins.poll(started.id)
    s.advance(10)
    done = s.logins.poll(started.id)

    assert (slowed.status, slowed.retry_after) == (PENDING, 10)
    assert (gated.status, gated.retry_after) == (PENDING, 5)
    assert (asked.status, asked.retry_after) == (PENDING, 10)
    assert done.status == SUCCESS
    assert len(s.stub.polls) == 3


def test_success_adds_an_idc_account_that_can_refresh():
    s = Setup(interval=0)
    s.stub.answers.append(success("dev"))
    started = s.logins.start_device(region="eu-central-1")
    result = s.logins.poll(started.id)

    assert result.status == SUCCESS
    creds = s.pool.creds(result.account_id)
    assert (creds.auth_method, creds.provider, creds.region) == (IDC, "BuilderId", "eu-central-1")
    assert (creds.client_id, creds.client_secret, creds.client_secret_expires_at) == (
        "client-1", "client-secret-1", T0 + 7776000)
    assert (creds.access_token, creds.refresh_token) == ("access-dev", refresh_token("dev"))
    assert creds.expires_at == T0 + 3600 - 60
    assert len(creds.machine_id) == 64
    assert s.logins.poll(started.id) == result  # a repeated poll answers the same, without upstream
    assert len(s.stub.polls) == 1


def test_identity_center_start_url_makes_an_enterprise_account():
    s = Setup(interval=0)
    s.stub.answers.append(success())
    started = s.logins.start_device(start_url="https://acme.awsapps.com/start")
    creds = s.pool.creds(s.logins.poll(started.id).account_id)
    assert (creds.provider, creds.start_url) == ("Enterprise", "https://acme.awsapps.com/start")
    assert s.stub.registered == [("us-east-1", "https://acme.awsapps.com/start")]


@pytest.mark.parametrize("error, status", [
    (LoginExpired("expired", code="expired_token"), EXPIRED),
    (LoginDenied("denied", code="access_denied"), DENIED),
    (LoginError("sign-in failed: invalid_client", code="invalid_client"), FAILED),
])
def test_upstream_endings(error, status):
    s = Setup(interval=0)
    s.stub.answers.append(error)
    started = s.logins.start_device()
    result = s.logins.poll(started.id)
    assert (result.status, result.account_id) == (status, None)
    assert s.logins.poll(started.id).status == status
    assert s.pool.ids() == [] and len(s.stub.polls) == 1


def test_a_transient_failure_keeps_the_login():
    s = Setup(interval=0)
    s.stub.answers.extend([LoginError("HTTP 503", status=503, transient=True), success()])
    started = s.logins.start_device()
    assert s.logins.poll(started.id).status == PENDING
    assert s.logins.poll(started.id).status == SUCCESS


def test_expiry_without_an_upstream_call_then_cleanup():
    s = Setup(expires_in=30)
    started = s.logins.start_device()
    s.advance(30)
    expired = s.logins.poll(started.id)
    s.advance(RESULT_SECONDS)

    assert expired.status == EXPIRED
    assert s.stub.polls == []
    with pytest.raises(NotFound):
        s.logins.poll(started.id)


def test_cancel_stops_polling():
    s = Setup(interval=0)
    started = s.logins.start_device()
    cancelled = s.logins.cancel(started.id)
    assert cancelled.status == CANCELLED
    assert s.logins.poll(started.id).status == CANCELLED
    assert s.stub.polls == [] and s.logins.pending() == 0
    with pytest.raises(NotFound):
        s.logins.cancel("no-such-login")


def test_a_login_cancelled_during_its_poll_adds_no_account():
    s = Setup(interval=0)
    s.stub.gate = threading.Event()
    s.stub.answers.append(success())
    started = s.logins.start_device()
    results: List[PollResult] = []
    poller = threading.Thread(target=lambda: results.append(s.logins.poll(started.id)))
    poller.start()
    assert s.stub.entered.wait(5)
    s.logins.cancel(started.id)
    s.stub.gate.set()
    poller.join(5)
    assert results[0].status == CANCELLED and s.pool.ids() == []


def test_concurrent_polls_make_one_upstream_call():
    s = Setup(interval=0)
    s.stub.gate = threading.Event()
    started = s.logins.start_device()
    results: List[PollResult] = []
    first = threading.Thread(target=lambda: results.append(s.logins.poll(started.id)))
    first.start()
    assert s.stub.entered.wait(5)
    others = [s.logins.poll(started.id) for _ in range(5)]  # while the first is still asking
    s.stub.gate.set()
    first.join(5)
    assert [r.status for r in others] == [PENDING] * 5
    assert s.stub.polls == ["device-code-1"]


def test_several_logins_run_at_once_up_to_the_cap():
    s = Setup(interval=0)
    first, second = s.logins.start_device(), s.logins.start_device()
    s.logins.start_social("google")
    with pytest.raises(RateLimited):
        s.logins.start_device()
    with pytest.raises(RateLimited):
        s.logins.start_social("github")
    s.stub.answers.extend([success("one"), success("two")])

    assert first.id != second.id and first.user_code != second.user_code
    assert s.logins.poll(second.id).status == SUCCESS
    assert s.logins.poll(first.id).status == SUCCESS
    assert len(s.pool.ids()) == 2
    s.logins.start_device()  # finished logins free their place


def test_expired_logins_free_their_place():
    s = Setup(expires_in=60)
    for _ in range(3):
        s.logins.start_device()
    s.advance(61)
    s.logins.start_device()
    assert s.logins.pending() == 1


def test_a_revoked_registration_is_replaced_once():
    s = Setup()
    s.stub.authorize_failures.append(LoginError("invalid_client", code="invalid_client"))
    started = s.logins.start_device()
    assert started.user_code == "USER-1"
    assert s.stub.registered == [("us-east-1", BUILDER_ID), ("forgot", "client-1"), ("us-east-1", BUILDER_ID)]


@pytest.mark.parametrize("region, start_url", [
    ("evil.example.com/x#", None), ("US-EAST-1", None), ("us-east-1", "http://acme.awsapps.com/start"),
    ("us-east-1", "https://acme.awsapps.com/start?x=1"), ("us-east-1", "https://user@host/start"),
])
def test_regions_and_start_urls_are_checked_before_any_call(region, start_url):
    s = Setup()
    with pytest.raises(BadRequest):
        s.logins.start_device(region=region, start_url=start_url)
    assert s.stub.registered == []


def test_start_failures_are_upstream_errors_without_a_session():
    s = Setup()
    s.stub.authorize_failures.append(LoginError("sign-in failed (HTTP 500)", status=500, transient=True))
    with pytest.raises(UpstreamError):
        s.logins.start_device()
    assert s.logins.pending() == 0


def test_a_refused_token_is_reported_not_added():
    s = Setup(interval=0)
    s.stub.answers.append(DevicePoll(SUCCESS, tokens("short", refresh="aor-short")))
    result = s.logins.poll(s.logins.start_device().id)
    assert result.status == FAILED and "truncated" in result.message
    assert s.pool.ids() == []


# ----- social login ---------------------------------------------------------------------------


def test_social_exchange_with_the_redirect_url_adds_the_account():
    s = Setup()
    started = s.logins.start_social("GitHub")
    (url,) = s.stub.social_urls
    result = s.logins.exchange(redirect_of(url))

    assert (started.provider, started.url, started.expires_at) == ("Github", url, T0 + 600)
    ((code, verifier),) = s.stub.exchanges
    assert code == "the-code"
    assert challenge_for(verifier) == parse_qs(urlsplit(url).query)["code_challenge"][0]
    creds = s.pool.creds(result.account_id)
    assert (creds.auth_method, creds.provider, creds.profile_arn, creds.region) == (SOCIAL, "Github", ARN, "us-east-1")
    assert s.logins.poll(started.id).status == SUCCESS


def test_a_wrong_state_is_rejected_and_the_login_survives():
    s = Setup()
    s.logins.start_social("google")
    (url,) = s.stub.social_urls
    with pytest.raises(BadRequest, match="state"):
        s.logins.exchange(redirect_of(url, state="forged-state"))
    assert s.stub.exchanges == [] and s.pool.ids() == []
    assert s.logins.exchange(redirect_of(url)).status == SUCCESS


def test_a_state_for_another_login_id_is_rejected():
    s = Setup()
    first = s.logins.start_social("google")
    s.logins.start_social("google")
    second_url = s.stub.social_urls[1]
    with pytest.raises(BadRequest):
        s.logins.exchange(redirect_of(second_url), login_id=first.id)
    assert s.stub.exchanges == []


def test_bare_code_needs_the_state_or_the_login_id():
    s = Setup()
    started = s.logins.start_social("google")
    state = parse_qs(urlsplit(s.stub.social_urls[0]).query)["state"][0]
    with pytest.raises(BadRequest):
        s.logins.exchange("bare-code")
    assert s.logins.exchange("bare-code", login_id=started.id).status == SUCCESS
    s.logins.start_social("google")
    s.stub.exchange_answer = tokens("second")
    state = parse_qs(urlsplit(s.stub.social_urls[1]).query)["state"][0]
    assert s.logins.exchange("code-2", state=state).status == SUCCESS
    assert [c for c, _ in s.stub.exchanges] == ["bare-code", "code-2"]


def test_a_code_is_used_once():
    s = Setup()
    s.logins.start_social("google")
    pasted = redirect_of(s.stub.social_urls[0])
    s.logins.exchange(pasted)
    with pytest.raises(BadRequest):
        s.logins.exchange(pasted)
    assert len(s.stub.exchanges) == 1


def test_an_error_redirect_ends_the_login():
    s = Setup()
    started = s.logins.start_social("google")
    state = parse_qs(urlsplit(s.stub.social_urls[0]).query)["state"][0]
    with pytest.raises(BadRequest, match="access_denied"):
        s.logins.exchange(f"kiro://kiro.kiroAgent/authenticate-success?error=access_denied&state={state}")
    assert s.logins.poll(started.id).status == DENIED


def test_social_logins_expire():
    s = Setup()
    s.logins.start_social("google")
    s.advance(600)
    with pytest.raises(BadRequest):
        s.logins.exchange(redirect_of(s.stub.social_urls[0]))
    assert s.stub.exchanges == []


def test_a_rejected_code_ends_the_login_and_a_transient_failure_keeps_it():
    s = Setup()
    started = s.logins.start_social("google")
    s.stub.exchange_answer = LoginError("sign-in failed (HTTP 502)", status=502, transient=True)
    with pytest.raises(UpstreamError):
        s.logins.exchange(redirect_of(s.stub.social_urls[0]))
    s.stub.exchange_answer = LoginExpired("expired", code="invalid_grant", status=400)
    with pytest.raises(BadRequest, match="invalid_grant"):
        s.logins.exchange(redirect_of(s.stub.social_urls[0]))
    assert s.logins.poll(started.id).status == FAILED
    assert s.pool.ids() == []


def test_unknown_provider_is_rejected():
    with pytest.raises(BadRequest, match="google"):
        Setup().logins.start_social("facebook")


# ----- helpers for clients ----------------------------------------------------------------------


@pytest.mark.parametrize("pasted, expected", [
    ("kiro://kiro.kiroAgent/authenticate-success?code=c1&state=s1", ("c1", "s1", "")),
    ("  code=c2&state=s2\n", ("c2", "s2", "")),
    ("c3", ("c3", "", "")),
    ("kiro://kiro.kiroAgent/authenticate-success?error=access_denied&state=s4", ("", "s4", "access_denied")),
    ("", ("", "", "")),
])
def test_parse_redirect(pasted, expected):
    assert parse_redirect(pasted) == expected


def test_follow_waits_as_told_until_the_login_ends():
    answers = iter([PollResult("x", PENDING, retry_after=2.0), PollResult("x", PENDING),
                    PollResult("x", SUCCESS, account_id="a1")])
    waits: List[float] = []
    result = follow(lambda: next(answers), waits.append, default_wait=5.0)
    assert (result.status, result.account_id, waits) == (SUCCESS, "a1", [2.0, 5.0])
