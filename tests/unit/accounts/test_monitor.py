"""Tests for accounts.monitor: usage cache, pool quota, token checks (HTTP mocked with `responses`,
a fake clock) and the Adopter that takes newer tokens from the file an account was added from."""
from __future__ import annotations

import calendar
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import responses
from responses import matchers

from kiroproxy.accounts import scan
from kiroproxy.accounts.credentials import Credentials
from kiroproxy.accounts.monitor import Adopter, Monitor
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.accounts.refresher import Refresher
from kiroproxy.errors import NotFound, ProxyError, UpstreamError
from kiroproxy.kiro.auth import Authenticator
from kiroproxy.kiro.client import KiroClient
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from tests import factories
from tests.factories import refresh_token

T0 = 1_700_000_000.0
USAGE_URL = "https://management.us-east-1.kiro.dev/getUsageLimits"
REFRESH_URL = "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def account(tag: str, *, expires_in: float = 7200, **kw: Any) -> Credentials:
    base: Dict[str, Any] = dict(id=tag, access_token=f"access-{tag}", refresh_token=refresh_token(tag),
                                name=tag.upper(), expires_at=T0 + expires_in, machine_id="ab" * 32, created_at=T0)
    base.update(kw)
    return Credentials(**base)


def usage_document(used: float, limit: float, reset: Optional[float] = T0 + 10 * 86400) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"usageBreakdownList": [{"resourceType": "CREDIT", "currentUsageWithPrecision": used,
                                                    "usageLimitWithPrecision": limit}]}
    if reset is not None:
        doc["nextDateReset"] = reset
    return doc


class Setup:
    """A pool, refresher, client and monitor sharing one fake clock and one mocked HTTP layer."""

    def __init__(self, mock: responses.RequestsMock, *accounts: Credentials) -> None:
        self.mock = mock
        self.clock = FakeClock()
        self.pool = AccountPool(clock=self.clock)
        for creds in accounts:
            self.pool.add(creds)
        self.sessions = Sessions()
        endpoints, identity = Endpoints(), ClientIdentity()
        auth = Authenticator(endpoints, self.sessions, identity, clock=self.clock)
        self.refresher = Refresher(self.pool, auth, margin=600.0, clock=self.clock, rng=random.Random(1))
        self.client = KiroClient(endpoints, self.sessions, identity)
        self.monitor = Monitor(self.pool, self.refresher, self.client, cache_seconds=60.0, clock=self.clock)

    def usage(self, token: str, document: Optional[Dict[str, Any]] = None, status: int = 200) -> responses.BaseResponse:
        return self.mock.add(responses.GET, USAGE_URL, json=document if document is not None else {"message": "no"},
                             status=status, match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})])

    def refresh(self, tag: str, answer: Dict[str, Any], status: int = 200) -> responses.BaseResponse:
        return self.mock.add(responses.POST, REFRESH_URL, json=answer, status=status,
                             match=[matchers.json_params_matcher({"refreshToken": refresh_token(tag)})])


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def setup(mock):
    made = []

    def make(*accounts: Credentials) -> Setup:
        made.append(Setup(mock, *accounts))
        return made[-1]

    yield make
    for one in made:
        one.sessions.close()


# ----- usage -------------------------------------------------------------------------------------

def test_usage_is_cached_for_max_age(setup):
    s = setup(account("a"))
    call = s.usage("access-a", usage_document(10, 50))
    first = s.monitor.usage("a")
    assert first["quota"]["remaining"] == 40.0 and first["fetched_at"] == T0 and first["account_id"] == "a"
    assert s.monitor.usage("a") == first and call.call_count == 1
    s.clock.now += 30
    assert s.monitor.usage("a")["fetched_at"] == T0 and call.call_count == 1
    assert s.monitor.usage("a", max_age=10)["fetched_at"] == T0 + 30 and call.call_count == 2
    s.clock.now += 61
    assert s.monitor.usage("a")["fetched_at"] == T0 + 91 and call.call_count == 3


