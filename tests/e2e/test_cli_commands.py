"""`kiroproxy status | accounts ... | logs | flows` run as a user runs them: a subprocess, against
the real server started by the command line (found through server.json), and on the data directory
when no server runs."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

from tests import factories
from tests.fakes.scripts import text_answer

from .commands import ROOT, cli_env, kiroproxy
from .conftest import wait_for
from .test_accounts_api import write_token_file
from .test_server_process import Process


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_accounts_on_the_data_directory_when_no_server_runs(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    token = tmp_path / "token.json"
    token.write_text(json.dumps(factories.token_file("acc-offline")))
    added = ok(kiroproxy(home, fake.url, "accounts", "add", str(token), "--json"))
    account = json.loads(added)["account"]["id"]
    listed = json.loads(ok(kiroproxy(home, fake.url, "accounts", "list", "--json")))
    assert [a["id"] for a in listed] == [account] and "acc-offline" not in added
    ok(kiroproxy(home, fake.url, "accounts", "disable", account))
    assert "disabled" in ok(kiroproxy(home, fake.url, "accounts", "list"))
    exported = json.loads(ok(kiroproxy(home, fake.url, "accounts", "export")))
    assert "acc-offline" not in json.dumps(exported) and len(exported["accounts"]) == 1
    refresh = kiroproxy(home, fake.url, "accounts", "refresh", account)
    assert refresh.returncode == 2 and "needs the running server" in refresh.stderr
    status = kiroproxy(home, fake.url, "status")
    assert status.returncode == 2 and "kiroproxy serve" in status.stderr and "Traceback" not in status.stderr
    assert not (home / ".kiro-proxy" / "admin.key").exists()  # nothing but the account store was opened
    assert fake.requests_to("/refreshToken") == []


def test_accounts_status_logs_and_flows_through_the_running_server(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        scanned = write_token_file(home, factories.token_file("acc-scanned"))
        scan = ok(kiroproxy(home, fake.url, "accounts", "scan", "--add"))
        assert str(scanned) in scan and "Added 1 account(s)" in scan
        (account,) = json.loads(ok(kiroproxy(home, fake.url, "accounts", "list", "--json")))
        assert account["state"] == "active"
        table = ok(kiroproxy(home, fake.url, "accounts", "list"))
        assert table.splitlines()[0].split()[:4] == ["ID", "NAME", "PROVIDER", "STATE"] and account["id"] in table
        assert "acc-scanned" not in table

        before = fake.refresh_count
        assert "Refreshed account" in ok(kiroproxy(home, fake.url, "accounts", "refresh", account["id"]))
        assert account["id"] in ok(kiroproxy(home, fake.url, "accounts", "refresh", "--all"))
        assert fake.refresh_count == before + 2
        usage = json.loads(ok(kiroproxy(home, fake.url, "accounts", "usage", account["id"], "--json")))
        assert usage
        assert "disabled" in ok(kiroproxy(home, fake.url, "accounts", "disable", account["id"]))
        assert "enabled" in ok(kiroproxy(home, fake.url, "accounts", "enable", account["id"]))

        fake.queue(text_answer("findable answer"))
        assert proc.admin("GET", "/accounts").status_code == 200
        import requests

        requests.post(proc.url + "/v1/messages", json=factories.anthropic_body("needle in a prompt"), timeout=30)
        requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(model="llama-3-70b"), timeout=30)
        status = ok(kiroproxy(home, fake.url, "status"))
        assert proc.url in status and "accounts: 1 (1 active)" in status
        assert "in flight: 0 request(s), 0 of 64 chat slots taken (max_streams)" in status
        assert "today (UTC): 2 request(s), 1 error(s)" in wait_for(
            lambda: (lambda s: s if "2 request(s)" in s else None)(ok(kiroproxy(home, fake.url, "status"))))
        logs = ok(kiroproxy(home, fake.url, "logs"))
        assert len(logs.strip().splitlines()) == 2 and "claude-sonnet-4.5" in logs
        errors = ok(kiroproxy(home, fake.url, "logs", "--errors"))
        assert len(errors.strip().splitlines()) == 1 and "404" in errors
        found = ok(kiroproxy(home, fake.url, "flows", "needle"))
        assert len(found.strip().splitlines()) == 2  # the header and one flow
        assert "No flows match." in ok(kiroproxy(home, fake.url, "flows", "haystack-absent"))

        backup = tmp_path / "backup.json"
        backup.write_text(ok(kiroproxy(home, fake.url, "accounts", "export", "--include-secrets")))
        assert "acc-scanned" in backup.read_text()
        assert "Removed" in ok(kiroproxy(home, fake.url, "accounts", "remove", account["id"]))
        assert "added: 1" in ok(kiroproxy(home, fake.url, "accounts", "import", str(backup)))
        assert len(proc.admin("GET", "/accounts").json()["accounts"]) == 1
    finally:
        assert proc.stop() == 0


def test_logs_follow_prints_new_requests(tmp_path, fake):
    import requests

    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    follow = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "logs", "-f"], env=cli_env(home, fake.url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(), timeout=30)  # 503: no account
        lines: list = []
        reader = threading.Thread(target=lambda: lines.extend(follow.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        line = wait_for(lambda: next((x for x in list(lines) if "anthropic" in x), None), timeout=20)
        assert "503" in line
    finally:
        follow.kill()
        follow.wait(10)
        follow.stdout.close()
        follow.stderr.close()
        assert proc.stop() == 0
