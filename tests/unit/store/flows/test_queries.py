"""Tests for store.flows.queries: Filter, filter_from, paging, the budgeted text scan, percentiles, summarize."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

from kiroproxy.errors import BadRequest
from kiroproxy.store.flows.queries import (
    MAX_LIMIT,
    Budget,
    Filter,
    filter_from,
    paging,
    percentiles,
    scan,
    summarize,
    text_matches,
)


def entry(**changes: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "id": "a" * 32, "seq": 1, "protocol": "anthropic", "requested_model": "claude-sonnet-4-5",
        "model": "claude-sonnet-4.5", "account_id": "acc-1", "account_name": "primary", "state": "completed",
        "error": None, "bookmarked": False, "tags": ["bug"], "received_at": 1000.0,
        "ttfb_ms": 100.0, "duration_ms": 1000.0,
        "input_tokens": 10, "output_tokens": 5,
    }
    base.update(changes)
    return base


# ----- Filter.matches ----------------------------------------------------------------------------

@pytest.mark.parametrize("flt, hit", [
    (Filter(), True),
    (Filter(protocol="anthropic"), True), (Filter(protocol="openai"), False),
    (Filter(model="claude-sonnet-4-5"), True), (Filter(model="claude-sonnet-4.5"), True),
    (Filter(model="claude"), False),
    (Filter(account="acc-1"), True), (Filter(account="primary"), True), (Filter(account="acc"), False),
    (Filter(state="completed"), True), (Filter(state="error"), False),
    (Filter(has_error=False), True), (Filter(has_error=True), False),
    (Filter(bookmarked=False), True), (Filter(bookmarked=True), False),
    (Filter(tag="bug"), True), (Filter(tag="bu"), False),
    (Filter(since=1000.0), True), (Filter(since=1000.5), False),
    (Filter(until=1000.0), True), (Filter(until=999.5), False),
    (Filter(q="anything at all"), True),  # q needs the flow's text: see scan()
    (Filter(ids=("a" * 32, "b" * 32)), True), (Filter(ids=("b" * 32,)), False), (Filter(ids=()), False),
    (Filter(protocol="anthropic", state="error"), False),
])
def test_filter_matches_each_field(flt, hit):
    assert flt.matches(entry()) is hit


def test_words_are_lowercased_and_split_on_any_whitespace():
    assert Filter(q="  Zebras\tSLEEP\nstanding ").words == ("zebras", "sleep", "standing")
    assert Filter().words == () and Filter(q="").words == ()


@pytest.mark.parametrize("words, hit", [(("zebras",), True), (("standing", "zebras"), True),
                                        (("zebras", "lions"), False), ((), True)])
def test_text_matches_needs_every_word(words, hit):
    assert text_matches(words, "how do zebras sleep\nstanding up") is hit


def test_text_matches_nothing_when_the_text_is_unreadable():
    assert not text_matches(("x",), None)


def test_error_and_bookmark_filters_on_the_other_side():
    failed = entry(error={"kind": "upstream", "message": "x"}, bookmarked=True, state="error")
    assert Filter(has_error=True).matches(failed) and not Filter(has_error=False).matches(failed)
    assert Filter(bookmarked=True).matches(failed) and not Filter(bookmarked=False).matches(failed)


def test_missing_fields_do_not_crash_matching():
    bare = {"id": "c" * 32}
    assert Filter().matches(bare)
    assert not Filter(tag="x").matches(bare) and Filter(q="x").matches(bare)
    assert Filter(until=0.0).matches(bare) and not Filter(since=1.0).matches(bare)


# ----- filter_from -------------------------------------------------------------------------------

def test_filter_from_query_parameters():
    flt = filter_from({"protocol": "openai", "model": "gpt-4o", "account": "acc-1", "state": "error",
                       "has_error": "true", "bookmarked": "0", "tag": "bug", "since": "10", "until": "20.5",
                       "q": "hello", "limit": "5", "offset": "1", "cursor": "9", "format": "json",
                       "include_bodies": "false"})
    assert flt == Filter(protocol="openai", model="gpt-4o", account="acc-1", state="error", has_error=True,
                         bookmarked=False, tag="bug", since=10.0, until=20.5, q="hello")


def test_filter_from_a_json_body():
    flt = filter_from({"has_error": False, "bookmarked": True, "since": 5, "ids": ["a", "b"], "state": ""})
    assert flt == Filter(has_error=False, bookmarked=True, since=5.0, ids=("a", "b"))


@pytest.mark.parametrize("value, expected", [
    ("1700000000", 1_700_000_000.0), ("1700000000.5", 1_700_000_000.5), (1_700_000_000, 1_700_000_000.0),
    ("2023-11-14T22:13:20Z", 1_700_000_000.0), ("2023-11-14T22:13:20z", 1_700_000_000.0),
    ("2023-11-14T22:13:20.250Z", 1_700_000_000.25), ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
    ("2023-11-14T22:13:20", 1_700_000_000.0), ("2023-11-14", 1_699_920_000.0),
    (" 2023-11-14T22:13:20Z ", 1_700_000_000.0),
])
def test_times_are_epoch_seconds_or_iso_8601(value, expected):
    assert filter_from({"since": value}).since == expected
    assert filter_from({"until": value}).until == expected


@pytest.mark.parametrize("value", ["yesterday", "2023-13-01", "2023-11-14T25:00:00Z", "Z", True])
def test_bad_times_name_the_parameter(value):
    with pytest.raises(BadRequest) as raised:
        filter_from({"since": value})
    assert raised.value.param == "since" and "ISO-8601" in raised.value.message


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("TRUE", True), ("no", False),
                                             ("False", False), ("", None), (None, None)])
def test_boolean_spellings(value, expected):
    assert filter_from({"has_error": value}).has_error is expected


@pytest.mark.parametrize("args, param", [
    ({"has_error": "maybe"}, "has_error"), ({"bookmarked": "2"}, "bookmarked"),
    ({"since": "yesterday"}, "since"), ({"until": "soon"}, "until"),
    ({"ids": "a,b"}, "ids"), ({"ids": ["a", 1]}, "ids"),
])
def test_bad_values_name_the_parameter(args, param):
    with pytest.raises(BadRequest) as raised:
        filter_from(args)
    assert raised.value.param == param and param in raised.value.message


def test_unknown_filters_are_named():
    with pytest.raises(BadRequest) as raised:
        filter_from({"colour": "red", "protocol": "openai", "size": "1"})
    assert "colour" in raised.value.message and "size" in raised.value.message
    assert "protocol" not in raised.value.message


# ----- paging ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    ({}, (50, 0, None)),
    ({"limit": "10", "offset": "20", "cursor": "7"}, (10, 20, 7)),
    ({"limit": 499}, (499, 0, None)),
    ({"limit": str(MAX_LIMIT)}, (500, 0, None)),
    ({"limit": "100000"}, (500, 0, None)),
    ({"limit": "", "offset": "", "cursor": ""}, (50, 0, None)),
    ({"cursor": "0"}, (50, 0, 0)),
])
def test_paging_bounds(args, expected):
    assert paging(args) == expected


@pytest.mark.parametrize("args, param", [
    ({"limit": "ten"}, "limit"), ({"offset": "-1"}, "offset"), ({"limit": "-5"}, "limit"),
    ({"cursor": "1.5"}, "cursor"), ({"offset": [1]}, "offset"), ({"limit": "0"}, "limit"), ({"limit": 0}, "limit"),
])
def test_bad_paging_names_the_parameter(args, param):
    with pytest.raises(BadRequest) as raised:
        paging(args)
    assert raised.value.param == param


# ----- scan --------------------------------------------------------------------------------------

class Texts:
    """text_of for scan(): texts by candidate, each costing its length; records what was read."""

    def __init__(self, texts: Dict[int, Optional[str]]) -> None:
        self.texts = texts
        self.read: List[int] = []

    def __call__(self, candidate: int) -> Tuple[Optional[str], int]:
        self.read.append(candidate)
        text = self.texts[candidate]
        return text, len(text or "")


class StepClock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


TEXTS = {5: "red fox", 4: "blue fox", 3: "red hen", 2: None, 1: "red fox again"}
NEWEST_FIRST = [5, 4, 3, 2, 1]


def test_scan_reads_until_enough_matches():
    texts = Texts(TEXTS)
    found = scan(NEWEST_FIRST, ("red",), 2, texts, Budget())
    assert found.matched == [5, 3] and texts.read == [5, 4, 3]
    assert (found.examined, found.last, found.complete, found.partial) == (3, 3, False, False)


def test_scan_of_everything_is_complete():
    found = scan(NEWEST_FIRST, ("red", "fox"), 10, Texts(TEXTS), Budget())
    assert found.matched == [5, 1] and (found.examined, found.last, found.complete, found.partial) == (
        5, 1, True, False)


def test_scan_stops_when_the_byte_budget_is_spent():
    texts = Texts(TEXTS)
    found = scan(NEWEST_FIRST, ("red",), 10, texts, Budget(seconds=60, bytes=15))
    assert texts.read == [5, 4]  # 7 + 8 bytes: the budget is spent after the second
    assert found.matched == [5] and (found.last, found.complete, found.partial) == (4, False, True)


def test_scan_stops_when_the_time_budget_is_spent():
    found = scan(NEWEST_FIRST, ("fox",), 10, Texts(TEXTS), Budget(seconds=2.5, bytes=10**9), clock=StepClock(1.0))
    assert found.partial and found.examined == 3 and found.matched == [5, 4]  # read at t=2 and t=3, not t=4


def test_scan_always_reads_at_least_one_candidate():
    found = scan(NEWEST_FIRST, ("fox",), 10, Texts(TEXTS), Budget(seconds=0, bytes=0))
    assert found.examined == 1 and found.matched == [5] and found.partial


def test_scan_of_no_candidates():
    found = scan([], ("x",), 5, Texts({}), Budget())
    assert found.matched == [] and found.last is None and found.complete and not found.partial


# ----- percentiles and summarize -----------------------------------------------------------------

def test_percentiles_of_known_vectors():
    assert percentiles(range(1, 101)) == {"p50": 50.5, "p90": 90.1, "p99": 99.01}
    assert percentiles([1, 2, 3, 4]) == {"p50": 2.5, "p90": 3.7, "p99": 3.97}
    assert percentiles([4, None, 1, 3, 2], points=(0, 25, 100)) == {"p0": 1, "p25": 1.75, "p100": 4}
    assert percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    assert percentiles([None, None]) == {"p50": None, "p90": None, "p99": None}
    assert percentiles([0.001, 0.002], points=(50,)) == {"p50": 0.0}  # two decimals


def test_summarize_counts_and_rates():
    entries = [
        entry(ttfb_ms=100.0, duration_ms=1000.0),
        entry(ttfb_ms=300.0, duration_ms=3000.0, protocol="openai", model="", requested_model="gpt-4o",
              account_id=None, input_tokens=None),
        entry(state="error", error={"kind": "upstream"}, ttfb_ms=None, duration_ms=500.0, output_tokens=7),
        entry(state="streaming", ttfb_ms=50.0, duration_ms=None, input_tokens=3, output_tokens=0),
    ]
    summary = summarize(entries)
    assert summary["total"] == 4
    assert summary["by_state"] == {"completed": 2, "error": 1, "streaming": 1}
    assert summary["by_protocol"] == {"anthropic": 3, "openai": 1}
    assert summary["by_model"] == {"claude-sonnet-4.5": 3, "gpt-4o": 1}
    assert summary["by_account"] == {"acc-1": 3, "": 1}
    assert summary["errors"] == 1 and summary["error_rate"] == pytest.approx(0.3333)
    assert summary["ttfb_ms"] == {"p50": 200.0, "p90": 280.0, "p99": 298.0}  # in-flight flows left out
    assert summary["duration_ms"]["p50"] == 1000.0
    assert summary["tokens"] == {"input": 23, "output": 17}


def test_summarize_nothing():
    summary = summarize([])
    assert summary["total"] == 0 and summary["error_rate"] == 0.0 and summary["ttfb_ms"]["p50"] is None
    assert summarize([entry(state="pending")])["error_rate"] == 0.0
