"""Account health over the pool: live usage with a short cache, pool quota totals, token checks, and
adopting newer tokens that Kiro itself wrote to an account's token file.

Network calls happen here (through the Kiro client and the refresher), never under the pool lock.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import NotFound, ProxyError, UpstreamError
from ..kiro import errors as kiro_errors
from ..kiro.auth import RefreshError
from ..kiro.client import KiroClient
from ..kiro.errors import KiroFailure
from . import quota as quotas
from . import scan
from .account import COOLDOWN, DISABLED, EXHAUSTED, SUSPENDED, UNHEALTHY
from .credentials import Credentials, identity_conflict
from .pool import AccountPool
from .refresher import Refresher, failure_text

log = logging.getLogger(__name__)

# The user has to act on these first: asking Kiro about them would only repeat a known failure.
NOT_ASKED = (DISABLED, UNHEALTHY, SUSPENDED)


class Monitor:
    def __init__(self, pool: AccountPool, refresher: Refresher, client: KiroClient, *,
                 cache_seconds: float = 60.0, failure_seconds: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.refresher = refresher
        self.client = client
        self.cache_seconds = cache_seconds
        self.failure_seconds = failure_seconds
        self.clock = clock
        self._cache: Dict[str, Dict[str, Any]] = {}
        self._failures: Dict[str, Tuple[float, UpstreamError]] = {}
        self._lock = threading.Lock()

    def usage(self, account_id: str, max_age: Optional[float] = None) -> Dict[str, Any]:
        """The account's usage (live when max_age is 0 or the cached copy is older than max_age seconds).

        A failure is remembered too, for failure_seconds (at most max_age), so a polling page does
        not hammer Kiro. Raises UpstreamError (503 when worth retrying later, else 502) when Kiro
        cannot be asked, NotFound for unknown ids; never an authentication error.
        """
        max_age = self.cache_seconds if max_age is None else max_age
        now = self.clock()
        with self._lock:
            cached = self._cache.get(account_id)
            failed = self._failures.get(account_id)
        if cached is not None and max_age > 0 and now - cached["fetched_at"] <= max_age:
            return cached
        if failed is not None and max_age > 0 and now - failed[0] < min(max_age, self.failure_seconds):
            error = failed[1]
            raise UpstreamError(error.message, status=error.status, kind=error.kind, retry_after=error.retry_after)
        try:
            document = self._fetch(account_id)
        except UpstreamError as exc:
            with self._lock:
                self._failures[account_id] = (now, exc)
            raise
        parsed = quotas.parse(document)
        entry = {"account_id": account_id, "fetched_at": self.clock(), "quota": parsed.to_dict()}
        with self._lock:
            self._cache[account_id] = entry
            self._failures.pop(account_id, None)
        self.pool.set_quota(account_id, {**parsed.to_dict(), "fetched_at": entry["fetched_at"]})
        return entry

    def _fetch(self, account_id: str) -> Dict[str, Any]:
        """getUsageLimits, refreshing the token once if Kiro rejects it. Kiro's suspension and quota
        signals change the account's state here as they do for chat requests."""
        try:
            creds = self.refresher.ensure_fresh(account_id)
            try:
                return self.client.usage_limits(creds)
            except KiroFailure as failure:
                if failure.action != kiro_errors.REFRESH:
                    raise
                log.info("account %s: the usage query's token was rejected; refreshing once", account_id)
                creds = self.refresher.ensure_fresh(account_id, stale_token=creds.access_token)
                return self.client.usage_limits(creds)
        except RefreshError as exc:
            raise UpstreamError(failure_text(exc), kind="refresh_failed") from None
        except KiroFailure as failure:
            raise self._failed(account_id, failure) from None

    def _failed(self, account_id: str, failure: KiroFailure) -> UpstreamError:
        """Apply what a failure says about the account; returns the error to answer with."""
        message = f"Kiro's usage query failed: {failure.message}"
        if failure.action == kiro_errors.SUSPEND:
            self.pool.suspend(account_id, failure.message)
            message += "; the account is suspended and set aside"
        elif failure.action == kiro_errors.EXHAUSTED:
            now = self.clock()
            with self._lock:
                known = (self._cache.get(account_id) or {}).get("quota", {}).get("next_reset_at")
            until = known if failure.period != "day" and known and known > now else \
                quotas.next_reset(now, failure.period or "month")
            self.pool.park(account_id, until, failure.message)
            message += "; the account is parked until its credits reset"
        later = failure.action in (kiro_errors.ROTATE, kiro_errors.EXHAUSTED)
        return UpstreamError(message, status=503 if later else 502, kind="overloaded" if later else "upstream",
                             retry_after=failure.retry_after)

    def email_of(self, creds: Credentials) -> Optional[str]:
        """The e-mail Kiro reports for exactly these credentials (no refresh, no cache, no pool
        change). Raises ProxyError when Kiro cannot be asked."""
        return quotas.parse(self.client.usage_limits(creds)).email

    def reset_date(self, account_id: str) -> Optional[float]:
        """When an exhausted account's credits come back, if its usage says so."""
        try:
            entry = self.usage(account_id, max_age=0)
        except ProxyError as exc:
            log.info("account %s: no reset date from Kiro: %s", account_id, exc)
            return None
        return entry["quota"].get("next_reset_at")

    def quota(self) -> Dict[str, Any]:
        """Per account and pool totals. Disabled, unhealthy and suspended accounts are not asked
        (their row shows the state and reason); accounts whose usage cannot be read say why."""
        now = self.clock()
        accounts: List[Dict[str, Any]] = []
        totals = {"remaining": 0.0, "used": 0.0, "limit": 0.0}
        next_reset: Optional[float] = None
        for summary in self.pool.summaries():
            row: Dict[str, Any] = {"id": summary["id"], "name": summary["name"], "state": summary["state"],
                                   "reason": summary["reason"] or None,
                                   "cooldown_until": summary["cooldown_until"],
                                   "exhausted_until": summary["exhausted_until"]}
            accounts.append(row)
            if summary["state"] in NOT_ASKED:
                continue
            try:
                entry = self.usage(summary["id"])
            except ProxyError as exc:
                row["error"] = str(exc)
                continue
            row["quota"], row["fetched_at"] = entry["quota"], entry["fetched_at"]
            for key in totals:
                totals[key] += entry["quota"].get(key) or 0.0
            reset = entry["quota"].get("next_reset_at")
            if reset and (next_reset is None or reset < next_reset):
                next_reset = reset
        cooling = [{"id": a["id"], "until": a["cooldown_until"]} for a in accounts if a["state"] == COOLDOWN]
        parked = [{"id": a["id"], "until": a["exhausted_until"]} for a in accounts if a["state"] == EXHAUSTED]
        return {"accounts": accounts, "totals": {**totals, "next_reset_at": next_reset},
                "cooling_down": cooling, "exhausted": parked, "generated_at": now}

    def refresh_check(self) -> List[Dict[str, Any]]:
        """Check every account's token and refresh those that need it.

        Each row: `before` (valid / expiring / expired), `outcome` (not needed / refreshed /
        refresh failed / skipped: ...) and `status`, the token's status now.
        """
        now = self.clock()
        out = []
        for summary in self.pool.summaries():
            account_id = summary["id"]
            expires = summary.get("token_expires_at") or 0.0
            before = "valid"
            if not expires or expires <= now:
                before = "expired"
            elif expires - now <= self.refresher.margin:
                before = "expiring"
            row = {"id": account_id, "name": summary["name"], "before": before, "status": before,
                   "outcome": "not needed", "expires_at": expires or None}
            if before != "valid":
                if summary["state"] == DISABLED:
                    row["outcome"] = "skipped: the account is disabled"
                else:
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
            return {"refreshed": False, "status": "refresh failed", "outcome": "refresh failed",
                    "error": exc.message, "permanent": exc.permanent}
        return {"refreshed": True, "status": "valid", "outcome": "refreshed", "expires_at": creds.expires_at}


