"""`kiroproxy client`, `doctor` and `service install`, run as subprocesses against the real server
(started by the command line) and the fake Kiro."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import factories

from .commands import kiroproxy
from .test_server_process import Process


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def server(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    yield proc
    assert proc.stop() == 0


def test_client_prints_each_clients_settings_with_this_servers_address(server, fake):
    home = server.data.parent
    claude = ok(kiroproxy(home, fake.url, "client", "claude"))
    assert f"ANTHROPIC_BASE_URL={server.url} ANTHROPIC_AUTH_TOKEN=sk-anything" in claude
    assert f'base_url = "{server.url}/v1"' in ok(kiroproxy(home, fake.url, "client", "codex"))
    assert f"GOOGLE_GEMINI_BASE_URL={server.url} gemini" in ok(kiroproxy(home, fake.url, "client", "gemini"))
    assert f"-b {server.url}/v1" in ok(kiroproxy(home, fake.url, "client", "cline"))
    assert f"apiBase: {server.url}/v1" in ok(kiroproxy(home, fake.url, "client", "continue"))
    ok(kiroproxy(home, fake.url, "keys", "create", "--name", "c"))  # now keys are required
    assert "kiroproxy keys create" in ok(kiroproxy(home, fake.url, "client", "claude"))
    assert "ANTHROPIC_AUTH_TOKEN=sk-kp-mine" in ok(kiroproxy(home, fake.url, "client", "claude", "--key", "sk-kp-mine"))


def test_client_write_keeps_a_backup_and_merges_gemini_settings(server, fake):
    home = server.data.parent
    codex = home / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('model = "mine"\n')
    written = ok(kiroproxy(home, fake.url, "client", "codex", "--write"))
    assert f'base_url = "{server.url}/v1"' in codex.read_text() and "PROXY_API_KEY=sk-anything codex" in written
    (backup,) = codex.parent.glob("config.toml.*.bak")
    assert backup.read_text() == 'model = "mine"\n'
    gemini = home / ".gemini" / "settings.json"
    gemini.parent.mkdir()
    gemini.write_text(json.dumps({"ui": {"theme": "dark"}, "security": {"folderTrust": {"enabled": True}}}))
    ok(kiroproxy(home, fake.url, "client", "gemini", "--write"))
    merged = json.loads(gemini.read_text())
    assert merged["ui"] == {"theme": "dark"} and merged["security"]["folderTrust"] == {"enabled": True}
    assert merged["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert merged["privacy"]["usageStatisticsEnabled"] is False
    continue_file = home / ".continue" / "config.yaml"
    ok(kiroproxy(home, fake.url, "client", "continue", "--write"))
    assert f"apiBase: {server.url}/v1" in continue_file.read_text()
    refused = kiroproxy(home, fake.url, "client", "cline", "--write")
    assert refused.returncode == 1 and f"-b {server.url}/v1" in refused.stderr
    claude = home / ".claude" / "settings.json"
    claude.parent.mkdir()
    claude.write_text("[1, 2")  # not a JSON object: left as it is
    damaged = kiroproxy(home, fake.url, "client", "claude", "--write")
    assert damaged.returncode == 1 and "not touching it" in damaged.stderr and "Traceback" not in damaged.stderr
    assert claude.read_text() == "[1, 2" and list(claude.parent.glob("*.bak")) == []


def test_doctor_all_good_then_failures_with_fixes(server, fake):
    home = server.data.parent
    assert server.admin("POST", "/accounts", json=factories.token_file("acc-doc")).status_code == 201
    good = kiroproxy(home, fake.url, "doctor")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "0 failed" in good.stdout and "refresh works" in good.stdout and "reach Kiro API" in good.stdout
    assert "clock" in good.stdout and "acc-doc" not in good.stdout and server.key not in good.stdout
    assert fake.refresh_count >= 1
    (server.data / "accounts.json").chmod(0o644)
    dead = kiroproxy(home, fake.url, "doctor", "--json", env={"KIROPROXY_AWS_OIDC_URL": "http://127.0.0.1:9"})
    assert dead.returncode == 1
    rows = {r["name"]: r for r in json.loads(dead.stdout)}
    assert rows["reach AWS OIDC"]["level"] == "fail" and rows["reach AWS OIDC"]["fix"]
    assert rows["file accounts.json"]["level"] == "warn" and "chmod 600" in rows["file accounts.json"]["fix"]


def test_doctor_without_an_account_fails_and_says_how_to_add_one(tmp_path, fake):
    home = tmp_path / "home"
    (home / ".kiro-proxy").mkdir(parents=True, mode=0o700)
    result = kiroproxy(home, fake.url, "doctor")
    assert result.returncode == 1 and "kiroproxy login builder-id" in result.stdout


def test_service_install_prints_a_unit_that_systemd_accepts(tmp_path, fake):
    printed = ok(kiroproxy(tmp_path, fake.url, "service", "install", "--print", "--user", "kp"))
    for line in ("User=kp", "StateDirectory=kiroproxy", "EnvironmentFile=-/etc/kiroproxy.env", "Restart=on-failure",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "Environment=KIROPROXY_HOME=/var/lib/kiroproxy"):
        assert line in printed.splitlines()
    unit = tmp_path / "kiroproxy.service"
    written = ok(kiroproxy(tmp_path, fake.url, "service", "install", "--user", "kp", "--output", str(unit)))
    assert unit.read_text().strip() == printed.strip()
    assert "useradd --system" in written and "systemctl enable --now kiroproxy" in written
    assert "journalctl -u kiroproxy" in written and "login builder-id --data-dir /var/lib/kiroproxy" in written
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(analyze).exists():
        pytest.skip("systemd-analyze is not installed")
    checked = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr
    broken = tmp_path / "broken" / "kiroproxy.service"
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("Restart=", "Restrat="))
    complaint = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "Restrat" in complaint.stdout + complaint.stderr  # the check can fail


COMMANDS = [["serve"], ["status"], ["accounts"], *[["accounts", a] for a in (
    "list", "add", "remove", "enable", "disable", "refresh", "usage", "scan", "export", "import")],
    ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["admin-key"], ["client"], ["login"],
    ["logs"], ["flows"], ["doctor"], ["service"], ["service", "install"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(tmp_path, fake, command):
    shown = ok(kiroproxy(tmp_path, fake.url, *command, "--help"))
    assert "example:\n  kiroproxy " in shown or "example:\n  sudo " in shown or "example:\n  curl " in shown
