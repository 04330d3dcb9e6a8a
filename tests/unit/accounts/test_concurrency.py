"""Many request threads and the refresh thread on one pool: no double refresh, no lost state."""
from __future__ import annotations

import threading
import time
from collections import Counter

from kiroproxy.accounts.credentials import from_token_file
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.accounts.refresher import Refresher
from kiroproxy.kiro.auth import TokenUpdate
from kiroproxy.store.jsondb import JsonDB
from tests import factories


class CountingAuth:
    """Stands in for the Authenticator: counts refreshes per refresh token, slow enough to overlap."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.lock = threading.Lock()
        self.gate = threading.Event()

    def refresh(self, creds):
        with self.lock:
            self.calls[creds.id] += 1
            n = self.calls[creds.id]
        self.gate.wait(0.05)  # hold the refresh open while other threads pile up
        return TokenUpdate(f"fresh-{creds.id}-{n}", factories.refresh_token(f"rot{n}{creds.id}"),
                           time.time() + 3600)


def test_hammer_pool_and_refresher(tmp_path):
    pool = AccountPool(JsonDB(tmp_path / "accounts.json"), cooldown_seconds=0.001, max_cooldown_seconds=0.001)
    ids = [pool.add(from_token_file(factories.token_file(f"acc-{n}", expires_in=-10))).id for n in range(4)]
    auth = CountingAuth()
    refresher = Refresher(pool, auth, margin=600, interval=0.01)
    successes: Counter = Counter()
    errors = []
    done = threading.Event()

    def worker(seed: int) -> None:
        try:
            for step in range(60):
                lease = pool.lease(session_key=f"s{(seed + step) % 7}")
                try:
                    creds = refresher.ensure_fresh(lease.account_id)
                    assert creds.access_token.startswith("fresh-")
                    if step % 15 == 0:
                        pool.cooldown(lease.account_id, 0.0005, "hammer", strike=False)
                    pool.record_success(lease.account_id)
                    successes[lease.account_id] += 1  # Counter updates under the GIL per key
                finally:
                    lease.release()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    def background() -> None:
        while not done.is_set():
            refresher.run_once()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(24)]
    bg = threading.Thread(target=background)
    bg.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    done.set()
    bg.join(10)
    retried = [e for e in errors if "rate limited" in str(e)]
    assert not [e for e in errors if e not in retried], errors
    assert dict(auth.calls) == {account_id: 1 for account_id in ids}  # exactly one refresh each
    summaries = {s["id"]: s for s in pool.summaries()}
    assert all(s["in_flight"] == 0 for s in summaries.values())
    assert {i: summaries[i]["requests"] for i in ids} == {i: successes[i] for i in ids}
    pool.flush()
    reloaded = AccountPool(JsonDB(tmp_path / "accounts.json"))
    for account_id in ids:
        creds = reloaded.creds(account_id)
        assert creds.access_token == f"fresh-{account_id}-1"  # the rotated token was persisted
        assert reloaded.summary(account_id)["requests"] == successes[account_id]
