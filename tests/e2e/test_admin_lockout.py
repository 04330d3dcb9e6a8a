"""Wrong admin keys: after admin_max_failures from one address, 429 with Retry-After for
admin_lockout_seconds (even for the right key), and one warning line in the log."""
from __future__ import annotations

import logging

from .conftest import ADMIN_KEY


def test_repeated_wrong_admin_keys_lock_the_address_out(make_proxy, caplog):
    proxy = make_proxy(admin_max_failures=5, admin_lockout_seconds=60)
    caplog.set_level(logging.WARNING, logger="kiroproxy")
    statuses = [proxy.admin("GET", "/accounts", headers={"Authorization": f"Bearer guess-{n}"}).status_code
                for n in range(5)]
    assert statuses == [401] * 5
    locked = proxy.admin("GET", "/accounts", headers={"Authorization": "Bearer guess-6"})
    assert locked.status_code == 429
    assert 50 <= int(locked.headers["Retry-After"]) <= 60
    assert locked.json()["error"]["type"] == "rate_limit"
    # While locked, the right key is refused too: the answer must not tell a right guess apart.
    assert proxy.admin("GET", "/accounts").status_code == 429
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "wrong keys" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0].getMessage()
    assert "guess" not in caplog.text and ADMIN_KEY not in caplog.text
    # The client APIs are not affected.
    assert proxy.http.get(proxy.url + "/v1/models", timeout=10).status_code == 200


def test_the_lockout_ends_and_a_right_key_resets_the_count(make_proxy):
    clock = [1000.0]
    proxy = make_proxy(admin_max_failures=3, admin_lockout_seconds=60)
    proxy.services.admin_lockout.clock = lambda: clock[0]
    wrong = {"Authorization": "Bearer wrong"}
    for _ in range(2):
        assert proxy.admin("GET", "/accounts", headers=wrong).status_code == 401
    assert proxy.admin("GET", "/accounts").status_code == 200  # resets the count
    for _ in range(2):
        assert proxy.admin("GET", "/accounts", headers=wrong).status_code == 401
    assert proxy.admin("GET", "/accounts", headers=wrong).status_code == 401  # the 3rd in a row locks
    assert proxy.admin("GET", "/accounts").status_code == 429
    clock[0] += 61
    assert proxy.admin("GET", "/accounts").status_code == 200
