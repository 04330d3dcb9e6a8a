"""Scripts written for the seed API poll and cancel a device login without an id: against the real
server process, they act on the newest sign-in; with an id, on that one."""
from __future__ import annotations

from tests.fakes.kiro import DEVICE_CODE_GRANT
from tests.fakes.scripts import oauth_error

from .test_login import token_answer
from .test_server_process import Process


def test_poll_and_cancel_without_an_id_act_on_the_newest_login(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        assert proc.admin("GET", "/kiro/login/poll").status_code == 404  # nothing in progress
        fake.device_interval = 0
        older = proc.admin("POST", "/kiro/login/start", json={}).json()
        newer = proc.admin("POST", "/kiro/login/start", json={}).json()
        cancelled = proc.admin("POST", "/kiro/login/cancel", json={})
        assert (cancelled.status_code, cancelled.json()["id"], cancelled.json()["status"]) == \
            (200, newer["id"], "cancelled")
        fake.queue_token(oauth_error("authorization_pending"), token_answer("seed-access"), grant=DEVICE_CODE_GRANT)
        first = proc.admin("GET", "/kiro/login/poll").json()
        assert (first["id"], first["status"]) == (older["id"], "pending")
        second = proc.admin("GET", "/kiro/login/poll").json()
        assert (second["id"], second["status"]) == (older["id"], "success")
        # Finished: a script polling on without an id keeps seeing the result.
        assert proc.admin("GET", "/kiro/login/poll").json()["status"] == "success"
        # With an id, that login.
        named = proc.admin("GET", "/kiro/login/poll", params={"id": newer["id"]}).json()
        assert (named["id"], named["status"]) == (newer["id"], "cancelled")
        assert len(proc.admin("GET", "/accounts").json()["accounts"]) == 1
    finally:
        assert proc.stop() == 0