def test_usage_request_and_pool_quota(setup, mock):
    s = setup(account("a"))
    s.usage("access-a", usage_document(12.5, 50))
    s.monitor.usage("a")
    sent = mock.calls[0].request
    assert "resourceType=AGENTIC_REQUEST" in sent.url and "origin=AI_EDITOR" in sent.url
    quota = s.pool.summary("a")["quota"]
    assert (quota["used"], quota["limit"], quota["remaining"], quota["fetched_at"]) == (12.5, 50.0, 37.5, T0)


def test_usage_of_an_unknown_account_is_not_found(setup):
    with pytest.raises(NotFound):
        setup().monitor.usage("nobody")


def test_reset_date_asks_kiro_again(setup):
    s = setup(account("a"))
    s.usage("access-a", usage_document(50, 50, reset=T0 + 86400))
    assert s.monitor.reset_date("a") == T0 + 86400
    s.mock.replace(responses.GET, USAGE_URL, json=usage_document(50, 50, reset=T0 + 2 * 86400))
    s.clock.now += 1
    assert s.monitor.reset_date("a") == T0 + 2 * 86400


def test_reset_date_is_none_when_kiro_cannot_say(setup):
    s = setup(account("a"), account("b"))
    s.usage("access-a", status=500)
    s.usage("access-b", usage_document(1, 50, reset=None))
    assert s.monitor.reset_date("a") is None and s.monitor.reset_date("b") is None


# ----- quota -------------------------------------------------------------------------------------

def test_quota_sums_accounts_and_lists_cooling_and_exhausted(setup):
    s = setup(account("a"), account("b"), account("c"), account("d"))
    s.usage("access-a", usage_document(10, 50, reset=T0 + 5 * 86400))
    s.usage("access-b", usage_document(20, 100, reset=T0 + 3 * 86400))
    s.usage("access-c", usage_document(50, 50, reset=T0 + 9 * 86400))
    disabled_usage = s.usage("access-d", usage_document(0, 1000))
    s.pool.cooldown("b", 120, "throttled")
    s.pool.park("c", T0 + 9 * 86400, "monthly limit")
    s.pool.set_enabled("d", False)
    quota = s.monitor.quota()
    assert quota["totals"] == {"remaining": 40.0 + 80.0, "used": 80.0, "limit": 200.0, "next_reset_at": T0 + 3 * 86400}
    assert quota["cooling_down"] == [{"id": "b", "until": T0 + 120}]
    assert quota["exhausted"] == [{"id": "c", "until": T0 + 9 * 86400}]
    rows = {row["id"]: row for row in quota["accounts"]}
    assert [row["state"] for row in quota["accounts"]] == ["active", "cooldown", "exhausted", "disabled"]
    assert rows["a"]["quota"]["remaining"] == 40.0 and rows["a"]["fetched_at"] == T0 and rows["a"]["name"] == "A"
    assert "quota" not in rows["d"] and disabled_usage.call_count == 0
    assert quota["generated_at"] == T0


def test_one_failing_account_does_not_fail_the_answer(setup):
    s = setup(account("a"), account("b"), account("c", expires_in=-60))
    s.usage("access-a", usage_document(10, 50))
    s.usage("access-b", {"message": "The bearer token included in the request is invalid."}, status=403)
    s.refresh("c", {"error": "invalid_grant"}, status=400)  # c's token is dead and cannot be refreshed
    quota = s.monitor.quota()
    rows = {row["id"]: row for row in quota["accounts"]}
    assert rows["a"]["quota"]["remaining"] == 40.0 and "error" not in rows["a"]
    assert rows["b"]["error"] and "quota" not in rows["b"]
    assert "sign in again" in rows["c"]["error"] and "quota" not in rows["c"]
    assert quota["totals"]["remaining"] == 40.0 and quota["totals"]["limit"] == 50.0


