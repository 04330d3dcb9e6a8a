"""What /healthz reports: whether an account can serve, whether the upstream has been failing, and
whether the data directory takes writes. Each check is ok or not with a reason; nothing secret.

UpstreamHealth is an exchange observer counting consecutive upstream failures.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict

from .accounts.account import ACTIVE, COOLDOWN, EXHAUSTED
from .exchange import Exchange, ExchangeSnapshot

UPSTREAM_KINDS = frozenset({"upstream", "timeout", "truncated", "overloaded"})
FAILING_AFTER = 5  # consecutive upstream failures that make the service degraded


class UpstreamHealth:
    def __init__(self, failing_after: int = FAILING_AFTER) -> None:
        self.failing_after = failing_after
        self.failures = 0
        self.last_reason = ""
        self._lock = threading.Lock()

    def started(self, exchange: Exchange) -> None:
        pass

    def finished(self, exchange: ExchangeSnapshot) -> None:
        error = exchange.error or {}
        with self._lock:
            if error.get("kind") in UPSTREAM_KINDS:
                self.failures += 1
                self.last_reason = str(error.get("message") or error.get("kind"))[:200]
            elif not error and exchange.account_id is not None:
                self.failures = 0  # an answer came through from upstream

    def check(self) -> Dict[str, Any]:
        with self._lock:
            if self.failures >= self.failing_after:
                return {"ok": False, "reason": f"the last {self.failures} requests failed upstream "
                                               f"(last: {self.last_reason})"}
            return {"ok": True, "consecutive_failures": self.failures}


def accounts_check(counts: Dict[str, int]) -> Dict[str, Any]:
    total = sum(counts.values())
    if counts.get(ACTIVE, 0):
        return {"ok": True, "usable": counts[ACTIVE], "total": total}
    if not total:
        return {"ok": False, "reason": "no account: sign in with `kiroproxy login builder-id` (or google / "
                                       "github), or add Kiro's token file"}
    if counts.get(COOLDOWN, 0) + counts.get(EXHAUSTED, 0) == total:
        return {"ok": False, "reason": f"every account ({total}) is cooling down or out of credits"}
    return {"ok": False, "reason": f"no usable account among {total}: see `kiroproxy accounts list`"}


def data_dir_check(home: Path) -> Dict[str, Any]:
    if home.is_dir() and os.access(home, os.W_OK | os.X_OK):
        return {"ok": True}
    return {"ok": False, "reason": f"the data directory {home} is not writable"}


def report(counts: Dict[str, int], upstream: UpstreamHealth, home: Path) -> Dict[str, Any]:
    checks = {"accounts": accounts_check(counts), "upstream": upstream.check(), "data_dir": data_dir_check(home)}
    healthy = all(c["ok"] for c in checks.values())
    return {"status": "ok" if healthy else "degraded", "checks": checks}
