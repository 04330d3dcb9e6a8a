"""Reads an upstream event iterator on its own thread and hands events over through a small queue.

While the request thread waits for the next event it can send heartbeats and notice that the
client went away; cancel() then cuts the upstream socket so a blocked read returns at once.
The bounded queue keeps the reader at most a few events ahead of a slow client.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterator, Optional

from .chat import Event, Heartbeat

log = logging.getLogger(__name__)

_END = object()


class ClientGone(Exception):
    """The client disconnected while the answer was streaming."""


class Pump:
    def __init__(self, source: Iterator[Event], *, abort: Callable[[], None], capacity: int = 64,
                 name: str = "kiroproxy-upstream") -> None:
        self._source = source
        self._abort = abort
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._cancelled = threading.Event()
        # Started on first use, so the reader does not compete for the GIL while the request
        # thread writes the first events out.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Lock()

    def _run(self) -> None:
        try:
            for event in self._source:
                if not self._put(event):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._put(exc)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def events(self, *, heartbeat: float = 15.0, client_gone: Callable[[], bool] = lambda: False,
               tick: float = 0.25, clock: Callable[[], float] = time.monotonic,
               idle: object = None, cut: Callable[[], Optional[BaseException]] = lambda: None) -> Iterator[Event]:
        """Yield upstream events; `idle` (default a Heartbeat) after `heartbeat` idle seconds. Raises
        ClientGone, whatever the upstream iterator raised, or what `cut()` returns (checked before
        every event and while waiting) instead of going on."""
        with self._started:
            if not self._thread.is_alive() and not self._cancelled.is_set() and self._thread.ident is None:
                self._thread.start()
        last = clock()
        while True:
            stop = cut()
            if stop is not None:
                raise stop
            try:
                item = self._queue.get(timeout=min(tick, heartbeat))
            except queue.Empty:
                if client_gone():
                    raise ClientGone() from None
                if clock() - last >= heartbeat:
                    last = clock()
                    yield Heartbeat() if idle is None else idle  # type: ignore[misc]
                continue
            if item is _END:
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
        if self._thread.is_alive():
            try:
                self._abort()
            except OSError as exc:
                log.debug("aborting the upstream connection: %s", exc)
            self._thread.join(timeout)
