"""Upstream connections opened ahead of the chat request that will use them.

Kiro's own client sends every chat request on a new connection (`Connection: close`), and so do
we; on the real internet that costs a TCP and a TLS handshake before the request can leave. Here
one background thread keeps, per upstream host and outbound proxy, one connection already open,
so a chat request that would open a new connection finds a warm one instead. Each warm connection
still carries exactly one request; it is replaced as soon as it is taken.

Lifetime: a warm connection left idle for IDLE_LIMIT (30 s) is closed and replaced, well inside
the idle timeouts servers and load balancers apply to a silent connection (AWS load balancers:
60 s; many proxies less), so the server never closes it under a request. A host that has seen no
chat request for ACTIVE_WINDOW (15 min) gets no new warm connection until its next request: an
unused proxy keeps nothing open upstream. A failed open is not retried until the next request.

Usage: sessions mount `warm.adapter()` (its classes live in warmadapter.py, which imports requests
and urllib3 only when the first session is made); the chat call runs inside `with warm.ahead(): ...`. A
request made there never reuses a pooled connection (a one-request connection handed back to the
pool may look alive while the server is closing it) and takes the warm one if there is one. Calls
outside ahead() (the kept-alive management calls) use the pool as before. With enabled=False
nothing is opened ahead, but chat requests still never reuse a pooled connection.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

IDLE_LIMIT = 30.0
ACTIVE_WINDOW = 15 * 60.0
Key = Tuple[str, str, Optional[int], str]


@dataclass
class _Slot:
    maker: Any                      # the pool that last asked: it knows how to open such a connection
    last_request: float
    conn: Any = None
    opened_at: float = 0.0
    opening: bool = False
    failed: bool = False            # the last open failed: wait for the next request


class WarmConnections:
    def __init__(self, *, enabled: bool = True, connect_timeout: float = 10.0, idle_limit: float = IDLE_LIMIT,
                 active_window: float = ACTIVE_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.connect_timeout = connect_timeout
        self.idle_limit = idle_limit
        self.active_window = active_window
        self.clock = clock
        self._slots: Dict[Key, _Slot] = {}
        self._changed = threading.Condition()
        self._wanted = threading.local()
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._pools: Optional[Dict[str, type]] = None

    # ----- the request side ----------------------------------------------------------------

    def adapter(self) -> Any:
        """A requests transport adapter whose connection pools take warm connections (mount on a session)."""
        from .warmadapter import WarmAdapter, pool_classes

        with self._changed:
            if self._pools is None:
                self._pools = pool_classes(self)
        return WarmAdapter(self._pools)

    @contextmanager
    def ahead(self) -> Iterator[None]:
        """Requests made in this block on this thread use (and keep) a warm connection."""
        self._wanted.on = True
        try:
            yield
        finally:
            self._wanted.on = False
            if self._wanted.__dict__.pop("took", False):
                # The refill starts once the request is out, not on its critical path.
                with self._changed:
                    self._changed.notify_all()

    def wanted(self) -> bool:
        """Whether this thread is inside ahead()."""
        return getattr(self._wanted, "on", False)

    def take(self, pool: Any) -> Any:
        """The warm connection for `pool`'s upstream, or None; the next one is opened either way, once
        the ahead() block ends (off the request's critical path)."""
        now = self.clock()
        with self._changed:
            if self._closed or not self.enabled:
                return None
            key = _key(pool)
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(pool, now)
            slot.maker, slot.last_request, slot.failed = pool, now, False
            conn, slot.conn = slot.conn, None
            fresh = conn is not None and now - slot.opened_at < self.idle_limit
            self._start()
        self._wanted.took = True  # ahead() wakes the refill when the block ends
        if conn is not None and not (fresh and _alive(conn)):
            conn.close()
            return None
        return conn

    # ----- the background side -------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kiroproxy-warm", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                if self._closed:
                    return
                expired, wanted, wait = self._plan(self.clock())
                if not expired and not wanted:
                    self._changed.wait(wait)
                    continue
            for conn in expired:
                conn.close()
            for slot in wanted:
                self._open(slot)
            with self._changed:
                self._changed.notify_all()

    def _plan(self, now: float) -> Tuple[List[Any], List[_Slot], Optional[float]]:
        """Under the lock: connections to close, slots to fill, and how long to sleep otherwise."""
        expired: List[Any] = []
        wanted: List[_Slot] = []
        due: List[float] = []
        for key, slot in list(self._slots.items()):
            active = now - slot.last_request < self.active_window
            if slot.conn is not None and (not active or now - slot.opened_at >= self.idle_limit):
                expired.append(slot.conn)
                slot.conn = None
            if not active:
                if not slot.opening:
                    del self._slots[key]  # forgotten until its next request
                continue
            if slot.conn is None and not slot.opening and not slot.failed:
                slot.opening = True
                wanted.append(slot)
            due.append(slot.last_request + self.active_window)
            if slot.conn is not None:
                due.append(slot.opened_at + self.idle_limit)
        return expired, wanted, max(0.0, min(due) - now) if due else None

    def _open(self, slot: _Slot) -> None:
        try:
            conn = slot.maker.open_ahead(self.connect_timeout)
        except Exception as exc:  # any failure of a speculative open only costs the next request its handshake
            log.debug("opening a warm upstream connection failed: %s", type(exc).__name__)
            conn = None
        with self._changed:
            slot.opening = False
            if conn is None:
                slot.failed = True
                return
            if self._closed or slot.conn is not None:
                spare = conn
            else:
                slot.conn, slot.opened_at, spare = conn, self.clock(), None
            self._changed.notify_all()
        if spare is not None:
            spare.close()

    def close(self) -> None:
        """Close every warm connection and stop the thread."""
        with self._changed:
            self._closed = True
            conns = [slot.conn for slot in self._slots.values() if slot.conn is not None]
            self._slots.clear()
            self._changed.notify_all()
            thread = self._thread
        for conn in conns:
            conn.close()
        if thread is not None:
            thread.join(timeout=2)

    def open_count(self) -> int:
        """How many warm connections are open right now."""
        with self._changed:
            return self._open_count()

    def tracked(self) -> int:
        """How many upstreams are kept warm (have had a chat request within the active window)."""
        with self._changed:
            return len(self._slots)

    def wait_open(self, count: int, timeout: float) -> bool:
        """True once exactly `count` warm connections are open (for tests and the benchmark)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open_count() == count, timeout)

    def recheck(self) -> None:
        """Look at ages again now (after a test moved the clock) instead of at the next due time."""
        with self._changed:
            self._changed.notify_all()

    def _open_count(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.conn is not None)


def _key(pool: Any) -> Key:
    proxy = pool.proxy.url if pool.proxy is not None else ""
    return pool.scheme, pool.host, pool.port, proxy


def _alive(conn: Any) -> bool:
    """Open and not closed by the server while it waited (a readable idle socket means EOF)."""
    from urllib3.util.wait import wait_for_read  # loaded already by the pool that made `conn`

    sock = getattr(conn, "sock", None)
    return sock is not None and not wait_for_read(sock, timeout=0.0)


class WarmPoolMixin:
    warm: WarmConnections

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        if not self.warm.wanted():
            return conn
        conn.close()  # never reuse: a leftover of an earlier one-request connection (or a new one)
        return self.warm.take(self) or conn  # a closed conn connects on first use

    def open_ahead(self, connect_timeout: float) -> Any:
        """A new connection of this pool's kind, connected (through the proxy tunnel if any)."""
        from urllib3.util.proxy import connection_requires_http_tunnel

        conn = self._new_conn()  # type: ignore[attr-defined]
        conn.timeout = connect_timeout
        if self.proxy is not None and connection_requires_http_tunnel(  # type: ignore[attr-defined]
                self.proxy, self.proxy_config, self.scheme):  # type: ignore[attr-defined]
            self._prepare_proxy(conn)  # type: ignore[attr-defined]
        else:
            conn.connect()
        return conn