def test_quota_uses_the_usage_cache(setup):
    s = setup(account("a"))
    call = s.usage("access-a", usage_document(10, 50))
    s.monitor.quota()
    s.monitor.quota()
    assert call.call_count == 1


def test_quota_does_not_ask_about_accounts_the_user_must_fix(setup):
    s = setup(account("a"), account("u", expires_in=-60), account("s"), account("d"))
    asked = {tag: s.usage(f"access-{tag}", usage_document(1, 50)) for tag in "usd"}
    s.usage("access-a", usage_document(10, 50))
    refresh = s.refresh("u", {"accessToken": "access-u2", "expiresIn": 3600})
    s.pool.mark_unhealthy("u", "refresh token rejected; sign in again")
    s.pool.suspend("s", "TEMPORARILY_SUSPENDED")
    s.pool.set_enabled("d", False)
    for _ in range(2):
        rows = {row["id"]: row for row in s.monitor.quota()["accounts"]}
        assert rows["a"]["quota"]["remaining"] == 40.0
        for tag, state in (("u", "unhealthy"), ("s", "suspended"), ("d", "disabled")):
            assert rows[tag]["state"] == state and "quota" not in rows[tag] and "error" not in rows[tag]
        assert "sign in again" in rows["u"]["reason"] and rows["s"]["reason"] == "TEMPORARILY_SUSPENDED"
    assert refresh.call_count == 0 and [call.call_count for call in asked.values()] == [0, 0, 0]


def test_a_failure_is_remembered_briefly(setup):
    s = setup(account("a"))
    call = s.usage("access-a", {"message": "boom"}, status=500)
    for _ in range(3):
        (row,) = s.monitor.quota()["accounts"]
        assert "boom" in row["error"]
    assert call.call_count == 1
    s.clock.now += 16
    s.monitor.quota()
    assert call.call_count == 2
    with pytest.raises(UpstreamError):
        s.monitor.usage("a", max_age=0)  # the live endpoint always asks
    assert call.call_count == 3


def test_a_success_forgets_the_failure(setup, mock):
    s = setup(account("a"))
    s.usage("access-a", {"message": "boom"}, status=500)
    with pytest.raises(UpstreamError):
        s.monitor.usage("a")
    mock.replace(responses.GET, USAGE_URL, json=usage_document(10, 50))
    assert s.monitor.usage("a", max_age=0)["quota"]["remaining"] == 40.0
    assert s.monitor.usage("a")["quota"]["remaining"] == 40.0


BEARER = {"message": "The bearer token included in the request is invalid"}


def test_usage_refreshes_a_rejected_token_once(setup):
    s = setup(account("a"))
    rejected = s.usage("access-a", BEARER, status=403)
    refresh = s.refresh("a", {"accessToken": "access-a2", "expiresIn": 3600})
    s.usage("access-a2", usage_document(10, 50))
    assert s.monitor.usage("a", max_age=0)["quota"]["remaining"] == 40.0
    assert (rejected.call_count, refresh.call_count) == (1, 1)
    assert s.pool.creds("a").access_token == "access-a2"


def test_a_token_still_rejected_after_the_refresh_is_an_upstream_error(setup):
    s = setup(account("a"))
    s.usage("access-a", BEARER, status=403)
    s.refresh("a", {"accessToken": "access-a2", "expiresIn": 3600})
    again = s.usage("access-a2", BEARER, status=403)
    with pytest.raises(UpstreamError) as raised:
        s.monitor.usage("a", max_age=0)
    assert raised.value.status == 502 and again.call_count == 1
    assert "usage query" in raised.value.message and s.pool.summary("a")["state"] == "active"


def test_a_failed_refresh_is_an_upstream_error_said_once(setup):
    s = setup(account("a", expires_in=-60))
    s.refresh("a", {"message": "down"}, status=500)
    with pytest.raises(UpstreamError) as raised:
        s.monitor.usage("a", max_age=0)
    assert raised.value.status == 502 and raised.value.message.lower().count("token refresh failed") == 1


