"""The relay's policy, driven with a scripted fake Kiro client, a real account pool, a fake
refresher and the injectable clock and sleep: which account serves, what happens to the ones
that failed, and what the client gets. No network, no real waiting."""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, Iterator, List, Optional

import pytest

from kiroproxy import chat
from kiroproxy.accounts.credentials import Credentials, from_token_file
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.errors import ProxyError, TooLarge, UpstreamTimeout
from kiroproxy.exchange import Exchange
from kiroproxy.kiro import errors as kiro_errors
from kiroproxy.kiro.auth import RefreshError
from kiroproxy.kiro.errors import KiroFailure
from kiroproxy.kiro.models import Catalog
from kiroproxy.relay import Relay
from tests import factories

NOW = 1_780_000_000.0  # 2026-05-28, mid-month


def answer(text: str = "hello") -> List[chat.Event]:
    return [chat.TextDelta(text), chat.Usage(output_tokens=2), chat.Finish("end_turn")]


def failure(status: int, message: str = "nope", retry_after: Optional[str] = None) -> KiroFailure:
    return kiro_errors.classify(status, json.dumps({"message": message}), retry_after)


class FakeStream:
    """What KiroClient.open() returns: lazy events, close(), abort()."""

    def __init__(self, events: Iterator[chat.Event]) -> None:
        self._events = events
        self.closed = False

    def __iter__(self) -> Iterator[chat.Event]:
        return self._events

    def close(self) -> None:
        self.closed = True
        self._events.close()  # type: ignore[attr-defined]

    def abort(self) -> None:
        self.closed = True


class FakeClient:
    """Answers per account from a script: each item is a KiroFailure to raise before the first
    event, or a list of events. A REFRESH failure asks the relay to reauthorize, like Kiro's client."""

    first_event_timeout = 15.0

    def __init__(self, script: Dict[str, List[object]]) -> None:
        self.script = script
        self.calls: List[str] = []
        self.streams: List[FakeStream] = []

    def open(self, creds: Credentials, req: chat.ChatRequest, *, model_id: str, conversation_id: str,
             thinking_efforts=None, reauthorize=None) -> FakeStream:
        def events() -> Iterator[chat.Event]:
            current = creds
            for refreshed in (False, True):
                self.calls.append(creds.name)
                item = self.script[creds.name].pop(0)
                if isinstance(item, KiroFailure):
                    if item.action == kiro_errors.REFRESH and not refreshed and reauthorize is not None:
                        current = reauthorize(current, item)
                        continue
                    raise item
                yield from item  # type: ignore[misc]
                return

        stream = FakeStream(events())
        self.streams.append(stream)
        return stream


class FakeRefresher:
    def __init__(self, pool: AccountPool) -> None:
        self.pool = pool
        self.calls: List[tuple] = []
        self.errors: Dict[str, RefreshError] = {}

    def ensure_fresh(self, account_id: str, *, stale_token: Optional[str] = None) -> Credentials:
        self.calls.append((account_id, stale_token))
        if account_id in self.errors:
            raise self.errors[account_id]
        return self.pool.creds(account_id)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, *names: str, max_attempts: int = 6, context_window: Optional[int] = None) -> None:
        self.clock = Clock()
        self.pool = AccountPool(clock=self.clock, cooldown_seconds=180.0)
        self.ids = {name: self.pool.add(from_token_file(factories.token_file(f"acc-{name}"), name=name)).id
                    for name in names}
        self.client = FakeClient({name: [] for name in names})
        self.refresher = FakeRefresher(self.pool)
        self.slept: List[float] = []
        self.exhausted: List[str] = []
        catalog = Catalog()
        self.relay = Relay(pool=self.pool, refresher=self.refresher, client=self.client,  # type: ignore[arg-type]
                           catalog=catalog, max_attempts=max_attempts, backoff=1.0, clock=self.clock,
                           sleep=self.slept.append, on_exhausted=self.exhausted.append)
        if context_window is not None:
            info = catalog.info(catalog.resolve("claude-sonnet-4.5"))
            catalog.replace([dataclasses.replace(info, context_window=context_window)])

    def script(self, name: str, *items: object) -> None:
        self.client.script[name].extend(items)

    def state(self, name: str) -> Dict:
        return self.pool.summary(self.ids[name])

    def run(self, req: Optional[chat.ChatRequest] = None) -> tuple:
        """(reply text, exchange) of one whole request; the stream is always closed."""
        exchange = Exchange("anthropic", "/v1/messages")
        stream = self.relay.open(req or factories.request("hi"), exchange)
        try:
            text = "".join(e.text for e in stream if isinstance(e, chat.TextDelta))
        finally:
            stream.close()
        return text, exchange

    def fails(self, req: Optional[chat.ChatRequest] = None) -> ProxyError:
        with pytest.raises(ProxyError) as raised:
            self.run(req)
        return raised.value


