"""Reads an upstream event iterator on its own thread and hands events over in batches.

While the request thread waits for the next event it can send heartbeats and notice that the
client went away; cancel() then cuts the upstream socket so a blocked read returns at once.
The request thread takes everything the reader has handed over in one go and joins neighbouring
text (and thinking) deltas, so a client that fell behind catches up with one event, and one
write, instead of one per upstream frame. Nothing waits to be joined: a batch is only what was
already there when the request thread asked. The reader stays at most a few events ahead of a
slow client.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, Deque, Iterable, Iterator, List, Optional

from .chat import Event, Heartbeat, TextDelta, ThinkingDelta

log = logging.getLogger(__name__)

_END = object()
_RETRY = 0.25  # seconds a reader waits on a full hand-off before it checks for a cancel again


class ClientGone(Exception):
    """The client disconnected while the answer was streaming."""


class Pump:
    def __init__(self, source: Iterator[Event], *, abort: Callable[[], None], capacity: int = 64,
                 name: str = "kiroproxy-upstream") -> None:
        """`source` yields events; if it also has batches(), the pump reads lists of events from
        that instead. `capacity` bounds the items (events or batches) not taken yet."""
        self._source = source
        self._abort = abort
        self._capacity = capacity
        # Reader -> request thread. The reader appends without a lock (deque appends are atomic)
        # and releases `_taker_wake` only when the request thread sleeps on an empty hand-off; the
        # request thread does the same the other way round for a full one. Each wake is a plain
        # lock used as a binary semaphore (held = nothing to wake for); a wake that comes after
        # its sleeper gave up leaves it released, so the next sleep returns at once and rechecks.
        self._handed: Deque[object] = collections.deque()
        self._taker_wake = _held_lock()
        self._reader_wake = _held_lock()
        self._taker_sleeps = False
        self._reader_sleeps = False
        # Taken off the hand-off but not yet yielded; kept on the pump, not in a generator, since
        # the relay reads the first event and the rest through two events() calls.
        self._ready: Deque[object] = collections.deque()
        self._cancelled = threading.Event()
        # Started on first use, so the reader does not compete for the GIL while the request
        # thread writes the first events out.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Lock()

    def _run(self) -> None:
        # A source with batches() (kiro.stream.ChatStream) hands over the events of one upstream
        # read at a time: one hand-off, and one wake-up, per read instead of per event.
        batches = getattr(self._source, "batches", None)
        try:
            for item in (batches() if batches is not None else self._source):
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._put(exc)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        """Hand `item` over, waiting while `capacity` items are not taken yet. False once cancelled."""
        handed = self._handed
        while len(handed) >= self._capacity:
            self._reader_sleeps = True
            if len(handed) >= self._capacity and not self._cancelled.is_set():  # checked after the flag
                self._reader_wake.acquire(timeout=_RETRY)
            self._reader_sleeps = False
            if self._cancelled.is_set():
                return False
        if self._cancelled.is_set():
            return False
        handed.append(item)
        if self._taker_sleeps:  # read after the append: a taker that checks after it sees the item
            _wake(self._taker_wake)
        return True

    def _take(self, timeout: float) -> bool:
        """Move everything handed over to `_ready` (deltas joined); wait up to `timeout` seconds
        for the first item. False when nothing came."""
        handed = self._handed
        if not handed:
            self._taker_sleeps = True
            if not handed:  # checked after the flag: a reader that appends later sees it and wakes us
                self._taker_wake.acquire(timeout=timeout)
            self._taker_sleeps = False
            if not handed:
                return False
        items: List[object] = []
        for _ in range(len(handed)):
            item = handed.popleft()
            if type(item) is list:  # a batch
                items += item
            else:
                items.append(item)
        if self._reader_sleeps:
            _wake(self._reader_wake)
        self._ready.extend(joined(items) if len(items) > 1 else items)
        return True

    def events(self, *, heartbeat: float = 15.0, client_gone: Callable[[], bool] = lambda: False,
               tick: float = 0.25, clock: Callable[[], float] = time.monotonic,
               idle: object = None, cut: Callable[[], Optional[BaseException]] = lambda: None) -> Iterator[Event]:
        """Yield upstream events; `idle` (default a Heartbeat) after `heartbeat` idle seconds. Raises
        ClientGone, whatever the upstream iterator raised, or what `cut()` returns (checked before
        every event and while waiting) instead of going on."""
        with self._started:
            if not self._thread.is_alive() and not self._cancelled.is_set() and self._thread.ident is None:
                self._thread.start()
        ready = self._ready
        last = clock()
        while True:
            stop = cut()
            if stop is not None:
                raise stop
            if not ready and not self._take(min(tick, heartbeat)):
                if client_gone():
                    raise ClientGone() from None
                if clock() - last >= heartbeat:
                    last = clock()
                    yield Heartbeat() if idle is None else idle  # type: ignore[misc]
                continue
            item = ready.popleft()
            if item is _END:
                ready.appendleft(_END)  # a later events() call ends at once too
                return
            if isinstance(item, BaseException):
                raise item
            last = clock()
            yield item  # type: ignore[misc]

    def cancel(self, timeout: Optional[float] = 2.0) -> None:
        """Stop reading: cut the upstream connection and wait briefly for the reader to exit."""
        if self._cancelled.is_set():
            return
        with self._started:
            self._cancelled.set()
            never_started = self._thread.ident is None
        if never_started:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
            return
        _wake(self._reader_wake)  # a reader waiting on a full hand-off stops now
        if self._thread.is_alive():
            try:
                self._abort()
            except OSError as exc:
                log.debug("aborting the upstream connection: %s", exc)
            self._thread.join(timeout)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def _wake(lock: threading.Lock) -> None:
    try:
        lock.release()
    except RuntimeError:  # already released: a wake is pending
        pass


def joined(items: Iterable[object]) -> List[object]:
    """`items` with each run of neighbouring TextDeltas (or ThinkingDeltas) joined into one."""
    out: List[object] = []
    run: List[str] = []
    kind: Optional[type] = None
    for item in items:
        item_kind = type(item)
        if item_kind is kind:
            run.append(item.text)  # type: ignore[attr-defined]
            continue
        if len(run) > 1:
            out[-1] = kind(("".join(run)))  # type: ignore[misc]
        out.append(item)
        kind = item_kind if item_kind is TextDelta or item_kind is ThinkingDelta else None
        run = [item.text] if kind is not None else []  # type: ignore[attr-defined]
    if len(run) > 1:
        out[-1] = kind("".join(run))  # type: ignore[misc]
    return out
