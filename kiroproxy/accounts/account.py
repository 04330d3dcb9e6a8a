"""One account's mutable runtime state: its sticky status, cooldown, counters, and what listings show.

Plain data: only AccountPool creates and changes these, under its lock. No I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .credentials import Credentials

ACTIVE, COOLDOWN, UNHEALTHY, DISABLED, SUSPENDED, EXHAUSTED = (
    "active", "cooldown", "unhealthy", "disabled", "suspended", "exhausted")
STATES = (ACTIVE, COOLDOWN, UNHEALTHY, DISABLED, SUSPENDED, EXHAUSTED)
PERSISTED = ("enabled", "status", "reason", "cooldown_until", "strikes", "exhausted_until", "requests",
             "errors", "last_used", "last_error", "quota")


@dataclass
class Account:
    """Mutable runtime state of one account; only the pool touches it, under its lock."""

    creds: Credentials
    enabled: bool = True
    status: str = ACTIVE          # active | unhealthy | suspended | exhausted (sticky states)
    reason: str = ""
    cooldown_until: float = 0.0
    strikes: int = 0
    exhausted_until: float = 0.0
    requests: int = 0
    errors: int = 0
    last_used: float = 0.0
    last_error: str = ""
    quota: Optional[Dict[str, Any]] = None
    in_flight: int = 0
    last_started: float = 0.0
    changed_at: float = field(default=0.0)

    @property
    def id(self) -> str:
        return self.creds.id

    def state(self, now: float) -> str:
        if not self.enabled:
            return DISABLED
        if self.status in (SUSPENDED, UNHEALTHY):
            return self.status
        if self.status == EXHAUSTED and self.exhausted_until > now:
            return EXHAUSTED
        if self.cooldown_until > now:
            return COOLDOWN
        return ACTIVE

    def record(self) -> Dict[str, Any]:
        data = self.creds.to_record()
        data.update({k: getattr(self, k) for k in PERSISTED})
        return data

    def summary(self, now: float) -> Dict[str, Any]:
        """What listings show: no token values."""
        state = self.state(now)
        data = self.creds.public()
        data.update({
            "state": state, "enabled": self.enabled, "reason": self.reason if state != ACTIVE else "",
            "cooldown_until": self.cooldown_until if state == COOLDOWN else None,
            "exhausted_until": self.exhausted_until if state == EXHAUSTED else None,
            "token_expires_at": self.creds.expires_at or None,
            "requests": self.requests, "errors": self.errors, "last_used": self.last_used or None,
            "last_error": self.last_error or None, "in_flight": self.in_flight, "quota": self.quota,
        })
        return data
