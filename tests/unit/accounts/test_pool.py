"""Tests for accounts.pool with a fake clock: choice, cooldowns, parking, errors, persistence."""
from __future__ import annotations

import json
import os
import random
import stat
import threading
import time
from typing import List

import pytest

from kiroproxy.accounts.credentials import Credentials
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.errors import NotFound, ProxyError, QuotaExhausted, RateLimited, Unavailable
from kiroproxy.store.jsondb import JsonDB
from tests.factories import refresh_token

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def creds(tag: str, **kw) -> Credentials:
    """An account whose secrets all carry its tag, so leaks are easy to spot."""
    base = dict(id=tag, access_token=f"access-{tag}-SECRET", refresh_token=refresh_token(f"{tag}SECRET"),
                name=tag.upper(), expires_at=T0 + 3600, created_at=T0)
    base.update(kw)
    return Credentials(**base)


def make_pool(*tags: str, clock: FakeClock = None, **kw) -> AccountPool:
    pool = AccountPool(clock=clock or FakeClock(), **kw)
    for tag in tags:
        pool.add(creds(tag))
    return pool


def picks(pool: AccountPool, count: int, **kw) -> List[str]:
    """Lease and release `count` times; the account ids chosen, in order."""
    out = []
    for _ in range(count):
        with pool.lease(**kw) as lease:
            out.append(lease.account_id)
    return out


# ----- choice ------------------------------------------------------------------------------------

