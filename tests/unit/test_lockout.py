from __future__ import annotations

from kiroproxy.lockout import Lockout


def test_locks_after_max_failures_in_a_row_and_forgets_old_ones():
    now = [0.0]
    lockout = Lockout(3, 60, clock=lambda: now[0])
    assert not lockout.failed("a") and not lockout.failed("a")
    now[0] = 100.0  # the earlier failures are older than the lockout window: counting starts over
    assert not lockout.failed("a") and not lockout.failed("a")
    assert lockout.failed("a")
    assert lockout.locked_for("a") == 60 and lockout.locked_for("b") == 0
    now[0] = 161.0
    assert lockout.locked_for("a") == 0


def test_tracks_a_bounded_number_of_addresses():
    lockout = Lockout(2, 60, clock=lambda: 0.0, max_addresses=100)
    for n in range(1000):
        lockout.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(lockout._failures) == 100


def test_zero_seconds_disables_it():
    lockout = Lockout(1, 0, clock=lambda: 0.0)
    assert not lockout.failed("a") and lockout.locked_for("a") == 0
