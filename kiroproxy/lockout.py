"""Wrong admin keys per client address: after `max_failures` in a row (each within
`lockout_seconds` of the previous), the address is refused for `lockout_seconds`.

Thread-safe; the clock is a parameter. Bounded: at most `max_addresses` addresses are tracked.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List

MAX_ADDRESSES = 10_000


class Lockout:
    def __init__(self, max_failures: int, lockout_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self.max_addresses = max_addresses
        self._lock = threading.Lock()
        self._failures: Dict[str, List[float]] = {}  # address -> [count, last failure, locked until]

    def locked_for(self, address: str) -> float:
        """Seconds `address` is still refused (0: not locked)."""
        with self._lock:
            entry = self._failures.get(address)
            return max(0.0, entry[2] - self.clock()) if entry else 0.0

    def failed(self, address: str) -> bool:
        """Count a wrong key; True when this one locked the address (log it once)."""
        if self.lockout_seconds <= 0:
            return False
        now = self.clock()
        with self._lock:
            entry = self._failures.pop(address, None)
            if entry is None or now - entry[1] > self.lockout_seconds:
                entry = [0, now, 0.0]
            entry[0] += 1
            entry[1] = now
            locked = entry[0] >= self.max_failures
            if locked:
                entry = [0, now, now + self.lockout_seconds]
            self._failures[address] = entry  # re-inserted: the dict stays in order of last failure
            while len(self._failures) > self.max_addresses:
                self._failures.pop(next(iter(self._failures)))
            return locked

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