def test_round_robin_order():
    assert picks(make_pool("a", "b", "c"), 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_while_leases_are_held():
    pool = make_pool("a", "b", "c")
    held = [pool.lease() for _ in range(4)]
    assert [lease.account_id for lease in held] == ["a", "b", "c", "a"]


def test_round_robin_honours_exclude():
    pool = make_pool("a", "b", "c")
    assert picks(pool, 3, exclude=["b"]) == ["a", "c", "a"]


@pytest.mark.parametrize("disable", [
    lambda pool: pool.set_enabled("b", False),
    lambda pool: pool.cooldown("b", 60, "429"),
    lambda pool: pool.mark_unhealthy("b", "refresh token dead"),
    lambda pool: pool.suspend("b", "TEMPORARILY_SUSPENDED"),
    lambda pool: pool.park("b", T0 + 3600, "credits used up"),
], ids=["disabled", "cooldown", "unhealthy", "suspended", "exhausted"])
def test_unusable_accounts_are_skipped(disable):
    pool = make_pool("a", "b", "c")
    disable(pool)
    assert picks(pool, 4) == ["a", "c", "a", "c"]


@pytest.mark.parametrize("disable, state", [
    (lambda pool: pool.set_enabled("a", False), "disabled"),
    (lambda pool: pool.cooldown("a", 60, "429"), "cooldown"),
    (lambda pool: pool.mark_unhealthy("a", "dead"), "unhealthy"),
    (lambda pool: pool.suspend("a", "suspended"), "suspended"),
    (lambda pool: pool.park("a", T0 + 60, "quota"), "exhausted"),
])
def test_summary_and_counts_report_the_state(disable, state):
    pool = make_pool("a", "b")
    disable(pool)
    assert pool.summary("a")["state"] == state
    counts = pool.counts()
    assert counts[state] == 1 and counts["active"] == 1
    assert sum(counts.values()) == 2


def test_cooldown_expires():
    clock = FakeClock()
    pool = make_pool("a", "b", clock=clock)
    pool.cooldown("a", 30, "429")
    assert picks(pool, 2) == ["b", "b"]
    clock.advance(29.5)
    assert pool.summary("a")["state"] == "cooldown"
    clock.advance(0.5)
    assert pool.summary("a")["state"] == "active"
    assert "a" in picks(pool, 2)


def test_default_cooldown_doubles_with_strikes_up_to_the_max_and_success_resets_it():
    clock = FakeClock()
    pool = make_pool("a", clock=clock, cooldown_seconds=10, max_cooldown_seconds=35)
    assert [pool.cooldown("a", None, "429") for _ in range(5)] == [10, 20, 35, 35, 35]
    pool.record_success("a")
    assert pool.cooldown("a", None, "429") == 10


def test_default_cooldown_sets_cooldown_until_from_now():
    clock = FakeClock()
    pool = make_pool("a", clock=clock, cooldown_seconds=10)
    pool.cooldown("a", None, "429")
    assert pool.summary("a")["cooldown_until"] == T0 + 10


def test_many_strikes_stay_at_the_max_without_overflowing():
    pool = make_pool("a", cooldown_seconds=10.0, max_cooldown_seconds=1800.0)  # floats, as Settings gives
    for _ in range(1100):
        last = pool.cooldown("a", None, "429")
    assert last == 1800


def test_retry_after_seconds_are_used_as_given():
    clock = FakeClock()
    pool = make_pool("a", clock=clock, cooldown_seconds=100)
    for _ in range(3):
        pool.cooldown("a", None, "strike")
    assert pool.cooldown("a", 7.0, "retry-after") == 7.0
    clock.advance(700)  # past the strikes' cooldown
    pool.cooldown("a", 7.0, "retry-after")
    assert pool.summary("a")["cooldown_until"] == clock.now + 7.0


def test_a_shorter_cooldown_does_not_cut_a_longer_one():
    pool = make_pool("a")
    pool.cooldown("a", 300, "long")
    pool.cooldown("a", 5, "short")
    assert pool.summary("a")["cooldown_until"] == T0 + 300


def test_cooldown_without_strike_does_not_escalate():
    pool = make_pool("a", cooldown_seconds=10)
    pool.cooldown("a", 30, "refresh", strike=False)
    assert pool.cooldown("a", None, "429") == 10


def test_park_until_a_date():
    clock = FakeClock()
    pool = make_pool("a", "b", clock=clock)
    pool.park("a", T0 + 86_400, "MONTHLY_REQUEST_COUNT")
    summary = pool.summary("a")
    assert (summary["state"], summary["exhausted_until"], summary["reason"]) == (
        "exhausted", T0 + 86_400, "MONTHLY_REQUEST_COUNT")
    clock.advance(86_399)
    assert picks(pool, 2) == ["b", "b"]
    clock.advance(1)
    assert pool.summary("a")["state"] == "active"
    assert sorted(picks(pool, 2)) == ["a", "b"]


@pytest.mark.parametrize("damage", [
    lambda pool: pool.suspend("a", "suspended"),
    lambda pool: pool.mark_unhealthy("a", "dead"),
    lambda pool: pool.park("a", T0 + 10**6, "quota"),
    lambda pool: pool.cooldown("a", 10**6, "429"),
])
def test_restore_makes_an_account_usable_again(damage):
    pool = make_pool("a", cooldown_seconds=10)
    damage(pool)
    pool.restore("a")
    summary = pool.summary("a")
    assert (summary["state"], summary["reason"]) == ("active", "")
    assert picks(pool, 1) == ["a"]
    assert pool.cooldown("a", None, "429") == 10  # strikes reset too


def test_toggle_enabled():
    pool = make_pool("a", "b")
    pool.set_enabled("a", False)
    assert pool.summary("a")["enabled"] is False
    assert picks(pool, 2) == ["b", "b"]
    pool.set_enabled("a", True)
    assert pool.summary("a")["state"] == "active"
    assert "a" in picks(pool, 2)


def test_toggle_and_restore_of_unknown_account_raise_not_found():
    pool = make_pool("a")
    with pytest.raises(NotFound):
        pool.set_enabled("zzz", False)
    with pytest.raises(NotFound):
        pool.restore("zzz")
    with pytest.raises(NotFound):
        pool.creds("zzz")


def test_state_changes_are_announced():
    pool = make_pool("a")
    seen = []
    pool.on_change(lambda *args: seen.append(args))
    pool.cooldown("a", 5, "slow down")
    pool.suspend("a", "locked")
    assert [(s[0], s[1]) for s in seen] == [("a", "cooldown"), ("a", "suspended")]
    assert "slow down" in seen[0][2] and seen[1][2] == "locked"


# ----- stickiness, concurrency, pacing -----------------------------------------------------------

def test_session_key_sticks_to_its_account():
    pool = make_pool("a", "b", "c")
    assert picks(pool, 1, session_key="s1") == ["a"]
    assert picks(pool, 1) == ["b"]
    assert picks(pool, 1, session_key="s2") == ["c"]
    assert picks(pool, 3, session_key="s1") == ["a", "a", "a"]
    assert picks(pool, 2, session_key="s2") == ["c", "c"]


def test_sticky_session_moves_on_when_its_account_is_cooling_and_stays_moved():
    clock = FakeClock()
    pool = make_pool("a", "b", "c", clock=clock)
    assert picks(pool, 1, session_key="s") == ["a"]
    pool.cooldown("a", 10, "429")
    moved = picks(pool, 1, session_key="s")[0]
    assert moved != "a"
    clock.advance(11)
    assert picks(pool, 2, session_key="s") == [moved, moved]


def test_without_stickiness_session_keys_are_ignored():
    pool = make_pool("a", "b", sticky=False)
    assert picks(pool, 3, session_key="s") == ["a", "b", "a"]


def test_concurrency_cap():
    pool = make_pool("a", "b", max_concurrency=1)
    first, second = pool.lease(), pool.lease()
    assert {first.account_id, second.account_id} == {"a", "b"}
    with pytest.raises(RateLimited) as caught:
        pool.lease()
    assert caught.value.retry_after == 1.0
    first.release()
    assert pool.lease().account_id == first.account_id



def test_a_request_over_the_cap_queues_until_a_slot_frees():
    pool = make_pool("a", max_concurrency=1, concurrency_wait=30.0)
    holder = pool.lease()
    got: List[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.lease().account_id))
    waiter.start()
    # The waiter is parked on the condition: nothing was handed out while the slot is taken.
    deadline = time.monotonic() + 5
    while pool._slot_freed._waiters.__len__() == 0 and time.monotonic() < deadline:  # noqa: SLF001
        threading.Event().wait(0.005)
    assert got == [] and waiter.is_alive()
    holder.release()
    waiter.join(5)
    assert got == ["a"] and pool.summary("a")["in_flight"] == 1


