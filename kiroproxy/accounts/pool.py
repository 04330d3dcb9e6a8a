"""The account pool: round robin with stickiness, leases, cooldowns, parking, persistence.

All shared account state lives here behind one lock. The lock is held to decide, never across
network or disk I/O: saves take a fresh snapshot under the lock and write outside it.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from ..errors import NotFound, ProxyError, QuotaExhausted, RateLimited, Unavailable
from ..identity import label
from ..store.jsondb import JsonDB
from .account import (
    ACTIVE,
    COOLDOWN,
    DISABLED,
    EXHAUSTED,
    PERSISTED,
    STATES,
    SUSPENDED,
    UNHEALTHY,
    Account,
)
from .credentials import Credentials, identity_conflict, merge

log = logging.getLogger(__name__)


class Lease:
    """One request's hold on an account. release() is idempotent."""

    def __init__(self, pool: AccountPool, account_id: str, creds: Credentials, wait: float = 0.0) -> None:
        self.pool = pool
        self.account_id = account_id
        self.creds = creds
        self.wait = wait  # seconds to wait before starting (per-account minimum interval)
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.pool._release(self.account_id)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AccountPool:
    def __init__(self, db: Optional[JsonDB] = None, *, clock: Callable[[], float] = time.time,
                 cooldown_seconds: float = 180.0, max_cooldown_seconds: float = 1800.0,
                 max_concurrency: int = 0, min_interval: float = 0.0, sticky: bool = True,
                 concurrency_wait: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)  # an in-flight request ended
        self._save_lock = threading.Lock()
        self._db = db
        self.clock = clock
        self.cooldown_seconds = cooldown_seconds
        self.max_cooldown_seconds = max_cooldown_seconds
        self.max_concurrency = max_concurrency
        self.concurrency_wait = concurrency_wait  # seconds a request queues for a free slot
        self.min_interval = min_interval
        self.sticky = sticky
        self._accounts: Dict[str, Account] = {}
        self._order: List[str] = []
        self._cursor = 0
        self._sessions: Dict[str, str] = {}
        self._listeners: List[Callable[[str, str, str], None]] = []
        if db is not None:
            for record in db.all():
                self._load(record)

    def _load(self, record: Dict[str, Any]) -> None:
        # A value no JSON answer may carry (Infinity from a file older than the checks) reads as unknown.
        record = {k: 0.0 if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        creds = Credentials.from_record(record)
        account = Account(creds=creds)
        for key in PERSISTED:
            if key in record:
                setattr(account, key, record[key])
        self._accounts[creds.id] = account
        self._order.append(creds.id)

    # ----- membership --------------------------------------------------------------------

    def add(self, creds: Credentials, explicit: Iterable[str] = ()) -> Credentials:
        """Add an account, or update the one it matches (see match) as credentials.merge does:
        new tokens, but the user's name, proxy and source file stay unless `explicit` names them.
        Returns the stored credentials (their id is the matched account's)."""
        revived = False
        with self._lock:
            existing = self._match(creds)
            if existing is not None:
                creds = existing.creds = merge(existing.creds, creds, explicit)
                revived = existing.status == UNHEALTHY
                if revived:
                    existing.status, existing.reason = ACTIVE, ""
            else:
                self._accounts[creds.id] = Account(creds=creds)
                self._order.append(creds.id)
        if revived:
            self._changed(creds.id, ACTIVE, "new tokens were added")
        else:
            self._save(creds.id)
        return creds

    def match(self, creds: Credentials) -> Optional[Credentials]:
        """The account add() would update: the same id, else the same refresh token, else the same
        source file unless the two are provably different accounts (credentials.identity_conflict)."""
        with self._lock:
            account = self._match(creds)
            return account.creds if account is not None else None

    def _match(self, creds: Credentials) -> Optional[Account]:
        if creds.id in self._accounts:
            return self._accounts[creds.id]
        for account in self._accounts.values():
            if account.creds.refresh_token == creds.refresh_token:
                return account
        for account in self._accounts.values():
            if creds.source_path and account.creds.source_path == creds.source_path \
                    and identity_conflict(account.creds, creds) is None:
                return account
        return None

    def find(self, predicate: Callable[[Credentials], bool]) -> Optional[Credentials]:
        with self._lock:
            for account in self._accounts.values():
                if predicate(account.creds):
                    return account.creds
        return None

    def remove(self, account_id: str) -> bool:
        with self._save_lock:  # so a concurrent save cannot write the account back
            with self._lock:
                if self._accounts.pop(account_id, None) is None:
                    return False
                self._order.remove(account_id)
                self._sessions = {k: v for k, v in self._sessions.items() if v != account_id}
            if self._db is not None:
                self._db.remove(account_id)
        return True

    def ids(self) -> List[str]:
        with self._lock:
            return list(self._order)

    def creds(self, account_id: str) -> Credentials:
        with self._lock:
            return self._require(account_id).creds

    def record(self, account_id: str) -> Dict[str, Any]:
        """Everything persisted about an account, secrets included (for put_back)."""
        with self._lock:
            return self._require(account_id).record()

    def put_back(self, record: Dict[str, Any]) -> None:
        """Undo changes: the account's credentials, enabled flag and status as `record` has them."""
        creds = Credentials.from_record(record)
        with self._lock:
            account = self._accounts.get(creds.id)
            if account is None:
                return
            account.creds = creds
            account.enabled, account.status, account.reason = record["enabled"], record["status"], record["reason"]
        self._save(creds.id)

    def summary(self, account_id: str) -> Dict[str, Any]:
        with self._lock:
            return self._require(account_id).summary(self.clock())

    def summaries(self) -> List[Dict[str, Any]]:
        with self._lock:
            now = self.clock()
            return [self._accounts[i].summary(now) for i in self._order]

    def counts(self) -> Dict[str, int]:
        with self._lock:
            now = self.clock()
            out = {s: 0 for s in STATES}
            for account in self._accounts.values():
                out[account.state(now)] += 1
            return out

    def _require(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise NotFound(f"no account with id '{account_id}'")
        return account

    # ----- leasing -----------------------------------------------------------------------

    def lease(self, exclude: Iterable[str] = (), session_key: Optional[str] = None) -> Lease:
        """Pick an account for one request. Raises ProxyError when none can serve now."""
        excluded: Set[str] = set(exclude)
        deadline = time.monotonic() + self.concurrency_wait
        with self._lock:
            while True:
                now = self.clock()
                active = [self._accounts[i] for i in self._order
                          if i not in excluded and self._accounts[i].state(now) == ACTIVE]
                ready = [a for a in active if not self.max_concurrency or a.in_flight < self.max_concurrency]
                left = deadline - time.monotonic()
                if ready or not active or left <= 0:
                    break
                # Every usable account is at its concurrency cap: queue for a slot (the lock is
                # released while waiting) rather than refusing a burst of parallel requests.
                self._slot_freed.wait(min(left, 1.0))
            if not ready:
                raise self._none_available(now, excluded)
            account = self._choose(ready, session_key, now)
            wait = 0.0
            if self.min_interval and account.last_started:
                wait = max(0.0, account.last_started + self.min_interval - now)
            account.in_flight += 1
            account.last_started = now + wait
            if session_key and self.sticky:
                self._sessions[session_key] = account.id
                if len(self._sessions) > 10_000:
                    self._sessions.pop(next(iter(self._sessions)))
            return Lease(self, account.id, account.creds, wait)

    def _choose(self, ready: List[Account], session_key: Optional[str], now: float) -> Account:
        if session_key and self.sticky:
            sticky_id = self._sessions.get(session_key)
            for account in ready:
                if account.id == sticky_id:
                    return account
        if self.min_interval:
            rested = [a for a in ready if a.last_started + self.min_interval <= now]
            if rested:
                ready = rested
            else:
                return min(ready, key=lambda a: a.last_started)
        positions = {account_id: n for n, account_id in enumerate(self._order)}
        size = len(self._order)
        choice = min(ready, key=lambda a: (positions[a.id] - self._cursor) % size)
        self._cursor = (positions[choice.id] + 1) % size
        return choice

    def _none_available(self, now: float, excluded: Set[str]) -> ProxyError:
        accounts = [a for a in self._accounts.values() if a.id not in excluded]
        if not self._accounts:
            return Unavailable("no Kiro accounts are configured; add one with POST /api/accounts "
                               "or `python kiroproxy.py login`")
        states = [a.state(now) for a in accounts]
        if COOLDOWN in states:
            soonest = min(a.cooldown_until for a in accounts if a.state(now) == COOLDOWN)
            return RateLimited("every Kiro account is rate limited right now; retry later",
                               retry_after=max(1.0, soonest - now))
        if EXHAUSTED in states:
            soonest = min(a.exhausted_until for a in accounts if a.state(now) == EXHAUSTED)
            return QuotaExhausted("every Kiro account has used up its credits until the next reset",
                                  retry_after=max(1.0, soonest - now))
        if ACTIVE in states:  # active but at their concurrency cap
            return RateLimited("every Kiro account is at its concurrency limit; retry shortly", retry_after=1.0)
        reasons = "; ".join(f"{label(a.id)}: {a.state(now)}" + (f" ({a.reason})" if a.reason else "")
                            for a in accounts) or "all tried"
        return Unavailable(f"no Kiro account can serve requests ({reasons})")

    def _release(self, account_id: str) -> None:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is not None and account.in_flight > 0:
                account.in_flight -= 1
                self._slot_freed.notify()

    # ----- outcomes and state changes ----------------------------------------------------

    def record_success(self, account_id: str) -> None:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return
            account.requests += 1
            account.last_used = self.clock()
            account.strikes = 0

    def record_error(self, account_id: str, message: str) -> None:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return
            account.requests += 1
            account.errors += 1
            account.last_used = self.clock()
            account.last_error = message[:300]

    def cooldown(self, account_id: str, seconds: Optional[float], reason: str, *, strike: bool = True) -> float:
        """Rest an account. None: the default, doubling with each strike. Returns the seconds used."""
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return 0.0
            if seconds is None:
                # Cap the exponent: float * 2**1024 overflows, and the max is reached long before.
                seconds = min(self.max_cooldown_seconds, self.cooldown_seconds * (2 ** min(account.strikes, 32)))
            if strike:
                account.strikes += 1
            account.cooldown_until = max(account.cooldown_until, self.clock() + seconds)
            account.reason = reason
        self._changed(account_id, COOLDOWN, f"{reason} (for {seconds:.0f}s)")
        return seconds

    def park(self, account_id: str, until: float, reason: str) -> None:
        self._set(account_id, EXHAUSTED, reason, exhausted_until=until)

    def suspend(self, account_id: str, reason: str) -> None:
        self._set(account_id, SUSPENDED, reason)

    def mark_unhealthy(self, account_id: str, reason: str) -> None:
        self._set(account_id, UNHEALTHY, reason)

    def set_enabled(self, account_id: str, enabled: bool) -> None:
        with self._lock:
            account = self._require(account_id)
            account.enabled = enabled
        self._changed(account_id, ACTIVE if enabled else DISABLED, "by the user")

    def restore(self, account_id: str) -> None:
        """Clear cooldown and error states (the user says the account is fine again)."""
        with self._lock:
            account = self._require(account_id)
            account.status, account.reason = ACTIVE, ""
            account.cooldown_until = account.exhausted_until = 0.0
            account.strikes = 0
        self._changed(account_id, ACTIVE, "restored by the user")

    def _set(self, account_id: str, status: str, reason: str, **extra: Any) -> None:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return
            account.status, account.reason = status, reason
            for key, value in extra.items():
                setattr(account, key, value)
        self._changed(account_id, status, reason)

    def update_creds(self, account_id: str, change: Callable[[Credentials], Credentials]) -> Optional[Credentials]:
        """Replace an account's credentials (token rotation): written to disk (synced) first, then
        used. A refresh may have rotated the refresh token; a crash must never leave the new one in
        memory only, nor may another save write the old one back meanwhile (the save lock)."""
        with self._save_lock:
            with self._lock:
                account = self._accounts.get(account_id)
                if account is None:
                    return None
                creds = change(account.creds)
                revived = account.status == UNHEALTHY
                record = {**account.record(), **creds.to_record()}
            if revived:
                record["status"], record["reason"] = ACTIVE, ""
            if self._db is not None:
                try:
                    self._db.upsert(record)
                except OSError as exc:  # the old refresh token may be dead already: keep the new one
                    log.error("account %s: new tokens not written to disk (%s); kept in memory", account_id, exc)
            with self._lock:
                account.creds = creds
                if revived:
                    account.status, account.reason = ACTIVE, ""
        if revived:
            self._changed(account_id, ACTIVE, "usable again with new credentials")
        return creds

    def set_quota(self, account_id: str, quota: Dict[str, Any]) -> None:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return
            account.quota = quota

    def on_change(self, listener: Callable[[str, str, str], None]) -> None:
        """listener(account_id, state, reason) after each state change (not under the lock)."""
        self._listeners.append(listener)

    def _changed(self, account_id: str, state: str, reason: str) -> None:
        log.info("account %s -> %s: %s", account_id, state, reason)
        self._save(account_id)
        for listener in self._listeners:
            listener(account_id, state, reason)

    # ----- persistence -------------------------------------------------------------------

    def _save(self, account_id: str) -> None:
        if self._db is None:
            return
        with self._save_lock:
            with self._lock:
                account = self._accounts.get(account_id)
                record = account.record() if account is not None else None
            if record is not None:
                self._db.upsert(record)

    def flush(self) -> None:
        """Write every account's current state (counters included) to disk."""
        for account_id in self.ids():
            self._save(account_id)
