"""Stream slots: how many chat requests (streamed or not) run at once. Each holds a server thread
until its answer ends, so a request beyond the slots is refused at once with a 429 and
Retry-After instead of queueing behind the others, and the threads beyond the slots stay free for
admin calls, model lists and token counts.
"""
from __future__ import annotations

import threading

from .errors import RateLimited

RETRY_AFTER_SECONDS = 2.0


class Slot:
    """One taken slot; release() is idempotent (a stream's close and an error path may both call it)."""

    def __init__(self, slots: StreamSlots) -> None:
        self._slots = slots
        self._released = False

    def release(self) -> None:
        with self._slots._lock:
            if self._released:
                return
            self._released = True
            self._slots._in_use -= 1


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def take(self) -> Slot:
        """A slot, or RateLimited when all `limit` are taken (the caller must release it)."""
        with self._lock:
            if self._in_use >= self.limit:
                raise RateLimited(f"the proxy is already serving {self.limit} chat requests (max_streams); "
                                  "retry shortly", retry_after=RETRY_AFTER_SECONDS)
            self._in_use += 1
        return Slot(self)