def test_queueing_gives_up_after_the_wait_with_a_429():
    pool = make_pool("a", max_concurrency=1, concurrency_wait=0.05)
    pool.lease()
    started = time.monotonic()
    with pytest.raises(RateLimited):
        pool.lease()
    assert time.monotonic() - started >= 0.05


def test_no_queueing_when_no_account_is_usable_at_all():
    pool = make_pool("a", max_concurrency=1, concurrency_wait=30.0)
    pool.lease()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        pool.lease(exclude=["a"])  # nothing to wait for: every account was already tried
    assert time.monotonic() - started < 1.0

def test_release_is_idempotent():
    pool = make_pool("a", max_concurrency=1)
    lease = pool.lease()
    lease.release()
    other_holder = pool.lease()
    lease.release()  # must not free the other holder's slot
    with pytest.raises(RateLimited):
        pool.lease()
    other_holder.release()
    assert pool.summary("a")["in_flight"] == 0


def test_minimum_interval_makes_the_next_lease_wait():
    clock = FakeClock()
    pool = make_pool("a", clock=clock, min_interval=2.0)
    assert pool.lease().wait == 0.0
    assert pool.lease().wait == 2.0
    assert pool.lease().wait == 4.0  # queued behind the previous start
    clock.advance(10)
    assert pool.lease().wait == 0.0


def test_minimum_interval_prefers_rested_accounts():
    clock = FakeClock()
    pool = make_pool("a", "b", clock=clock, min_interval=5.0)
    first, second = pool.lease(), pool.lease()
    assert (first.wait, second.wait) == (0.0, 0.0)
    assert {first.account_id, second.account_id} == {"a", "b"}
    clock.advance(1)
    third = pool.lease()
    assert third.wait == 4.0


def test_minimum_interval_partially_elapsed():
    clock = FakeClock()
    pool = make_pool("a", clock=clock, min_interval=3.0)
    pool.lease().release()
    clock.advance(1.0)
    assert pool.lease().wait == 2.0


# ----- nothing available -------------------------------------------------------------------------

def test_no_accounts_is_unavailable_503():
    with pytest.raises(Unavailable) as caught:
        make_pool().lease()
    assert caught.value.status == 503


def test_all_cooling_is_rate_limited_with_the_soonest_retry():
    pool = make_pool("a", "b")
    pool.cooldown("a", 30, "429")
    pool.cooldown("b", 12, "429")
    with pytest.raises(RateLimited) as caught:
        pool.lease()
    assert caught.value.status == 429
    assert caught.value.retry_after == 12


def test_all_exhausted_is_quota_exhausted():
    pool = make_pool("a", "b")
    pool.park("a", T0 + 500, "quota")
    pool.park("b", T0 + 100, "quota")
    with pytest.raises(QuotaExhausted) as caught:
        pool.lease()
    assert caught.value.retry_after == 100


def test_all_disabled_is_unavailable_with_reasons():
    pool = make_pool("a", "b", "c")
    pool.set_enabled("a", False)
    pool.suspend("b", "TEMPORARILY_SUSPENDED")
    pool.mark_unhealthy("c", "invalid_grant")
    with pytest.raises(Unavailable) as caught:
        pool.lease()
    message = caught.value.message
    assert caught.value.status == 503
    for text in ("account a: disabled", "account b: suspended", "TEMPORARILY_SUSPENDED", "account c: unhealthy",
                 "invalid_grant"):
        assert text in message


def test_every_account_excluded_is_unavailable():
    pool = make_pool("a", "b")
    with pytest.raises(Unavailable):
        pool.lease(exclude=["a", "b"])


