"""Account health over the pool: live usage with a short cache, pool quota totals, token checks.

Network calls happen here (through the Kiro client and the refresher), never under the pool lock.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..errors import ProxyError
from ..kiro.auth import RefreshError
from ..kiro.client import KiroClient
from . import quota as quotas
from . import scan
from .pool import COOLDOWN, DISABLED, EXHAUSTED, UNHEALTHY, AccountPool
from .refresher import Refresher

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, pool: AccountPool, refresher: Refresher, client: KiroClient, *,
                 cache_seconds: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.refresher = refresher
        self.client = client
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()

    def usage(self, account_id: str, max_age: Optional[float] = None) -> Dict[str, Any]:
        """The account's usage (live when the cached copy is older than max_age seconds).

        Raises ProxyError/RefreshError when Kiro cannot be asked; NotFound for unknown ids."""
        max_age = self.cache_seconds if max_age is None else max_age
        with self._lock:
            cached = self._cache.get(account_id)
        if cached is not None and self.clock() - cached["fetched_at"] <= max_age:
            return cached
        creds = self.refresher.ensure_fresh(account_id)
        document = self.client.usage_limits(creds)
        parsed = quotas.parse(document)
        entry = {"account_id": account_id, "fetched_at": self.clock(), "quota": parsed.to_dict()}
        with self._lock:
            self._cache[account_id] = entry
        self.pool.set_quota(account_id, {**parsed.to_dict(), "fetched_at": entry["fetched_at"]})
        return entry

    def reset_date(self, account_id: str) -> Optional[float]:
        """When an exhausted account's credits come back, if its usage says so."""
        try:
            entry = self.usage(account_id, max_age=0)
        except (ProxyError, RefreshError) as exc:
            log.info("account %s: no reset date from Kiro: %s", account_id, exc)
            return None
        return entry["quota"].get("next_reset_at")

    def quota(self) -> Dict[str, Any]:
        """Per account and pool totals; accounts whose usage cannot be read say why."""
        now = self.clock()
        accounts: List[Dict[str, Any]] = []
        totals = {"remaining": 0.0, "used": 0.0, "limit": 0.0}
        next_reset: Optional[float] = None
        for summary in self.pool.summaries():
            row: Dict[str, Any] = {"id": summary["id"], "name": summary["name"], "state": summary["state"],
                                   "cooldown_until": summary["cooldown_until"],
                                   "exhausted_until": summary["exhausted_until"]}
            if summary["state"] != DISABLED:
                try:
                    entry = self.usage(summary["id"])
                    row["quota"], row["fetched_at"] = entry["quota"], entry["fetched_at"]
                    for key in totals:
                        totals[key] += entry["quota"].get(key) or 0.0
                    reset = entry["quota"].get("next_reset_at")
                    if reset and (next_reset is None or reset < next_reset):
                        next_reset = reset
                except (ProxyError, RefreshError) as exc:
                    row["error"] = str(exc)
            accounts.append(row)
        cooling = [{"id": a["id"], "until": a["cooldown_until"]} for a in accounts if a["state"] == COOLDOWN]
        parked = [{"id": a["id"], "until": a["exhausted_until"]} for a in accounts if a["state"] == EXHAUSTED]
        return {"accounts": accounts, "totals": {**totals, "next_reset_at": next_reset},
                "cooling_down": cooling, "exhausted": parked, "generated_at": now}

    def refresh_check(self) -> List[Dict[str, Any]]:
        """Check every account's token: valid / expiring / expired / refresh failed; refresh as needed."""
        now = self.clock()
        out = []
        for summary in self.pool.summaries():
            account_id = summary["id"]
            expires = summary.get("token_expires_at") or 0.0
            status = "valid"
            if not expires or expires <= now:
                status = "expired"
            elif expires - now <= self.refresher.margin:
                status = "expiring"
            row = {"id": account_id, "name": summary["name"], "status": status, "expires_at": expires or None}
            if status != "valid" and summary["state"] != DISABLED:
                row.update(self._refresh(account_id))
            out.append(row)
        return out

    def refresh_all(self) -> List[Dict[str, Any]]:
        return [{"id": s["id"], "name": s["name"], **self._refresh(s["id"])}
                for s in self.pool.summaries() if s["state"] != DISABLED]

    def _refresh(self, account_id: str) -> Dict[str, Any]:
        try:
            creds = self.refresher.ensure_fresh(account_id, force=True)
        except RefreshError as exc:
            return {"refreshed": False, "status": "refresh failed", "error": exc.message,
                    "permanent": exc.permanent}
        return {"refreshed": True, "status": "valid", "expires_at": creds.expires_at}


class Adopter:
    """Adopts newer tokens that Kiro itself wrote to the token file an account was added from.

    Kiro IDE and kiro-cli refresh their own tokens; when ours die (or theirs are newer), the
    file on disk is the way back. Files are re-read only when their modification time changes.
    """

    def __init__(self, pool: AccountPool, home_of: Callable[[], Any]) -> None:
        self.pool = pool
        self.home_of = home_of
        self._seen: Dict[str, float] = {}

    def run_once(self) -> List[str]:
        adopted = []
        for account_id in self.pool.ids():
            creds = self.pool.creds(account_id)
            if not creds.source_path:
                continue
            file_path = creds.source_path.split("#", 1)[0]
            try:
                mtime = os.stat(file_path).st_mtime
            except OSError:
                continue
            if self._seen.get(account_id) == mtime:
                continue
            self._seen[account_id] = mtime
            try:
                found = scan.load(creds.source_path, self.home_of())
            except ProxyError as exc:
                log.info("account %s: cannot re-read %s: %s", account_id, creds.source_path, exc)
                continue
            if found.refresh_token == creds.refresh_token and found.expires_at <= creds.expires_at:
                continue
            if found.expires_at < creds.expires_at and self.pool.summary(account_id)["state"] != UNHEALTHY:
                continue  # ours is newer and still healthy
            self.pool.update_creds(account_id, lambda c, f=found: c.with_tokens(
                f.access_token, f.refresh_token, f.expires_at, f.profile_arn))
            log.info("account %s: adopted newer tokens from %s", account_id, creds.source_path)
            adopted.append(account_id)
        return adopted