@pytest.mark.parametrize("status, body, answer", [
    (500, {"message": "boom"}, 503),
    (429, {"message": "slow down"}, 503),
    (200, [1, 2], 503),
    (400, {"message": "bad"}, 502),
])
def test_other_failures_are_502_or_503(setup, status, body, answer):
    s = setup(account("a"))
    s.usage("access-a", body, status=status)
    with pytest.raises(UpstreamError) as raised:
        s.monitor.usage("a", max_age=0)
    assert raised.value.status == answer and s.pool.summary("a")["state"] == "active"


def test_a_suspension_answer_suspends_the_account(setup):
    s = setup(account("a"))
    s.usage("access-a", {"message": "Your User ID temporarily is suspended.", "reason": "TEMPORARILY_SUSPENDED"},
            status=403)
    with pytest.raises(UpstreamError) as raised:
        s.monitor.usage("a", max_age=0)
    assert raised.value.status == 502 and "suspended" in raised.value.message
    summary = s.pool.summary("a")
    assert summary["state"] == "suspended" and "suspended" in summary["reason"]


def test_a_monthly_limit_answer_parks_the_account_until_the_next_month(setup):
    s = setup(account("a"))
    s.usage("access-a", {"message": "limit", "reason": "MONTHLY_REQUEST_COUNT"}, status=402)
    with pytest.raises(UpstreamError) as raised:
        s.monitor.usage("a", max_age=0)
    assert raised.value.status == 503
    summary = s.pool.summary("a")
    assert summary["state"] == "exhausted" and summary["exhausted_until"] == calendar.timegm((2023, 12, 1, 0, 0, 0))


def test_a_monthly_limit_answer_uses_a_known_reset_date(setup, mock):
    s = setup(account("a"))
    s.usage("access-a", usage_document(10, 50, reset=T0 + 5 * 86400))
    s.monitor.usage("a")
    mock.replace(responses.GET, USAGE_URL, json={"message": "limit", "reason": "MONTHLY_REQUEST_COUNT"}, status=402)
    with pytest.raises(UpstreamError):
        s.monitor.usage("a", max_age=0)
    assert s.pool.summary("a")["exhausted_until"] == T0 + 5 * 86400


def test_email_of_asks_with_exactly_the_given_credentials(setup):
    s = setup(account("a"))
    s.usage("someone-elses-access", {**usage_document(1, 5), "userInfo": {"email": "bob@example.com"}})
    other = account("zz", access_token="someone-elses-access")
    assert s.monitor.email_of(other) == "bob@example.com"
    assert s.pool.summary("a")["quota"] is None


# ----- refresh_check -----------------------------------------------------------------------------

def test_refresh_check_statuses(setup):
    s = setup(account("valid"), account("soon", expires_in=300), account("gone", expires_in=-60),
              account("dead", expires_in=-60), account("off", expires_in=-60), account("never", expires_at=0))
    s.pool.set_enabled("off", False)
    s.refresh("soon", {"accessToken": "access-soon-2", "expiresIn": 3600})
    s.refresh("gone", {"accessToken": "access-gone-2", "expiresIn": 1800})
    s.refresh("never", {"accessToken": "access-never-2", "expiresIn": 3600})
    dead = s.refresh("dead", {"error": "invalid_grant"}, status=400)
    off = s.refresh("off", {"accessToken": "never-used"})
    rows = {row["id"]: row for row in s.monitor.refresh_check()}
    assert rows["valid"] == {"id": "valid", "name": "VALID", "before": "valid", "status": "valid",
                             "outcome": "not needed", "expires_at": T0 + 7200}
    assert rows["soon"] == {"id": "soon", "name": "SOON", "before": "expiring", "status": "valid",
                            "outcome": "refreshed", "refreshed": True, "expires_at": T0 + 3600 - 60}
    gone = rows["gone"]
    assert (gone["before"], gone["outcome"], gone["status"]) == ("expired", "refreshed", "valid")
    assert rows["gone"]["expires_at"] == T0 + 1800 - 60
    assert rows["never"]["refreshed"] is True and rows["never"]["before"] == "expired"
    assert (rows["dead"]["before"], rows["dead"]["outcome"], rows["dead"]["status"]) == (
        "expired", "refresh failed", "refresh failed")
    assert rows["dead"]["refreshed"] is False
    assert rows["dead"]["permanent"] is True and "sign in again" in rows["dead"]["error"]
    assert dead.call_count == 1 and s.pool.summary("dead")["state"] == "unhealthy"
    assert rows["off"] == {"id": "off", "name": "OFF", "before": "expired", "status": "expired",
                           "outcome": "skipped: the account is disabled", "expires_at": T0 - 60}
    assert off.call_count == 0
    assert s.pool.creds("soon").access_token == "access-soon-2"