# ----- membership --------------------------------------------------------------------------------

def test_add_with_the_same_refresh_token_updates_instead_of_duplicating():
    pool = make_pool("a")
    original = pool.creds("a")
    same = creds("other-id", refresh_token=original.refresh_token, access_token="fresh-access",
                 machine_id="0" * 64)
    stored = pool.add(same)
    assert pool.ids() == ["a"]
    assert stored.id == "a"
    assert pool.creds("a").access_token == "fresh-access"
    assert pool.creds("a").machine_id == original.machine_id


def test_add_with_the_same_source_file_updates():
    pool = AccountPool(clock=FakeClock())
    pool.add(creds("a", source_path="/home/u/.aws/sso/cache/kiro-auth-token.json"))
    pool.add(creds("b", source_path="/home/u/.aws/sso/cache/kiro-auth-token.json"))
    assert pool.ids() == ["a"]
    assert pool.creds("a").access_token == "access-b-SECRET"


def test_re_adding_an_unhealthy_account_revives_it():
    pool = make_pool("a")
    pool.mark_unhealthy("a", "invalid_grant")
    pool.add(creds("a", access_token="new"))
    assert pool.summary("a")["state"] == "active"


def test_adding_again_keeps_the_user_fields_unless_named():
    pool = AccountPool(clock=FakeClock())
    pool.add(creds("a", name="primary", proxy_url="http://p:1", source_path="/t.json"))
    again = creds("other-id", refresh_token=refresh_token("aSECRET"), access_token="fresh", name="Google")
    stored = pool.add(again)
    assert (stored.id, stored.access_token) == ("a", "fresh")
    assert (stored.name, stored.proxy_url, stored.source_path) == ("primary", "http://p:1", "/t.json")
    assert pool.add(again, explicit={"name"}).name == "Google"


def test_the_same_source_file_with_another_identity_is_another_account():
    pool = AccountPool(clock=FakeClock())
    pool.add(creds("a", provider="Google", source_path="/t.json"))
    other = creds("b", provider="Github", source_path="/t.json")
    assert pool.match(other) is None
    assert pool.add(other).id == "b" and pool.ids() == ["a", "b"]
    assert pool.creds("a").access_token == "access-a-SECRET"


def test_match_prefers_the_refresh_token_over_the_source_file():
    pool = AccountPool(clock=FakeClock())
    pool.add(creds("a", source_path="/t.json"))
    pool.add(creds("b"))
    assert pool.match(creds("x", refresh_token=refresh_token("bSECRET"), source_path="/t.json")).id == "b"


def test_coming_back_from_unhealthy_is_announced():
    pool = make_pool("a", "b")
    seen = []
    pool.on_change(lambda *args: seen.append(args[:2]))
    pool.mark_unhealthy("a", "dead")
    pool.mark_unhealthy("b", "dead")
    pool.update_creds("a", lambda c: c.with_tokens("new", None, T0 + 7200))
    pool.add(creds("b", access_token="pasted"))
    pool.update_creds("a", lambda c: c.with_tokens("newer", None, T0 + 7200))  # already active: no news
    assert seen == [("a", "unhealthy"), ("b", "unhealthy"), ("a", "active"), ("b", "active")]


def test_record_and_put_back_undo_changes():
    pool = make_pool("a")
    before = pool.record("a")
    pool.update_creds("a", lambda c: c.with_tokens("changed", refresh_token("changed"), T0 + 1))
    pool.set_enabled("a", False)
    pool.put_back(before)
    assert pool.creds("a") == creds("a") and pool.summary("a")["enabled"] is True
    pool.put_back({**before, "id": "gone"})  # an account removed meanwhile stays removed
    assert pool.ids() == ["a"]


def test_infinite_values_on_disk_read_as_unknown(tmp_path):
    path = tmp_path / "accounts.json"
    record = {**creds("a").to_record(), "expires_at": float("inf"), "cooldown_until": float("nan")}
    path.write_text(json.dumps({"_default": {"1": record}}))
    pool = AccountPool(JsonDB(path), clock=FakeClock())
    summary = pool.summary("a")
    assert summary["expires_at"] == 0.0 and summary["token_expires_at"] is None
    assert summary["state"] == "active"
    json.dumps(pool.summaries(), allow_nan=False)


def test_remove_forgets_the_account_and_its_sessions():
    pool = make_pool("a", "b")
    picks(pool, 1, session_key="s")
    assert pool.remove("a") is True
    assert pool.remove("a") is False
    assert pool.ids() == ["b"]
    assert picks(pool, 2, session_key="s") == ["b", "b"]


