"""The record of one client request as it happens: the raw material of flows, stats and logs.

Plain data plus the observer protocol. Secrets never enter it: the protocol layer passes the
client body without headers, and redaction happens again when it is stored.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol

from .chat import Reply, Usage

PENDING, STREAMING, COMPLETED, ERROR, CANCELLED = "pending", "streaming", "completed", "error", "cancelled"


@dataclass
class Attempt:
    account_id: str
    outcome: str              # ok | rotate | refresh | exhausted | suspend | fail | unhealthy | network
    message: str = ""
    status: int = 0
    at: float = field(default_factory=time.time)


@dataclass
class Exchange:
    protocol: str
    path: str
    requested_model: str = ""
    stream: bool = False
    body: Any = None               # the client's JSON body (no headers)
    raw_body: Optional[bytes] = None  # the same body as the client sent it, when it parsed as-is
    headers: Dict[str, str] = field(default_factory=dict)  # safe headers only (redaction.safe_headers)
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
    attempts: List[Attempt] = field(default_factory=list)
    reply: Optional[Reply] = None
    error: Optional[Dict[str, Any]] = None   # {"kind", "status", "message"}
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

    def fail(self, status: int, kind: str, message: str, now: Optional[float] = None) -> None:
        self.state = ERROR
        self.status = status
        self.error = {"kind": kind, "status": status, "message": message}
        self.completed_at = now if now is not None else time.time()


class Observer(Protocol):
    def started(self, exchange: Exchange) -> None: ...

    def finished(self, exchange: Exchange) -> None: ...