def outcomes(exchange: Exchange) -> List[tuple]:
    return [(a.account_id, a.outcome) for a in exchange.snapshot().attempts]


def test_a_healthy_account_answers_and_its_lease_is_released():
    s = Setup("a")
    s.script("a", answer("hello"))
    text, exchange = s.run()
    assert text == "hello" and exchange.state == "completed"
    assert outcomes(exchange) == [(s.ids["a"], "ok")]
    assert s.state("a")["in_flight"] == 0 and s.state("a")["requests"] == 1
    assert s.client.streams[0].closed


def test_a_429_fails_over_and_cools_the_account_down_for_the_default_time():
    s = Setup("a", "b")
    s.script("a", failure(429, "Too many requests"))
    s.script("b", answer("from b"))
    text, exchange = s.run()
    assert text == "from b"
    assert outcomes(exchange) == [(s.ids["a"], "rotate"), (s.ids["b"], "ok")]
    assert s.state("a")["state"] == "cooldown" and s.state("a")["cooldown_until"] == NOW + 180.0
    assert s.state("a")["in_flight"] == 0 and s.state("b")["in_flight"] == 0


def test_retry_after_sets_the_cooldown():
    s = Setup("a", "b")
    s.script("a", failure(429, "slow down", retry_after="42"))
    s.script("b", answer())
    s.run()
    assert s.state("a")["cooldown_until"] == NOW + 42.0


def test_a_monthly_quota_parks_the_account_until_the_next_month_and_looks_up_the_reset():
    s = Setup("a", "b")
    s.script("a", failure(402, "MONTHLY_REQUEST_COUNT reached"))
    s.script("b", answer("b"))
    assert s.run()[0] == "b"
    assert s.state("a")["state"] == "exhausted"
    assert s.state("a")["exhausted_until"] == 1_780_272_000.0  # 2026-06-01T00:00:00Z
    assert s.exhausted == [s.ids["a"]]