def test_update_creds_rotates_tokens_and_revives_unhealthy():
    pool = make_pool("a")
    pool.mark_unhealthy("a", "dead")
    updated = pool.update_creds("a", lambda c: c.with_tokens("rotated", None, T0 + 7200))
    assert updated.access_token == "rotated" and pool.creds("a").access_token == "rotated"
    assert pool.summary("a")["state"] == "active"
    assert pool.update_creds("missing", lambda c: c) is None


def test_find():
    pool = make_pool("a", "b")
    assert pool.find(lambda c: c.name == "B").id == "b"
    assert pool.find(lambda c: False) is None


# ----- persistence -------------------------------------------------------------------------------

def test_persistence_round_trip(tmp_path):
    path = tmp_path / "accounts.json"
    clock = FakeClock()
    pool = AccountPool(JsonDB(path), clock=clock, cooldown_seconds=10)
    for tag in ("a", "b", "c", "d"):
        pool.add(creds(tag))
    pool.cooldown("a", None, "429")
    pool.park("b", T0 + 999, "MONTHLY_REQUEST_COUNT")
    pool.set_enabled("c", False)
    pool.update_creds("d", lambda c: c.with_tokens("access-d2", refresh_token("d2"), T0 + 5000))
    pool.record_success("d")
    pool.record_error("d", "boom")
    pool.flush()

    again = AccountPool(JsonDB(path), clock=clock, cooldown_seconds=10)
    assert again.ids() == ["a", "b", "c", "d"]
    states = {s["id"]: s["state"] for s in again.summaries()}
    assert states == {"a": "cooldown", "b": "exhausted", "c": "disabled", "d": "active"}
    assert again.summary("a")["cooldown_until"] == T0 + 10
    assert again.summary("b")["exhausted_until"] == T0 + 999
    assert again.cooldown("a", None, "429") == 20  # strikes survived
    d = again.creds("d")
    assert (d.access_token, d.refresh_token, d.expires_at) == ("access-d2", refresh_token("d2"), T0 + 5000)
    assert again.creds("a") == pool.creds("a")
    summary = again.summary("d")
    assert (summary["requests"], summary["errors"], summary["last_error"]) == (2, 1, "boom")
    assert summary["in_flight"] == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_removal_is_persisted(tmp_path):
    path = tmp_path / "accounts.json"
    pool = AccountPool(JsonDB(path), clock=FakeClock())
    pool.add(creds("a"))
    pool.add(creds("b"))
    pool.remove("a")
    assert AccountPool(JsonDB(path), clock=FakeClock()).ids() == ["b"]


def test_summaries_never_contain_token_values(tmp_path):
    pool = AccountPool(JsonDB(tmp_path / "accounts.json"), clock=FakeClock())
    pool.add(creds("a", auth_method="idc", client_id="cid", client_secret="client-SECRET-value"))
    pool.add(creds("b"))
    pool.cooldown("b", 5, "429")
    summaries = pool.summaries()
    assert "SECRET" not in json.dumps(summaries)
    for summary in summaries:
        assert not {"access_token", "refresh_token", "client_secret"} & set(summary)


# ----- hammer ------------------------------------------------------------------------------------

class TickingClock:
    """Thread-safe clock that moves forward a millisecond on every reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = T0

    def __call__(self) -> float:
        with self._lock:
            self.now += 0.001
            return self.now


def test_hammer_32_threads(tmp_path):
    pool = AccountPool(JsonDB(tmp_path / "accounts.json"), clock=TickingClock(), cooldown_seconds=0.01,
                       max_cooldown_seconds=0.05, max_concurrency=3)
    for tag in "abcdef":
        pool.add(creds(tag))
    start = threading.Barrier(32)
    failures = []
    leased = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait(timeout=10)
            for _ in range(60):
                try:
                    lease = pool.lease(session_key=rng.choice([None, "s1", "s2"]))
                except (RateLimited, QuotaExhausted, Unavailable):
                    continue
                leased.append(lease.account_id)
                with lease:
                    roll = rng.random()
                    if roll < 0.4:
                        pool.record_success(lease.account_id)
                    elif roll < 0.6:
                        pool.cooldown(lease.account_id, None if rng.random() < 0.5 else 0.02, "429")
                    elif roll < 0.7:
                        pool.record_error(lease.account_id, "boom")
                    elif roll < 0.75:
                        pool.restore(lease.account_id)
                    pool.summaries()
        except Exception as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(leased) > 100
    assert all(summary["in_flight"] == 0 for summary in pool.summaries())


def test_lease_errors_are_proxy_errors():
    with pytest.raises(ProxyError):
        make_pool().lease()
