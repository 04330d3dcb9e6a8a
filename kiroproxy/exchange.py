"""The record of one client request as it happens: the raw material of flows, stats and logs.

An Exchange has one writer at a time, the layer that knows the fact (the web layer: read,
accepted; the relay: routed, attempted, streaming, add, ...), and is changed only through those
methods, under its own lock. Everyone else reads an ExchangeSnapshot: a frozen copy made under
that lock, which nothing done to the exchange later can reach. Observers get the live exchange
once when it starts (to take snapshots while it runs) and its last snapshot when it ends.
Secrets never enter it: the protocol layer passes the client body without headers, and
redaction happens again when it is stored.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional, Protocol, Tuple

from .chat import Event, Finish, Reply, ReplyBuilder, Usage

PENDING, STREAMING, COMPLETED, ERROR, CANCELLED = "pending", "streaming", "completed", "error", "cancelled"

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Attempt:
    account_id: str
    outcome: str              # ok | rotate | refresh | exhausted | suspend | fail | unhealthy | network
    message: str = ""
    status: int = 0
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ExchangeSnapshot:
    """An exchange at one moment. `body` is the client's parsed JSON, which nothing changes once
    it is read; `reply` is a copy of the answer so far, this snapshot's own."""

    protocol: str
    path: str
    requested_model: str = ""
    stream: bool = False
    body: Any = None               # the client's JSON body (no headers)
    raw_body: Optional[bytes] = None  # the same body as the client sent it, when it parsed as-is
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)  # safe headers only (redaction.safe_headers)
    client: str = ""
    request: Any = None            # the parsed chat.ChatRequest, once parsing succeeded
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    model: str = ""                # upstream model actually used
    account_id: Optional[str] = None
    state: str = PENDING
    received_at: float = field(default_factory=time.time)
    first_byte_at: Optional[float] = None
    completed_at: Optional[float] = None
    usage: Usage = field(default_factory=Usage)
    attempts: Tuple[Attempt, ...] = ()
    reply: Optional[Reply] = None
    error: Optional[Mapping[str, Any]] = None   # {"kind", "status", "message"}
    status: int = 200

    @property
    def ttfb_ms(self) -> Optional[float]:
        if self.first_byte_at is None:
            return None
        return (self.first_byte_at - self.received_at) * 1000.0

    @property
    def duration_ms(self) -> Optional[float]:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.received_at) * 1000.0

    def snapshot(self) -> ExchangeSnapshot:
        """Itself: a snapshot reads like an exchange that no longer changes."""
        return self


class Exchange:
    """Thread-safe: the request thread and the stream's pump thread write (through the methods
    below only), any thread reads with snapshot(). `id`, `protocol` and `path` never change."""

    __slots__ = ("id", "protocol", "path", "_lock", "_facts", "_attempts", "_builder", "_state")

    def __init__(self, protocol: str, path: str, *, client: str = "", headers: Optional[Mapping[str, str]] = None,
                 id: Optional[str] = None, received_at: Optional[float] = None) -> None:
        self.id = id or uuid.uuid4().hex
        self.protocol = protocol
        self.path = path
        self._lock = threading.Lock()
        self._facts = {"client": client, "headers": MappingProxyType(dict(headers or {})),
                       "received_at": time.time() if received_at is None else received_at}
        self._attempts: Tuple[Attempt, ...] = ()
        self._builder: Optional[ReplyBuilder] = None
        self._state = PENDING

    @property
    def state(self) -> str:
        return self._state

    def snapshot(self) -> ExchangeSnapshot:
        with self._lock:
            facts = dict(self._facts)
            builder = self._builder
            reply = None
            if builder is not None:
                now = builder.reply
                reply = Reply(now.model, list(now.parts), now.finish, now.stop_sequence, now.usage)
            return ExchangeSnapshot(self.protocol, self.path, id=self.id, state=self._state, attempts=self._attempts,
                                    reply=reply, **facts)

    def _set(self, **facts: Any) -> None:
        with self._lock:
            self._facts.update(facts)

    def read(self, body: Any, raw_body: Optional[bytes]) -> None:
        """The client's body as read (before it is parsed), and its raw bytes when they parsed as-is."""
        self._set(body=body, raw_body=raw_body)

    def accepted(self, request: Any, *, stream: bool = False) -> None:
        """The body parsed into `request` (a chat.ChatRequest)."""
        self._set(request=request, requested_model=request.model, stream=stream)

    def routed(self, model: str) -> None:
        """The upstream model the request goes to."""
        self._set(model=model)

    def attempted(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts += (attempt,)

    def streaming(self, account_id: str, now: float) -> None:
        """An account answers: its ok attempt, the first byte's time."""
        with self._lock:
            self._attempts += (Attempt(account_id, "ok"),)
            self._facts.update(account_id=account_id, first_byte_at=now)
            self._state = STREAMING

    def answering(self) -> None:
        """The answer starts: from now on add() folds its events into the reply."""
        with self._lock:
            self._builder = ReplyBuilder(self._facts.get("model", ""))

    def add(self, event: Event) -> None:
        """One event of the answer; a Finish completes the exchange (encoders may stop reading
        right after it)."""
        with self._lock:
            self._builder.add(event)  # type: ignore[union-attr]
            if isinstance(event, Finish):
                self._state = COMPLETED

    def completed(self) -> None:
        with self._lock:
            self._state = COMPLETED

    def cancelled(self, error: Any = None, now: Optional[float] = None) -> None:
        """The client left, or (with `error`, a ProxyError) the proxy cut the answer: the flow
        keeps the error the client got."""
        with self._lock:
            if error is not None:
                self._fail(error.status, error.kind, error.message, now)
            self._state = CANCELLED

    def fail(self, status: int, kind: str, message: str, now: Optional[float] = None) -> None:
        with self._lock:
            self._fail(status, kind, message, now)

    def _fail(self, status: int, kind: str, message: str, now: Optional[float]) -> None:
        self._state = ERROR
        self._facts.update(status=status, error=MappingProxyType({"kind": kind, "status": status, "message": message}),
                           completed_at=now if now is not None else time.time())

    def settled(self, delivered: Optional[Usage]) -> None:
        """The answer ended: its usage is the reply's when it completed, else `delivered` (what
        was counted so far), and an unfinished reply's finish is the exchange's state."""
        with self._lock:
            if delivered is None:
                reply = self._builder.reply if self._builder is not None else None
                self._facts["usage"] = reply.usage if reply is not None else Usage()
                return
            self._facts["usage"] = delivered
            if self._builder is not None:
                self._builder.reply.finish = self._state

    def ended(self, now: float) -> ExchangeSnapshot:
        """The exchange is over (its completion time set, unless a failure set it): the snapshot
        its observers get."""
        with self._lock:
            if self._facts.get("completed_at") is None:
                self._facts["completed_at"] = now
        return self.snapshot()


class Observer(Protocol):
    def started(self, exchange: Exchange) -> None:
        """`exchange` is live: read it only with snapshot()."""

    def finished(self, exchange: ExchangeSnapshot) -> None: ...
