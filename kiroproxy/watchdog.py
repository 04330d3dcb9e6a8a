"""Reads a whole (non-streaming) answer on the request thread, watched by one shared thread.

A client waiting for a whole answer needs no keep-alives, so its upstream needs no reader thread
of its own (a thread per request and the queue hand-offs were a good part of a short request's
cost). InlineRead has the Pump's interface; one Watchdog thread checks every watched read each
tick and, when the client left or the proxy is shutting down, cuts the upstream socket so the
blocked read returns and the request thread raises the reason. The watchdog never reads a source.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Set

from .chat import Event
from .pump import ClientGone

log = logging.getLogger(__name__)

_END = object()


class Watchdog:
    """One thread for all inline reads, alive only while some read is watched."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick  # seconds between two checks of every watched read
        self._lock = threading.Lock()
        self._watched: Set[InlineRead] = set()
        self._running = False

    def watch(self, read: InlineRead) -> None:
        with self._lock:
            self._watched.add(read)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="kiroproxy-watchdog", daemon=True).start()

    def unwatch(self, read: InlineRead) -> None:
        with self._lock:
            self._watched.discard(read)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            with self._lock:
                if not self._watched:
                    self._running = False
                    return
                watched = list(self._watched)
            for read in watched:
                read.check()


class InlineRead:
    """The events of `source`, read on the thread that iterates events(); same contract as Pump.

    `abort()` cuts the upstream connection from another thread (the watchdog's)."""

    def __init__(self, source: Iterable[Event], *, abort: Callable[[], None], watchdog: Watchdog) -> None:
        self._source = source
        self._events = iter(source)
        self._abort = abort
        self._watchdog = watchdog
        self._client_gone: Callable[[], bool] = lambda: False
        self._cut: Callable[[], Optional[BaseException]] = lambda: None
        self._reason: Optional[BaseException] = None  # set by the watchdog before it aborts
        self._closed = False

    def check(self) -> None:
        """On the watchdog's thread: cut the upstream if the client left or the proxy is stopping."""
        if self._reason is not None:
            return
        reason = ClientGone() if self._client_gone() else self._cut()
        if reason is None:
            return
        self._reason = reason
        try:
            self._abort()
        except OSError as exc:
            log.debug("aborting the upstream connection: %s", exc)

    def events(self, *, client_gone: Callable[[], bool] = lambda: False,
               cut: Callable[[], Optional[BaseException]] = lambda: None, **_unused: Any) -> Iterator[Event]:
        """Yield upstream events. Raises ClientGone, what `cut()` returns, or whatever the source
        raised. Pump's heartbeat arguments are accepted and unused: a whole answer needs none."""
        self._client_gone, self._cut = client_gone, cut
        self._watchdog.watch(self)
        try:
            while True:
                self._stop_if_asked()
                try:
                    event = next(self._events, _END)
                except Exception:
                    if self._reason is not None:  # the read failed because the watchdog cut it
                        raise self._reason from None
                    raise
                self._stop_if_asked()  # an aborted read may end the body early, as if complete
                if event is _END:
                    return
                yield event  # type: ignore[misc]
        finally:
            self._watchdog.unwatch(self)

    def _stop_if_asked(self) -> None:
        stop = self._reason or self._cut()
        if stop is not None:
            raise stop

    def cancel(self, timeout: Optional[float] = None) -> None:
        """Stop reading: close the source (and its connection). Called on the reading thread."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
