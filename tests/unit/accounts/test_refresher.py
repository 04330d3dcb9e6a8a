"""Tests for accounts.refresher and kiro.auth: refresh calls (mocked with `responses`), failure
handling, single flight, and the background pass."""
from __future__ import annotations

import json
import random
import threading
from typing import Callable, Optional, Sequence
from urllib.parse import parse_qs

import pytest
import requests
import responses

from kiroproxy.accounts.credentials import EXTERNAL_IDP, IDC, SOCIAL, Credentials
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.accounts.refresher import Refresher, failure_text
from kiroproxy.kiro.auth import Authenticator, RefreshError
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from tests.factories import refresh_token

SOCIAL_URL = "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken"
OIDC_URL = "https://oidc.us-east-1.amazonaws.com/token"
IDP_URL = "https://login.example.com/oauth2/v2.0/token"
T0 = 1_700_000_000.0
MACHINE = "ab" * 32


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def account(tag: str = "a", *, method: str = SOCIAL, expires_in: float = 3600, **kw) -> Credentials:
    base = dict(id=tag, access_token=f"access-{tag}", refresh_token=refresh_token(tag), auth_method=method,
                expires_at=T0 + expires_in, machine_id=MACHINE, name=tag)
    if method == IDC:
        base.update(client_id=f"client-{tag}", client_secret=f"secret-{tag}")
    if method == EXTERNAL_IDP:
        base.update(client_id=f"client-{tag}", token_endpoint=IDP_URL, scopes="openid offline_access")
    base.update(kw)
    return Credentials(**base)


def social_answer(access: str = "new-access", refresh: Optional[str] = None, expires_in: int = 3600,
                  **extra) -> dict:
    data = {"accessToken": access, "expiresIn": expires_in, **extra}
    if refresh:
        data["refreshToken"] = refresh
    return data


class Setup:
    """A pool, an authenticator and a refresher sharing one fake clock."""

    def __init__(self, *accounts: Credentials, pool: Optional[AccountPool] = None, margin: float = 600.0,
                 listeners: Sequence[Callable[[str], None]] = ()) -> None:
        self.clock = FakeClock()
        self.pool = pool or AccountPool(clock=self.clock)
        self.pool.clock = self.clock
        for creds in accounts:
            self.pool.add(creds)
        self.auth = Authenticator(Endpoints(), Sessions(), ClientIdentity(), clock=self.clock)
        self.refresher = Refresher(self.pool, self.auth, margin=margin, interval=60.0, clock=self.clock,
                                   rng=random.Random(7), listeners=listeners)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def sent_json(call) -> dict:
    return json.loads(call.request.body)


# ----- the three refresh flavours ----------------------------------------------------------------

