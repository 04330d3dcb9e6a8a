"""Tests for pump.Pump: order, errors, heartbeats, client disconnects, cancel and back-pressure.

Sources block on threading.Events instead of sleeping; the clock is injected, so heartbeats do
not depend on wall time. Every pump is cancelled at teardown so no reader thread outlives a test.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable, Iterator, List

import pytest

from kiroproxy.chat import Event, Finish, Heartbeat, TextDelta, ThinkingDelta, ToolCallDelta, ToolCallStart, Usage
from kiroproxy.errors import Truncated
from kiroproxy.pump import ClientGone, Pump, joined

TICK = 0.005  # the consumer's poll interval; small so idle checks come quickly
WAIT = 5.0    # a deadline for things that must happen; reached only when a test fails
_names = itertools.count(1)


class StepClock:
    """A monotonic clock that advances `step` seconds each time it is read (first read: 0)."""

    def __init__(self, step: float = 1.0) -> None:
        self.step = step
        self.now = -step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def start() -> Iterator[Callable[..., Pump]]:
    """Starts pumps (each reader thread with a unique name); cancels them all at teardown."""
    pumps: List[Pump] = []

    def start_pump(source: Iterator[Event], *, abort: Callable[[], None] = lambda: None, **kw) -> Pump:
        kw.setdefault("name", f"test-pump-{next(_names)}")
        pump = Pump(source, abort=abort, **kw)
        pumps.append(pump)
        return pump

    yield start_pump
    for pump in pumps:
        pump.cancel()


def reader_alive(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


def blocked_until(release: threading.Event, *events: Event) -> Iterator[Event]:
    """A source that waits for `release` (like a silent upstream), then yields `events`."""
    assert release.wait(WAIT), "the source was never released"
    yield from events


def test_events_pass_through_in_order(start):
    events = [TextDelta("a"), ToolCallStart("t1", "Read"), TextDelta("b"), Finish("end_turn")]
    pump = start(iter(events))
    assert list(pump.events(tick=TICK)) == events


def test_the_sources_exception_is_raised_in_the_consumer(start):
    failure = Truncated("upstream cut")

    def source() -> Iterator[Event]:
        yield TextDelta("partial")
        raise failure

    events = start(source()).events(tick=TICK)
    assert next(events) == TextDelta("partial")
    with pytest.raises(Truncated) as info:
        next(events)
    assert info.value is failure


def test_heartbeat_after_the_idle_interval(start):
    release = threading.Event()
    clock = StepClock()
    events = start(blocked_until(release, TextDelta("late"))).events(heartbeat=3.0, tick=TICK, clock=clock)
    assert next(events) == Heartbeat()
    assert clock.now >= 3.0  # not before three idle seconds had passed on the injected clock
    clock.step = 0.0  # no second heartbeat while the reader hands over the released event
    release.set()
    assert next(events) == TextDelta("late")


def test_no_heartbeat_before_the_idle_interval(start):
    release = threading.Event()
    idle_checks = itertools.count(1)

    def client_gone() -> bool:
        if next(idle_checks) == 5:  # five idle ticks with a clock that never moves
            release.set()
        return False

    pump = start(blocked_until(release, TextDelta("late"), Finish("end_turn")))
    events = list(pump.events(heartbeat=3.0, tick=TICK, clock=lambda: 0.0, client_gone=client_gone))
    assert events == [TextDelta("late"), Finish("end_turn")]


def test_a_real_event_restarts_the_idle_interval(start):
    first, second = threading.Event(), threading.Event()
    now = [0.0]
    idle_checks = itertools.count(1)

    def source() -> Iterator[Event]:
        assert first.wait(WAIT)
        yield TextDelta("a")
        assert second.wait(WAIT)
        yield TextDelta("b")

    def client_gone() -> bool:
        check = next(idle_checks)
        if check == 1:  # "a" arrives 8 s after the start
            now[0] = 8.0
            first.set()
        elif check == 5:
            second.set()
        return False

    events = start(source()).events(heartbeat=10.0, tick=TICK, clock=lambda: now[0], client_gone=client_gone)
    assert next(events) == TextDelta("a")
    now[0] = 12.0  # 12 s after the start, but only 4 s after "a": no heartbeat is due
    assert next(events) == TextDelta("b")


def test_client_gone_raises_while_waiting(start):
    release = threading.Event()
    pump = start(blocked_until(release, TextDelta("never read")), abort=release.set)
    with pytest.raises(ClientGone):
        next(pump.events(tick=TICK, client_gone=lambda: True))
    pump.cancel()
    assert release.is_set()


def test_cancel_aborts_and_the_reader_closes_the_source(start):
    release, closed = threading.Event(), threading.Event()
    aborts: List[bool] = []

    read: List[str] = []

    def source() -> Iterator[Event]:
        try:
            for text in ("a", "b", "c"):
                if text == "b":
                    assert release.wait(WAIT)
                read.append(text)
                yield TextDelta(text)  # "b" comes after the cut: the reader drops it and closes us here
        finally:
            closed.set()

    def abort() -> None:  # what cutting the socket does: the blocked read returns
        aborts.append(True)
        release.set()

    pump = start(source(), abort=abort, name="test-pump-cancel")
    assert next(pump.events(tick=TICK)) == TextDelta("a")
    pump.cancel(timeout=WAIT)
    assert aborts == [True]
    assert closed.wait(WAIT)
    assert not reader_alive("test-pump-cancel")
    assert read == ["a", "b"]  # nothing is read after the cut
    pump.cancel()
    assert aborts == [True]  # cancel is idempotent


def test_a_slow_consumer_bounds_the_readers_progress(start):
    produced: List[int] = []
    consumed: List[int] = []
    leads: List[int] = []
    third_read, exhausted = threading.Event(), threading.Event()

    def source() -> Iterator[Event]:
        for number in range(20):
            leads.append(number + 1 - len(consumed))  # out of the source, not yet counted below
            produced.append(number)
            if number == 2:
                third_read.set()
            yield ToolCallDelta("t1", str(number))  # not joined, unlike text
        exhausted.set()

    pump = start(source(), capacity=2)
    assert not third_read.wait(0.05)  # the reader only starts when events are first asked for
    events = pump.events(tick=TICK)
    consumed.append(int(next(events).fragment))  # type: ignore[union-attr]
    assert third_read.wait(WAIT)  # the hand-off refilled, a further event in the reader's hand
    # Longer than the reader's own put retry (0.25 s), so it has retried on a full hand-off at least once.
    assert not exhausted.wait(0.3)
    # the batch taken with the first event (2), the hand-off refilled (2), the item in the reader's hand
    assert len(produced) <= 2 + 2 + 1
    for event in events:
        consumed.append(int(event.fragment))  # type: ignore[union-attr]
    assert consumed == list(range(20))  # nothing lost or reordered across the retries
    # hand-off (2) + one batch taken but not yet yielded (2) + the item in the reader's hand + one
    # yielded but not yet counted here
    assert max(leads) <= 2 + 2 + 1 + 1


def test_deltas_handed_over_together_come_out_joined(start):
    go, handed = threading.Event(), threading.Event()
    finish = threading.Event()

    def source() -> Iterator[Event]:
        yield TextDelta("a")
        assert go.wait(WAIT)
        yield from (TextDelta("b"), TextDelta("c"), ThinkingDelta("x"), ThinkingDelta("y"), TextDelta("d"),
                    Usage(output_tokens=1), TextDelta("e"))
        handed.set()  # every event above is in the hand-off: the reader asked for the next one
        assert finish.wait(WAIT)
        yield Finish("end_turn")

    events = start(source()).events(tick=TICK)
    assert next(events) == TextDelta("a")  # alone: nothing else had arrived
    go.set()
    assert handed.wait(WAIT)
    assert [next(events) for _ in range(5)] == [TextDelta("bc"), ThinkingDelta("xy"), TextDelta("d"),
                                                Usage(output_tokens=1), TextDelta("e")]
    finish.set()
    assert list(events) == [Finish("end_turn")]


def test_the_rest_of_a_batch_survives_a_closed_events_iterator(start):
    """The relay reads the first event with one events() call and the rest with another."""
    pump = start(iter([ToolCallStart("t1", "Read"), TextDelta("a"), Finish("end_turn")]))
    first = pump.events(tick=TICK)
    assert next(first) == ToolCallStart("t1", "Read")
    first.close()
    assert list(pump.events(tick=TICK)) == [TextDelta("a"), Finish("end_turn")]


def test_joined_keeps_order_and_joins_only_neighbours():
    items = [TextDelta("a"), TextDelta("b"), Heartbeat(), TextDelta("c"), ThinkingDelta("x"), ThinkingDelta("y"),
             TextDelta("d"), TextDelta("e"), TextDelta("f")]
    assert joined(items) == [TextDelta("ab"), Heartbeat(), TextDelta("c"), ThinkingDelta("xy"), TextDelta("def")]
    assert joined([]) == []
    assert joined([TextDelta("only")]) == [TextDelta("only")]


def test_many_events_through_a_one_item_hand_off_arrive_complete_and_in_order(start):
    """Reader and request thread race on every item: each sleeps on the other in turn."""
    sent = [ToolCallDelta("t1", str(number)) for number in range(3000)]
    pump = start(iter(sent), capacity=1)
    assert list(pump.events(tick=TICK)) == sent