def test_a_daily_quota_parks_the_account_until_midnight_utc_without_a_lookup():
    s = Setup("a", "b")
    s.script("a", failure(429, "DAILY_REQUEST_COUNT exceeded"))
    s.script("b", answer())
    s.run()
    assert s.state("a")["exhausted_until"] == (NOW // 86400 + 1) * 86400
    assert s.exhausted == []


def test_a_suspended_account_is_disabled_and_the_request_does_not_burst_over_the_pool():
    s = Setup("a", "b")
    s.script("a", failure(403, "Your account is TEMPORARILY_SUSPENDED"))
    s.script("b", answer())
    error = s.fails()
    assert (error.status, error.kind) == (503, "overloaded") and "disabled" in error.message
    assert s.state("a")["state"] == "suspended"
    assert s.client.calls == ["a"]  # b was never asked


def test_a_rejected_token_is_refreshed_once_and_the_same_account_answers():
    s = Setup("a", "b")
    s.script("a", failure(403, "The bearer token included in the request is invalid"), answer("again"))
    text, exchange = s.run()
    assert text == "again"
    assert outcomes(exchange) == [(s.ids["a"], "refresh"), (s.ids["a"], "ok")]
    token = s.pool.creds(s.ids["a"]).access_token
    assert s.refresher.calls == [(s.ids["a"], None), (s.ids["a"], token)]
    assert s.client.calls == ["a", "a"]


def test_a_token_rejected_again_after_refresh_marks_the_account_unhealthy_and_fails_over():
    s = Setup("a", "b")
    rejected = failure(403, "The security token included in the request is expired")
    s.script("a", rejected, rejected)
    s.script("b", answer("b"))
    assert s.run()[0] == "b"
    assert s.state("a")["state"] == "unhealthy"


def test_a_failed_refresh_rests_the_account_briefly_and_fails_over():
    s = Setup("a", "b")
    s.refresher.errors[s.ids["a"]] = RefreshError("auth server down", permanent=False, status=500)
    s.script("b", answer("b"))
    text, exchange = s.run()
    assert text == "b"
    assert outcomes(exchange) == [(s.ids["a"], "refresh"), (s.ids["b"], "ok")]
    assert s.state("a")["cooldown_until"] == NOW + 30.0


def test_transient_failures_on_every_account_back_off_doubling_then_succeed():
    s = Setup("a", "b")
    s.script("a", failure(500), failure(500), answer("third round"))
    s.script("b", failure(503), failure(503))
    assert s.run()[0] == "third round"
    assert s.slept == [1.0, 2.0]
    assert s.state("a")["state"] == "active"  # 5xx: no cooldown, the same account may retry


def test_transient_failures_give_up_after_three_back_offs():
    s = Setup("a", max_attempts=99)
    s.script("a", *[failure(500) for _ in range(4)])
    error = s.fails()
    assert error.status == 503 and s.slept == [1.0, 2.0, 4.0]


def test_max_attempts_bounds_the_accounts_tried():
    s = Setup("a", "b", "c", max_attempts=2)
    s.script("a", failure(429))
    s.script("b", failure(429))
    s.script("c", answer())
    error = s.fails()
    assert error.status == 429 and sorted(s.client.calls) == ["a", "b"]


def test_a_request_the_client_must_fix_is_answered_at_once():
    s = Setup("a", "b")
    s.script("a", failure(400, "Improperly formed request"))
    error = s.fails()
    assert error.status == 400 and s.client.calls == ["a"]
    assert s.state("a")["state"] == "active"


def test_a_prompt_over_the_context_window_is_refused_before_any_account_is_used():
    s = Setup("a", context_window=10)
    error = s.fails(factories.request("word " * 200))
    assert isinstance(error, TooLarge) and "prompt is too long" in error.message
    assert s.client.calls == [] and s.state("a")["in_flight"] == 0


def test_kiro_saying_too_long_becomes_the_compaction_error_without_failover():
    s = Setup("a", "b", context_window=1000)
    s.script("a", failure(400, "Input is too long for the model"))
    error = s.fails()
    assert isinstance(error, TooLarge) and error.status == 400
    assert s.client.calls == ["a"]
    assert error.message.startswith("Input is too long")


def test_first_event_timeouts_move_on_once_then_answer_with_a_timeout():
    s = Setup("a", "b", "c")
    timeout = KiroFailure(kiro_errors.ROTATE, UpstreamTimeout("Kiro did not answer"), cooldown=5.0,
                          same_account_retry=True)
    s.script("a", timeout)
    s.script("b", timeout)
    s.script("c", answer())
    error = s.fails()
    assert isinstance(error, UpstreamTimeout) and "2 tries" in error.message
    assert len(s.client.calls) == 2


def test_no_usable_account_is_the_pools_answer():
    s = Setup("a")
    s.pool.suspend(s.ids["a"], "by hand")
    error = s.fails()
    assert error.status in (429, 503) and s.client.calls == []


def test_a_client_that_leaves_mid_answer_cancels_the_flow_and_frees_the_account():
    s = Setup("a")
    s.script("a", [chat.TextDelta("one"), chat.TextDelta("two"), chat.Finish("end_turn")])
    exchange = Exchange("anthropic", "/v1/messages")
    stream = s.relay.open(factories.request("hi", stream=True), exchange)
    events = iter(stream)
    assert next(events) in (chat.TextDelta("one"), chat.TextDelta("onetwo"))  # joined when read together
    stream.close()
    assert exchange.state == "cancelled" and s.state("a")["in_flight"] == 0
    assert s.client.streams[0].closed


def test_an_error_mid_answer_fails_the_flow_and_counts_against_the_account():
    s = Setup("a")

    def broken() -> Iterator[chat.Event]:
        yield chat.TextDelta("partial")
        raise UpstreamTimeout("Kiro stopped sending")

    s.script("a", broken())
    with pytest.raises(UpstreamTimeout):
        s.run()
    assert s.state("a")["errors"] == 1 and s.state("a")["in_flight"] == 0


def test_turns_of_one_conversation_stay_on_one_account():
    s = Setup("a", "b", "c")
    for name in "abc":
        s.script(name, answer(), answer())
    s.run(factories.request("same start"))
    first = s.client.calls[-1]
    s.run(factories.request("same start", "reply", "next"))
    assert s.client.calls[-1] == first
