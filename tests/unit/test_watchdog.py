"""Tests for watchdog.InlineRead and Watchdog: a whole answer read on the calling thread, cut by
the shared watchdog thread when the client leaves or the proxy stops.

Sources block on threading.Events; `abort` releases them the way a cut socket ends a blocked read.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterator, List, Optional

import pytest

from kiroproxy.chat import Event, Finish, TextDelta
from kiroproxy.errors import ShuttingDown, Truncated
from kiroproxy.pump import ClientGone
from kiroproxy.watchdog import InlineRead, Watchdog

TICK = 0.005
WAIT = 5.0  # a deadline for things that must happen; reached only when a test fails


class Upstream:
    """A source whose first events come at once and the rest after `release` (or an abort)."""

    def __init__(self, first: List[Event], rest: List[Event], *, fail_on_abort: bool = True) -> None:
        self.first, self.rest = first, rest
        self.release = threading.Event()
        self.aborted = threading.Event()
        self.waiting = threading.Event()  # set while the source blocks, like a silent upstream
        self.closed = False
        self.fail_on_abort = fail_on_abort
        self.threads: List[str] = []

    def abort(self) -> None:
        self.aborted.set()
        self.release.set()

    def events(self) -> Iterator[Event]:
        try:
            for event in self.first:
                self.threads.append(threading.current_thread().name)
                yield event
            self.waiting.set()
            assert self.release.wait(WAIT), "never released"
            if self.aborted.is_set():
                if self.fail_on_abort:
                    raise Truncated("the connection was cut")
                return  # a cut between two frames can look like a clean end
            yield from self.rest
        finally:
            self.closed = True


def reader(upstream: Upstream, watchdog: Optional[Watchdog] = None) -> InlineRead:
    source = upstream.events()

    class Source:
        def __iter__(self) -> Iterator[Event]:
            return source

        def close(self) -> None:
            source.close()

    return InlineRead(Source(), abort=upstream.abort, watchdog=watchdog or Watchdog(tick=TICK))


def when_blocked(upstream: Upstream, action: Callable[[], None]) -> None:
    """Run `action` on another thread once the source blocks in its read."""
    def run() -> None:
        assert upstream.waiting.wait(WAIT)
        action()

    threading.Thread(target=run, daemon=True).start()


def test_events_come_in_order_on_the_calling_thread_and_cancel_closes_the_source():
    upstream = Upstream([TextDelta("a"), TextDelta("b")], [Finish("end_turn")])
    upstream.release.set()
    read = reader(upstream)
    assert list(read.events()) == [TextDelta("a"), TextDelta("b"), Finish("end_turn")]
    assert set(upstream.threads) == {threading.current_thread().name}
    read.cancel()
    assert upstream.closed


def test_a_second_events_call_goes_on_where_the_first_stopped():
    upstream = Upstream([TextDelta("a"), TextDelta("b")], [])
    upstream.release.set()
    read = reader(upstream)
    first = read.events()
    assert next(first) == TextDelta("a")
    first.close()  # the relay closes its first-event iterator, then reads the rest
    assert not upstream.closed
    assert list(read.events()) == [TextDelta("b")]


def test_a_source_error_passes_through():
    def failing() -> Iterator[Event]:
        yield TextDelta("a")
        raise Truncated("broken")

    read = InlineRead(failing(), abort=lambda: None, watchdog=Watchdog(tick=TICK))
    events = read.events()
    assert next(events) == TextDelta("a")
    with pytest.raises(Truncated):
        next(events)


@pytest.mark.parametrize("fail_on_abort", [True, False])
def test_the_watchdog_cuts_a_blocked_read_when_the_client_leaves(fail_on_abort):
    upstream = Upstream([TextDelta("a")], [TextDelta("never")], fail_on_abort=fail_on_abort)
    gone = threading.Event()
    events = reader(upstream).events(client_gone=gone.is_set)
    assert next(events) == TextDelta("a")
    when_blocked(upstream, gone.set)
    with pytest.raises(ClientGone):
        next(events)
    assert upstream.aborted.is_set()


def test_the_watchdog_cuts_a_blocked_read_when_the_proxy_stops():
    upstream = Upstream([TextDelta("a")], [TextDelta("never")])
    stopping = threading.Event()
    events = reader(upstream).events(
        cut=lambda: ShuttingDown("the proxy is shutting down") if stopping.is_set() else None)
    assert next(events) == TextDelta("a")
    when_blocked(upstream, stopping.set)
    with pytest.raises(ShuttingDown):
        next(events)
    assert upstream.aborted.is_set()


def test_cut_is_checked_before_each_event():
    upstream = Upstream([TextDelta("a"), TextDelta("b")], [])
    upstream.release.set()
    stop: List[ShuttingDown] = []
    events = reader(upstream).events(cut=lambda: stop[0] if stop else None)
    assert next(events) == TextDelta("a")
    stop.append(ShuttingDown("stopping"))
    with pytest.raises(ShuttingDown):
        next(events)
    assert not upstream.aborted.is_set()  # read on this thread: nothing to cut


def test_the_watchdog_thread_runs_only_while_a_read_is_watched():
    watchdog = Watchdog(tick=TICK)

    def running() -> bool:
        return any(t.name == "kiroproxy-watchdog" and t.is_alive() for t in threading.enumerate())

    upstream = Upstream([TextDelta("a")], [Finish("end_turn")])
    events = reader(upstream, watchdog).events()
    assert next(events) == TextDelta("a")
    assert running()
    upstream.release.set()
    assert list(events) == [Finish("end_turn")]
    deadline = threading.Event()
    for _ in range(int(WAIT / TICK)):
        if not running():
            break
        deadline.wait(TICK)
    assert not running()