def test_social_refresh_request(mock):
    setup = Setup(account("a", expires_in=60))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    setup.refresher.ensure_fresh("a")
    assert len(mock.calls) == 1
    request = mock.calls[0].request
    assert request.url == SOCIAL_URL
    assert sent_json(mock.calls[0]) == {"refreshToken": refresh_token("a")}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json, text/plain, */*"
    assert request.headers["User-Agent"] == f"KiroIDE-0.11.63-{MACHINE}"
    assert "Authorization" not in request.headers


def test_social_refresh_updates_tokens_expiry_and_profile(mock):
    setup = Setup(account("a", expires_in=60))
    arn = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/NEW"
    mock.add(responses.POST, SOCIAL_URL, json=social_answer("acc-2", refresh_token("rotated"), 3600, profileArn=arn))
    fresh = setup.refresher.ensure_fresh("a")
    stored = setup.pool.creds("a")
    assert fresh == stored
    assert (stored.access_token, stored.refresh_token, stored.profile_arn) == ("acc-2", refresh_token("rotated"), arn)
    assert stored.expires_at == T0 + 3600 - 60
    assert stored.machine_id == MACHINE
    assert setup.refresher.refreshes["a"] == 1


def test_old_refresh_token_is_kept_when_none_is_returned(mock):
    setup = Setup(account("a", expires_in=60))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer("acc-2", expires_in=1800))
    setup.refresher.ensure_fresh("a")
    stored = setup.pool.creds("a")
    assert (stored.access_token, stored.refresh_token) == ("acc-2", refresh_token("a"))
    assert stored.expires_at == T0 + 1800 - 60


def test_missing_expires_in_assumes_an_hour(mock):
    setup = Setup(account("a", expires_in=60))
    mock.add(responses.POST, SOCIAL_URL, json={"accessToken": "acc-2"})
    setup.refresher.ensure_fresh("a")
    assert setup.pool.creds("a").expires_at == T0 + 3600 - 60


def test_idc_refresh_sends_camel_case_json(mock):
    setup = Setup(account("i", method=IDC, expires_in=60))
    mock.add(responses.POST, OIDC_URL, json={"accessToken": "idc-2", "refreshToken": refresh_token("idc2"),
                                             "expiresIn": 3600, "tokenType": "Bearer"})
    setup.refresher.ensure_fresh("i")
    request = mock.calls[0].request
    assert request.url == OIDC_URL
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(mock.calls[0]) == {"clientId": "client-i", "clientSecret": "secret-i",
                                        "grantType": "refresh_token", "refreshToken": refresh_token("i")}
    assert request.headers["x-amz-user-agent"].startswith("aws-sdk-js/3.980.0")
    stored = setup.pool.creds("i")
    assert (stored.access_token, stored.refresh_token, stored.expires_at) == (
        "idc-2", refresh_token("idc2"), T0 + 3540)


def test_idc_refresh_uses_the_oidc_region():
    url = "https://oidc.eu-central-1.amazonaws.com/token"
    setup = Setup(account("i", method=IDC, expires_in=60, region="eu-central-1"))
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, url, json={"accessToken": "x", "expiresIn": 3600})
        setup.refresher.ensure_fresh("i")
        assert rsps.calls[0].request.url == url


def test_external_idp_refresh_is_form_encoded_and_reads_snake_case(mock):
    setup = Setup(account("e", method=EXTERNAL_IDP, expires_in=60))
    mock.add(responses.POST, IDP_URL, json={"access_token": "ext-2", "refresh_token": refresh_token("ext2"),
                                            "expires_in": 1200, "token_type": "Bearer"})
    setup.refresher.ensure_fresh("e")
    request = mock.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body) == {"grant_type": ["refresh_token"], "client_id": ["client-e"],
                                      "refresh_token": [refresh_token("e")], "scope": ["openid offline_access"]}
    stored = setup.pool.creds("e")
    assert (stored.access_token, stored.refresh_token, stored.expires_at) == (
        "ext-2", refresh_token("ext2"), T0 + 1200 - 60)


# ----- failures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, payload", [
    (400, {"error": "invalid_grant", "error_description": "Refresh token is expired or revoked"}),
    (400, {"message": "Bad credentials"}),
    (401, {"message": "Unauthorized"}),
])
def test_dead_refresh_token_is_permanent_and_marks_the_account_unhealthy(mock, status, payload):
    setup = Setup(account("a", expires_in=60), account("b"))
    mock.add(responses.POST, SOCIAL_URL, status=status, json=payload)
    with pytest.raises(RefreshError) as caught:
        setup.refresher.ensure_fresh("a")
    assert caught.value.permanent is True
    summary = setup.pool.summary("a")
    assert summary["state"] == "unhealthy"
    assert "refresh" in summary["reason"]
    assert setup.pool.lease().account_id == "b"


@pytest.mark.parametrize("answer", [
    dict(status=500, json={"message": "Internal error"}),
    dict(status=503, body="Service Unavailable"),
    dict(status=429, json={"message": "Too many requests"}),
    dict(body=requests.ConnectionError("connection refused")),
    dict(body=requests.Timeout("timed out")),
    dict(status=200, body="<html>not json</html>"),
    dict(status=200, json={"unexpected": True}),
])
def test_transient_failure_keeps_a_still_valid_token(mock, answer):
    setup = Setup(account("a", expires_in=300))  # inside the margin but not expired
    mock.add(responses.POST, SOCIAL_URL, **answer)
    creds = setup.refresher.ensure_fresh("a")
    assert len(mock.calls) == 1
    assert creds.access_token == "access-a"
    assert setup.pool.summary("a")["state"] == "active"


@pytest.mark.parametrize("answer", [
    dict(status=500, json={"message": "Internal error"}),
    dict(body=requests.ConnectionError("connection refused")),
])
def test_transient_failure_with_an_expired_token_raises(mock, answer):
    setup = Setup(account("a", expires_in=-5))
    mock.add(responses.POST, SOCIAL_URL, **answer)
    with pytest.raises(RefreshError) as caught:
        setup.refresher.ensure_fresh("a")
    assert caught.value.permanent is False
    assert setup.pool.summary("a")["state"] == "active"


def test_refresh_error_never_carries_the_token(mock):
    setup = Setup(account("a", expires_in=-5))
    mock.add(responses.POST, SOCIAL_URL, status=400, json={"error": "invalid_grant"})
    with pytest.raises(RefreshError) as caught:
        setup.refresher.ensure_fresh("a")
    assert refresh_token("a") not in caught.value.message
    assert refresh_token("a") not in setup.pool.summary("a")["reason"]


# ----- when to refresh ---------------------------------------------------------------------------

def test_fresh_token_is_not_refreshed(mock):
    setup = Setup(account("a", expires_in=3600))
    assert setup.refresher.ensure_fresh("a").access_token == "access-a"
    assert len(mock.calls) == 0


def test_token_inside_the_margin_is_refreshed(mock):
    setup = Setup(account("a", expires_in=599))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    assert setup.refresher.ensure_fresh("a").access_token == "new-access"


def test_missing_access_token_is_refreshed(mock):
    setup = Setup(account("a", access_token="", expires_in=0))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    assert setup.refresher.ensure_fresh("a").access_token == "new-access"


def test_force_refreshes_a_fresh_token(mock):
    setup = Setup(account("a", expires_in=3600))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    assert setup.refresher.ensure_fresh("a", force=True).access_token == "new-access"


def test_stale_token_refreshes_even_when_the_expiry_looks_fine(mock):
    setup = Setup(account("a", expires_in=3600))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    assert setup.refresher.ensure_fresh("a", stale_token="access-a").access_token == "new-access"
    assert len(mock.calls) == 1


def test_stale_token_already_replaced_by_another_thread_is_not_refreshed_again(mock):
    setup = Setup(account("a", expires_in=3600))
    setup.pool.update_creds("a", lambda c: c.with_tokens("someone-elses-new", None, T0 + 3600))
    creds = setup.refresher.ensure_fresh("a", stale_token="access-a")
    assert creds.access_token == "someone-elses-new"
    assert len(mock.calls) == 0


def test_stale_token_with_a_transient_failure_raises_even_if_not_expired(mock):
    setup = Setup(account("a", expires_in=3600))
    mock.add(responses.POST, SOCIAL_URL, status=500, json={})
    with pytest.raises(RefreshError):
        setup.refresher.ensure_fresh("a", stale_token="access-a")


class CountingPool(AccountPool):
    """Counts reads of credentials so a test can tell when every thread has looked."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.reads = 0
        self.read = threading.Condition()

    def creds(self, account_id: str) -> Credentials:
        with self.read:
            self.reads += 1
            self.read.notify_all()
        return super().creds(account_id)


def test_single_flight_eight_threads_one_refresh(mock):
    pool = CountingPool()
    setup = Setup(account("a", expires_in=-1), pool=pool)
    entered, release = threading.Event(), threading.Event()

    def slow_refresh(request):
        entered.set()
        release.wait(10)
        return 200, {}, json.dumps(social_answer("shared-new"))

    mock.add_callback(responses.POST, SOCIAL_URL, callback=slow_refresh, content_type="application/json")
    results, failures = [], []

    def worker() -> None:
        try:
            results.append(setup.refresher.ensure_fresh("a").access_token)
        except Exception as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert entered.wait(10)
    with pool.read:
        # 8 looks before the lock plus the leader's look under it: every thread saw the old token.
        assert pool.read.wait_for(lambda: pool.reads >= 9, timeout=10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert results == ["shared-new"] * 8
    assert len(mock.calls) == 1
    assert setup.refresher.refreshes["a"] == 1


def test_accounts_refresh_independently(mock):
    setup = Setup(account("a", expires_in=-1), account("b", expires_in=-1))
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    setup.refresher.ensure_fresh("a")
    setup.refresher.ensure_fresh("b")
    assert len(mock.calls) == 2
    assert [sent_json(c)["refreshToken"] for c in mock.calls] == [refresh_token("a"), refresh_token("b")]


def test_listeners_hear_about_refreshes(mock):
    heard = []
    setup = Setup(account("a", expires_in=-1), listeners=[heard.append])
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    setup.refresher.ensure_fresh("a")
    assert heard == ["a"]


# ----- background pass ---------------------------------------------------------------------------

def test_due_honours_margin_state_and_unknown_expiry():
    setup = Setup(account("soon", expires_in=100), account("later", expires_in=7200),
                  account("unknown", expires_in=-T0), account("dead", expires_in=100),
                  account("off", expires_in=100), account("cool", expires_in=100),
                  account("parked", expires_in=100), account("gone", expires_in=-50))
    setup.pool.update_creds("unknown", lambda c: c.with_tokens(c.access_token, None, 0.0))
    setup.pool.mark_unhealthy("dead", "invalid_grant")
    setup.pool.set_enabled("off", False)
    setup.pool.cooldown("cool", 60, "429")
    setup.pool.park("parked", T0 + 3600, "quota")
    assert sorted(setup.refresher.due()) == ["cool", "gone", "parked", "soon"]


def test_due_jitter_is_a_stable_per_account_extra_of_at_most_a_quarter_margin():
    tags = [f"acct{n}" for n in range(8)]
    setup = Setup(*(account(t) for t in tags), margin=600.0)
    other = Refresher(setup.pool, setup.auth, margin=600.0, clock=setup.clock)
    threshold = {}
    for offset in range(590, 761):
        for tag in tags:
            setup.pool.update_creds(tag, lambda c, at=T0 + offset: c.with_tokens(c.access_token, None, at))
        due = setup.refresher.due()
        assert sorted(other.due()) == sorted(due)  # stable: not random per call or per instance
        for tag in due:
            threshold[tag] = offset
    assert set(threshold) == set(tags)  # everything is due at the margin itself
    assert all(600 <= threshold[t] <= 750 for t in tags)
    assert len(set(threshold.values())) >= 4  # accounts do not all refresh together


def test_run_once_refreshes_due_accounts(mock):
    setup = Setup(account("soon", expires_in=100), account("later", expires_in=7200),
                  account("dead", expires_in=100))
    setup.pool.mark_unhealthy("dead", "invalid_grant")
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    assert setup.refresher.run_once() == 1
    assert [sent_json(c)["refreshToken"] for c in mock.calls] == [refresh_token("soon")]
    assert setup.pool.creds("soon").access_token == "new-access"
    assert setup.refresher.due() == []


def test_run_once_backs_off_after_a_transient_failure(mock):
    setup = Setup(account("a", expires_in=300))
    mock.add(responses.POST, SOCIAL_URL, status=500, json={"message": "down"})
    mock.add(responses.POST, SOCIAL_URL, json=social_answer("after-backoff"))
    assert setup.refresher.run_once() == 0
    assert len(mock.calls) == 1
    assert setup.refresher.due() == []
    assert setup.refresher.run_once() == 0
    setup.clock.advance(20)  # first backoff is 30 s, jittered by at most 20%
    assert setup.refresher.run_once() == 0
    assert len(mock.calls) == 1
    setup.clock.advance(20)
    assert setup.refresher.run_once() == 1
    assert len(mock.calls) == 2
    assert setup.pool.creds("a").access_token == "after-backoff"


def test_run_once_permanent_failure_takes_the_account_out(mock):
    setup = Setup(account("a", expires_in=300))
    mock.add(responses.POST, SOCIAL_URL, status=400, json={"error": "invalid_grant"})
    assert setup.refresher.run_once() == 0
    assert setup.pool.summary("a")["state"] == "unhealthy"
    assert setup.refresher.due() == []


def test_background_thread_refreshes_and_stops(mock):
    done = threading.Event()
    setup = Setup(account("a", expires_in=100), listeners=[lambda account_id: done.set()])
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    setup.refresher.start()
    try:
        assert done.wait(10)
    finally:
        setup.refresher.stop(timeout=10)
    assert setup.refresher._thread is None
    assert setup.pool.creds("a").access_token == "new-access"


def test_wake_runs_a_pass_now(mock):
    done = threading.Event()
    setup = Setup(account("a", expires_in=100), listeners=[lambda account_id: done.set()])
    mock.add(responses.POST, SOCIAL_URL, json=social_answer())
    setup.refresher.wake()
    assert done.wait(10)


@pytest.mark.parametrize("message, said", [
    ("token refresh failed (HTTP 500)", "token refresh failed (HTTP 500)"),
    ("token refresh failed: ConnectionError", "token refresh failed: ConnectionError"),
    ("refresh token rejected (HTTP 400); sign in again",
     "token refresh failed: refresh token rejected (HTTP 400); sign in again"),
])
def test_failure_text_says_it_once(message, said):
    assert failure_text(RefreshError(message, permanent=False)) == said


def test_the_unhealthy_reason_says_refresh_failed_once(mock):
    setup = Setup(account("a", expires_in=60))
    mock.add(responses.POST, SOCIAL_URL, status=400, json={"error": "invalid_grant"})
    with pytest.raises(RefreshError):
        setup.refresher.ensure_fresh("a")
    assert setup.pool.summary("a")["reason"].lower().count("refresh") == 2  # "token refresh failed: refresh token..."
    assert setup.pool.summary("a")["reason"].lower().count("token refresh failed") == 1