def test_refresh_check_reports_a_transient_refresh_failure(setup):
    s = setup(account("soon", expires_in=300))
    s.refresh("soon", {"message": "try later"}, status=503)
    (row,) = s.monitor.refresh_check()
    assert row["status"] == "refresh failed" and row["permanent"] is False
    assert s.pool.summary("soon")["state"] == "active"  # a transient failure leaves the account alone


def test_refresh_check_marks_expiring_inside_the_margin(setup):
    s = setup(account("edge", expires_in=600), account("outside", expires_in=601))
    s.refresh("edge", {"accessToken": "access-edge-2", "expiresIn": 3600})
    rows = {row["id"]: row for row in s.monitor.refresh_check()}
    assert rows["edge"]["refreshed"] is True and "refreshed" not in rows["outside"]


# ----- Adopter -----------------------------------------------------------------------------------

def write_token(home: Path, data: Dict[str, Any], mtime: float) -> Path:
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / scan.IDE_TOKEN_FILE
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))
    return path


class Adoption:
    """An account added from a Kiro token file under a temporary home, and an Adopter watching it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.mtime = 1_600_000_000.0
        self.path = write_token(home, factories.token_file("acc-old", expires_in=3600), self.mtime)
        self.pool = AccountPool()
        self.id = self.pool.add(scan.load(str(self.path), home)).id
        self.adopter = Adopter(self.pool, lambda: home)

    def rewrite(self, data: Dict[str, Any], *, touch: bool = True) -> None:
        """Kiro writes the file; `touch=False` keeps the old modification time."""
        if touch:
            self.mtime += 10
        write_token(self.home, data, self.mtime)

    def access(self) -> str:
        return self.pool.creds(self.id).access_token


@pytest.fixture
def adoption(tmp_path):
    return Adoption(tmp_path)


def test_the_file_it_came_from_is_left_alone_while_unchanged(adoption):
    assert adoption.adopter.run_once() == []
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"


def test_a_newer_token_written_to_the_file_is_adopted(adoption):
    newer = factories.token_file("acc-new", expires_in=7200)
    adoption.rewrite(newer)
    assert adoption.adopter.run_once() == [adoption.id]
    creds = adoption.pool.creds(adoption.id)
    assert (creds.access_token, creds.refresh_token) == ("acc-new", newer["refreshToken"])
    assert creds.source_path == str(adoption.path)
    assert adoption.adopter.run_once() == []


def test_an_older_token_is_ignored_while_ours_is_healthy(adoption):
    adoption.rewrite(factories.token_file("acc-older", expires_in=60))
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"


def test_an_older_token_is_taken_once_ours_is_dead(adoption):
    adoption.rewrite(factories.token_file("acc-older", expires_in=60))
    adoption.adopter.run_once()
    adoption.pool.mark_unhealthy(adoption.id, "refresh token rejected")
    assert adoption.adopter.run_once() == []  # the file has not changed since it was read
    adoption.rewrite(factories.token_file("acc-older", expires_in=60))
    assert adoption.adopter.run_once() == [adoption.id]
    assert adoption.access() == "acc-older"
    assert adoption.pool.summary(adoption.id)["state"] == "active"


def test_the_file_is_read_again_only_when_its_time_changes(adoption):
    adoption.adopter.run_once()
    adoption.rewrite(factories.token_file("acc-new", expires_in=7200), touch=False)
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"
    adoption.rewrite(factories.token_file("acc-new", expires_in=7200))
    assert adoption.adopter.run_once() == [adoption.id] and adoption.access() == "acc-new"


def test_a_missing_or_broken_file_changes_nothing(adoption):
    adoption.path.write_text("{half a token")
    os.utime(adoption.path, (adoption.mtime + 10, adoption.mtime + 10))
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"
    adoption.path.unlink()
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"


def test_accounts_not_added_from_a_file_are_skipped(tmp_path):
    pool = AccountPool()
    pool.add(account("pasted"))
    assert Adopter(pool, lambda: tmp_path).run_once() == []


def test_a_file_that_now_holds_another_account_is_not_adopted(adoption, caplog):
    adoption.rewrite(factories.token_file("acc-bob", provider="Github", expires_in=7200))
    with caplog.at_level(logging.WARNING, logger="kiroproxy.accounts.monitor"):
        assert adoption.adopter.run_once() == []
    assert adoption.access() == "acc-old" and adoption.pool.creds(adoption.id).provider == "Google"
    assert "not adopting" in caplog.text and "provider" in caplog.text
    adoption.pool.mark_unhealthy(adoption.id, "refresh token rejected")
    adoption.rewrite(factories.token_file("acc-bob", provider="Github", expires_in=7200))
    assert adoption.adopter.run_once() == [] and adoption.access() == "acc-old"  # not even when ours is dead


def identified(adoption: Adoption, known: Optional[str], answer: Any) -> Adopter:
    """An Adopter that asks Kiro (stubbed) whose tokens the file holds; `answer` an e-mail or an error."""
    if known:
        adoption.pool.set_quota(adoption.id, {"email": known})

    def identify(creds: Credentials) -> Optional[str]:
        assert creds.access_token == "acc-new"  # the file's tokens are the ones asked about
        if isinstance(answer, Exception):
            raise answer
        return answer

    adoption.adopter = Adopter(adoption.pool, lambda: adoption.home, identify=identify)
    return adoption.adopter


@pytest.mark.parametrize("known, answer, taken", [
    ("alice@example.com", "alice@example.com", True),
    ("Alice@Example.com", "alice@example.com ", True),
    ("alice@example.com", None, True),                     # Kiro names nobody: nothing proves otherwise
    (None, "bob@example.com", True),                       # nothing known to compare with
    ("alice@example.com", "bob@example.com", False),
    ("alice@example.com", ProxyError("down", status=503), False),
])
def test_the_e_mail_decides_when_the_file_is_otherwise_alike(adoption, known, answer, taken):
    identified(adoption, known, answer)
    adoption.rewrite(factories.token_file("acc-new", expires_in=7200))  # same provider, new refresh token
    assert adoption.adopter.run_once() == ([adoption.id] if taken else [])
    assert adoption.access() == ("acc-new" if taken else "acc-old")


def test_the_same_refresh_token_needs_no_e_mail(adoption):
    calls = []
    adoption.pool.set_quota(adoption.id, {"email": "alice@example.com"})
    adoption.adopter = Adopter(adoption.pool, lambda: adoption.home, identify=lambda c: calls.append(c) or "x")
    same = factories.token_file("acc-new", refresh=adoption.pool.creds(adoption.id).refresh_token, expires_in=7200)
    adoption.rewrite(same)
    assert adoption.adopter.run_once() == [adoption.id] and calls == []


def test_an_account_removed_meanwhile_is_skipped(adoption):
    class Vanishing(AccountPool):
        def creds(self, account_id: str) -> Credentials:
            raise NotFound(account_id)

    pool = Vanishing()
    pool.add(adoption.pool.creds(adoption.id))
    assert Adopter(pool, lambda: adoption.home).run_once() == []
