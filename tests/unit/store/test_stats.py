"""Tests for store.stats: counters since start and all time, hourly buckets, persistence, damage."""
from __future__ import annotations

import json
import os
import stat
from typing import Any, Dict

import pytest

from kiroproxy.store.stats import HOURS_KEPT, MAX_KEYS, OTHER, Stats

HOUR = 3600.0
NOW = 1_700_002_800.0  # 2023-11-14 23:00:00 UTC, on an hour boundary


class FakeClock:
    def __init__(self, now: float = NOW + 600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(at: float = NOW, **changes: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {"received_at": at, "protocol": "anthropic", "model": "claude-sonnet-4.5",
                            "requested_model": "claude-sonnet-4-5", "account_id": "acc-1", "error": None,
                            "error_kind": None, "input_tokens": 10, "output_tokens": 4}
    base.update(changes)
    return base


def failed(kind: str = "upstream", **changes: Any) -> Dict[str, Any]:
    return entry(error={"kind": kind, "message": "x"}, error_kind=kind, input_tokens=0, output_tokens=0, **changes)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "stats.json"


def test_record_and_summary(path, clock):
    stats = Stats(path, clock)
    stats.record(entry())
    stats.record(entry(protocol="openai", input_tokens=None, output_tokens=None))
    stats.record(failed())
    summary = stats.summary()
    expected = {"requests": 3, "errors": 1, "input_tokens": 10, "output_tokens": 4,  # unknown usage counts 0
                "by_protocol": {"anthropic": {"requests": 2, "errors": 1, "input_tokens": 10, "output_tokens": 4},
                                "openai": {"requests": 1, "errors": 0, "input_tokens": 0, "output_tokens": 0}}}
    assert summary["since_start"] == expected and summary["all_time"] == expected
    assert summary["started_at"] == NOW + 600


def test_detailed_groups_hours_and_errors_by_kind(path, clock):
    stats = Stats(path, clock)
    stats.record(entry(at=NOW + 5))                               # this hour
    stats.record(entry(at=NOW - 1, account_id="acc-2", model=""))  # the hour before
    stats.record(entry(at=NOW - 23 * HOUR))                       # the oldest hour shown
    stats.record(entry(at=NOW - 24 * HOUR))                       # too old for the 24 h series
    stats.record(failed("rate_limit", at=NOW + 10))
    stats.record(failed("rate_limit", at=NOW + 11))
    stats.record(failed(None, at=NOW + 12, account_id=None))
    detailed = stats.detailed()
    hourly = detailed["hourly"]
    assert len(hourly) == 24
    assert [h["hour"] for h in hourly] == [int(NOW - (23 - n) * HOUR) for n in range(24)]
    assert hourly[-1]["requests"] == 4 and hourly[-1]["errors"] == 3
    assert hourly[-2]["requests"] == 1 and hourly[0]["requests"] == 1
    assert sum(h["requests"] for h in hourly) == 6
    assert detailed["errors_by_kind"] == {"rate_limit": 2, "unknown": 1}
    assert detailed["by_account"]["acc-2"]["requests"] == 1 and detailed["by_account"][""]["requests"] == 1
    assert detailed["by_account"]["acc-1"] == {"requests": 5, "errors": 2, "input_tokens": 30, "output_tokens": 12}
    assert detailed["by_model"][OTHER]["requests"] == 1  # no upstream model: a name nobody serves
    assert detailed["by_protocol"]["anthropic"]["requests"] == 7
    assert detailed["all_time"]["requests"] == detailed["since_start"]["requests"] == 7


def test_an_entry_without_a_time_counts_now(path, clock):
    stats = Stats(path, clock)
    stats.record(entry(at=None))
    assert stats.detailed()["hourly"][-1]["requests"] == 1


def test_views_are_copies(path, clock):
    stats = Stats(path, clock)
    stats.record(entry())
    stats.detailed()["by_account"]["acc-1"]["requests"] = 99
    stats.summary()["all_time"]["by_protocol"]["anthropic"]["requests"] = 99
    assert stats.detailed()["by_account"]["acc-1"]["requests"] == 1
    assert stats.summary()["all_time"]["by_protocol"]["anthropic"]["requests"] == 1


def test_save_and_reload_keep_all_time_but_not_since_start(path, clock):
    stats = Stats(path, clock)
    for _ in range(3):
        stats.record(entry())
    stats.record(failed("overloaded"))
    stats.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Stats(path, clock)
    assert again.summary()["since_start"]["requests"] == 0
    assert again.summary()["all_time"]["requests"] == 4
    assert again.detailed()["errors_by_kind"] == {"overloaded": 1}
    assert again.detailed()["hourly"][-1]["requests"] == 4
    again.record(entry())
    assert again.summary()["all_time"]["requests"] == 5 and again.summary()["since_start"]["requests"] == 1


def test_save_without_changes_writes_nothing(path, clock):
    stats = Stats(path, clock)
    stats.save()
    assert not path.exists()
    stats.record(entry())
    stats.save()
    path.unlink()
    stats.save()
    assert not path.exists()


def test_old_hours_are_pruned_when_saving(path, clock):
    stats = Stats(path, clock)
    stats.record(entry(at=NOW - HOURS_KEPT * HOUR))        # the oldest hour kept
    stats.record(entry(at=NOW - (HOURS_KEPT + 1) * HOUR))  # one hour too old
    stats.save()
    hours = json.loads(path.read_text())["hourly"]
    assert sorted(hours) == [str(int(NOW - HOURS_KEPT * HOUR))]
    assert json.loads(path.read_text())["requests"] == 2  # pruning drops buckets, never totals
    clock.now += HOUR
    stats.record(entry(at=clock.now))
    stats.save()
    assert sorted(json.loads(path.read_text())["hourly"]) == [str(int(NOW + HOUR))]


@pytest.mark.parametrize("damage", [b'{"requests": 3, "hourly": {', b"[1, 2]", b'{"something": 1}', b"\xff\xfe", b"",
                                    b'{"requests": "3"}', b'{"requests": 3, "hourly": []}'])
def test_a_damaged_file_is_moved_aside_and_counting_restarts(path, clock, damage):
    path.write_bytes(damage)
    stats = Stats(path, clock)
    assert stats.summary()["all_time"]["requests"] == 0
    (aside,) = path.parent.glob("stats.json.corrupt-*")
    assert aside.read_bytes() == damage and not path.exists()
    stats.record(entry())
    stats.save()
    assert Stats(path, clock).summary()["all_time"]["requests"] == 1


def test_many_distinct_model_and_account_names_keep_the_stats_bounded(path, clock):
    """Every unserved model name a client sends folds into one key; served models and accounts
    beyond MAX_KEYS fold into it too, so neither the file nor the views grow with what clients send."""
    stats = Stats(path, clock)
    for n in range(1000):
        stats.record(entry(model="", requested_model=f"{n:04d}" + "m" * 2000, error={"kind": "model_not_found"},
                           error_kind=f"kind-{n}"))
        stats.record(entry(model=f"served-{n}", account_id=f"acc-{n}"))
    stats.save()
    detailed = stats.detailed()
    for group in ("by_model", "by_account", "errors_by_kind"):
        assert len(detailed[group]) <= MAX_KEYS
    assert detailed["by_model"][OTHER]["requests"] == 2000 - (MAX_KEYS - 1)
    assert sum(v["requests"] for v in detailed["by_model"].values()) == 2000
    assert sum(v["requests"] for v in detailed["by_account"].values()) == 2000
    assert path.stat().st_size < 100_000
    assert len(json.dumps(detailed)) < 100_000
    assert Stats(path, clock).detailed()["by_model"] == detailed["by_model"]


def test_a_file_with_more_keys_than_the_bound_is_folded_on_load(path, clock):
    groups = {f"m{n}": {"requests": n, "errors": 0, "input_tokens": 1, "output_tokens": 1} for n in range(500)}
    path.write_text(json.dumps({"requests": 5, "by_model": groups, "by_account": {}, "by_protocol": {},
                                "errors_by_kind": {f"k{n}": n for n in range(500)}, "hourly": {}}))
    detailed = Stats(path, clock).detailed()
    assert len(detailed["by_model"]) == MAX_KEYS and "m499" in detailed["by_model"]
    assert sum(v["requests"] for v in detailed["by_model"].values()) == sum(range(500))
    assert len(detailed["errors_by_kind"]) == MAX_KEYS


def test_damaged_keys_inside_the_file_are_skipped(path, clock):
    good = {"requests": 2, "errors": 0, "input_tokens": 1, "output_tokens": 1}
    path.write_text(json.dumps({"requests": 2, "by_model": {"ok": good, "bad": [1], "worse": {"requests": "x"}},
                                "by_account": {"\ud800": good}, "by_protocol": {}, "errors_by_kind": {"e": "x"},
                                "hourly": {"not an hour": good, str(int(NOW)): good}}))
    stats = Stats(path, clock)
    detailed = stats.detailed()
    assert list(detailed["by_model"]) == ["ok"] and list(detailed["by_account"]) == ["\ufffd"]
    assert detailed["errors_by_kind"] == {}
    stats.record(entry())  # counting goes on
    stats.save()
    json.loads(path.read_bytes().decode("utf-8"))