class Adopter:
    """Adopts newer tokens that Kiro itself wrote to the token file an account was added from.

    Kiro IDE and kiro-cli refresh their own tokens; when ours die (or theirs are newer), the file
    on disk is the way back. Files are re-read only when their modification time changes. Tokens
    are taken only when the file still holds the same account: not when another user signed in
    there (credentials.identity_conflict; and, given `identify` (credentials -> e-mail) and a
    known e-mail for the account, not when Kiro names another user for the file's tokens).
    """

    def __init__(self, pool: AccountPool, home_of: Callable[[], Any],
                 identify: Optional[Callable[[Credentials], Optional[str]]] = None) -> None:
        self.pool = pool
        self.home_of = home_of
        self.identify = identify
        self._seen: Dict[str, float] = {}

    def run_once(self) -> List[str]:
        adopted = []
        for account_id in self.pool.ids():
            try:
                creds = self.pool.creds(account_id)
            except NotFound:
                continue  # removed meanwhile
            found = self._reread(account_id, creds)
            if found is None or not self._worth_taking(account_id, creds, found):
                continue
            refusal = self._refusal(account_id, creds, found)
            if refusal:
                log.warning("account %s: not adopting the tokens in %s: %s; add that file as an account "
                            "of its own if it is wanted", account_id, creds.source_path, refusal)
                continue
            self.pool.update_creds(account_id, lambda c, f=found: c.with_tokens(
                f.access_token, f.refresh_token, f.expires_at, f.profile_arn))
            log.info("account %s: adopted newer tokens from %s", account_id, creds.source_path)
            adopted.append(account_id)
        return adopted

    def _reread(self, account_id: str, creds: Credentials) -> Optional[Credentials]:
        """The credentials in the account's source file, if it changed since it was last read."""
        if not creds.source_path:
            return None
        try:
            mtime = os.stat(creds.source_path.split("#", 1)[0]).st_mtime
        except OSError:
            return None
        if self._seen.get(account_id) == mtime:
            return None
        self._seen[account_id] = mtime
        try:
            return scan.load(creds.source_path, self.home_of())
        except ProxyError as exc:
            log.info("account %s: cannot re-read %s: %s", account_id, creds.source_path, exc)
            return None

    def _worth_taking(self, account_id: str, creds: Credentials, found: Credentials) -> bool:
        if found.refresh_token == creds.refresh_token and found.expires_at <= creds.expires_at:
            return False
        # An older token is worth taking only once ours is dead.
        return found.expires_at >= creds.expires_at or self.pool.summary(account_id)["state"] == UNHEALTHY

    def _refusal(self, account_id: str, creds: Credentials, found: Credentials) -> Optional[str]:
        """Why the file's tokens must not become this account's; None when they may."""
        conflict = identity_conflict(creds, found)
        if conflict:
            return f"the file now holds another account ({conflict})"
        if found.refresh_token == creds.refresh_token or self.identify is None:
            return None
        known = (self.pool.summary(account_id).get("quota") or {}).get("email")
        if not known:
            return None
        try:
            email = self.identify(found)
        except ProxyError as exc:
            return f"Kiro could not confirm whose tokens they are ({exc})"
        if email and email.strip().lower() != str(known).strip().lower():
            return "the file now holds another user's account (Kiro reports another e-mail)"
        return None
