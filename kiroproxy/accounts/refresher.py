"""Token freshness: single-flight refresh per account, and the one background refresh thread.

Refresh calls run outside the pool lock; a per-account lock makes concurrent callers wait for
one refresh instead of starting their own.
"""
from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections import defaultdict
from typing import Callable, Dict, Optional, Sequence, Tuple

from ..kiro.auth import Authenticator, RefreshError
from .account import ACTIVE, COOLDOWN, EXHAUSTED
from .credentials import Credentials
from .pool import AccountPool

log = logging.getLogger(__name__)


def failure_text(exc: RefreshError) -> str:
    """"token refresh failed: <why>", said once (some RefreshError messages already start so)."""
    if exc.message.lower().startswith("token refresh"):
        return exc.message
    return f"token refresh failed: {exc.message}"


class Refresher:
    def __init__(self, pool: AccountPool, auth: Authenticator, *, margin: float = 600.0,
                 interval: float = 60.0, clock: Callable[[], float] = time.time,
                 rng: Optional[random.Random] = None,
                 listeners: Sequence[Callable[[str], None]] = (),
                 outcomes: Sequence[Callable[[str], None]] = ()) -> None:
        self.pool = pool
        self.auth = auth
        self.margin = margin
        self.interval = interval
        self.clock = clock
        self.rng = rng or random.Random()
        self.refreshes: Dict[str, int] = defaultdict(int)
        self._locks: Dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._retry_at: Dict[str, float] = {}
        self._failures: Dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.listeners = tuple(listeners)  # listener(account_id) after each successful refresh
        self.outcomes = tuple(outcomes)  # told "ok", "failed" or "rejected" per refresh
        self.tasks: Tuple[Callable[[], object], ...] = ()  # run on every background pass (see start)

    def _lock_for(self, account_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[account_id]

    def _needs_refresh(self, creds: Credentials, margin: float) -> bool:
        return not creds.access_token or creds.expires_within(margin, self.clock())

    def ensure_fresh(self, account_id: str, *, stale_token: Optional[str] = None,
                     force: bool = False, margin: Optional[float] = None,
                     background: bool = False) -> Credentials:
        """Credentials with a usable access token.

        `stale_token`: the upstream rejected this token; refresh unless another thread already
        replaced it. `force`: refresh now regardless. `margin`: refresh when fewer seconds remain.
        `background`: report every failure (a request instead keeps using a still-valid token).
        Raises RefreshError when refreshing fails and the current token cannot be used; a
        permanent failure marks the account unhealthy.
        """
        margin = self.margin if margin is None else margin
        creds = self.pool.creds(account_id)
        if not force and stale_token is None and not self._needs_refresh(creds, margin):
            return creds
        with self._lock_for(account_id):
            creds = self.pool.creds(account_id)  # another thread may have refreshed meanwhile
            if stale_token is not None and creds.access_token != stale_token:
                return creds
            if not force and stale_token is None and not self._needs_refresh(creds, margin):
                return creds
            return self._refresh(creds, usable_if_failed=stale_token is None and not force and not background)

    def _refresh(self, creds: Credentials, usable_if_failed: bool) -> Credentials:
        account_id = creds.id
        try:
            update = self.auth.refresh(creds)
        except RefreshError as exc:
            self._failures[account_id] += 1
            self._tell("rejected" if exc.permanent else "failed")
            if exc.permanent:
                self.pool.mark_unhealthy(account_id, failure_text(exc))
                raise
            log.warning("account %s: transient refresh failure: %s", account_id, exc.message)
            if usable_if_failed and creds.access_token and not creds.expires_within(0, self.clock()):
                return creds
            raise
        self._failures.pop(account_id, None)
        self._retry_at.pop(account_id, None)
        fresh = self.pool.update_creds(account_id, lambda c: c.with_tokens(
            update.access_token, update.refresh_token, update.expires_at, update.profile_arn))
        self.refreshes[account_id] += 1
        self._tell("ok")
        log.info("account %s: token refreshed, valid for %.0f min", account_id,
                 (update.expires_at - self.clock()) / 60)
        for listener in self.listeners:
            listener(account_id)
        return fresh or creds

    def _tell(self, outcome: str) -> None:
        for listener in self.outcomes:
            listener(outcome)

    # ----- background thread -------------------------------------------------------------

    def due(self) -> list:
        """Ids of accounts whose token should be refreshed now (jittered margin, backoff)."""
        now = self.clock()
        out = []
        for summary in self.pool.summaries():
            if summary["state"] not in (ACTIVE, COOLDOWN, EXHAUSTED):
                continue
            if self._retry_at.get(summary["id"], 0.0) > now:
                continue
            expires = summary.get("token_expires_at") or 0.0
            jitter = self._jitter(summary["id"])
            if expires and expires - now <= self.margin + jitter:
                out.append(summary["id"])
        return out

    def _jitter(self, account_id: str) -> float:
        # A stable per-account offset (0-25% of the margin) so accounts do not refresh together.
        return (zlib.crc32(account_id.encode()) % 1000) / 1000.0 * self.margin * 0.25

    def run_once(self) -> int:
        """Refresh every due account; returns how many refreshed."""
        done = 0
        for account_id in self.due():
            if self._stop.is_set():
                break
            try:
                before = self.refreshes[account_id]
                self.ensure_fresh(account_id, margin=self.margin + self._jitter(account_id), background=True)
                done += self.refreshes[account_id] - before
            except RefreshError as exc:
                if not exc.permanent:
                    failures = self._failures[account_id]
                    backoff = min(self.interval * 10, 15.0 * (2 ** min(failures, 6)))
                    self._retry_at[account_id] = self.clock() + backoff * (0.8 + 0.4 * self.rng.random())
            except Exception:  # the thread must survive anything one account does
                log.exception("account %s: background refresh failed", account_id)
        return done

    def start(self, tasks: Sequence[Callable[[], object]] = ()) -> None:
        """Start the background thread; it runs each of `tasks` first on every pass."""
        if self._thread is not None:
            return
        self.tasks = tuple(tasks)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kiroproxy-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # A short pause first: start-up finishes (and requests refresh what they need) before the pass.
        self._stop.wait(min(5.0, self.interval))
        while not self._stop.is_set():
            for task in self.tasks:  # first: adopting tokens Kiro wrote may make a refresh unnecessary
                try:
                    task()
                except Exception:  # a periodic task must never stop token refreshing
                    log.exception("background task %r failed", task)
            self.run_once()
            self._stop.wait(self.interval * (0.9 + 0.2 * self.rng.random()))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Run a pass soon (tests and the admin API use it instead of waiting an interval)."""
        threading.Thread(target=self.run_once, name="kiroproxy-refresh-now", daemon=True).start()
