"""What `kiroproxy client … --write` writes really connects the client: the real Claude Code,
Codex CLI and Gemini CLI (pinned, from npm) answer through a server started by the command line,
carrying a client key made by `kiroproxy keys create`."""
from __future__ import annotations

import json

import pytest

from tests import factories
from tests.fakes.scripts import text_answer

from . import realclients
from .commands import kiroproxy
from .test_gemini_cli import ROUTER_ANSWER, is_router_call
from .test_server_process import Process

pytestmark = pytest.mark.realclient


def server_with_key(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    assert proc.admin("POST", "/accounts", json=factories.token_file("acc-C")).status_code == 201
    made = kiroproxy(home, fake.url, "keys", "create", "--name", "cli")
    key = next(word for word in made.stdout.split() if word.startswith("sk-kp-"))
    return proc, home, key


def test_codex_with_the_written_config(tmp_path, fake):
    binary = realclients.require("codex")
    proc, home, key = server_with_key(tmp_path, fake)
    try:
        written = kiroproxy(home, fake.url, "client", "codex", "--write", "--key", key,
                            env={"CODEX_HOME": str(home / ".codex")})
        assert written.returncode == 0, written.stderr
        fake.queue(text_answer("codex through the written config"))
        result = realclients.run([binary, "exec", "--skip-git-repo-check", "say hi"],
                                 {"HOME": str(home), "CODEX_HOME": str(home / ".codex"), "PROXY_API_KEY": key},
                                 realclients.work_dir(tmp_path), timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "codex through the written config" in result.stdout
    finally:
        assert proc.stop() == 0


def test_gemini_with_the_written_settings(tmp_path, fake):
    binary = realclients.require("gemini")
    proc, home, key = server_with_key(tmp_path, fake)
    try:
        written = kiroproxy(home, fake.url, "client", "gemini", "--write", "--key", key)
        assert written.returncode == 0, written.stderr
        fake.route(is_router_call, text_answer(ROUTER_ANSWER))
        fake.queue(text_answer("gemini through the written settings"))
        result = realclients.run([binary, "-p", "say hi"],
                                 {"HOME": str(home), "GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": proc.url,
                                  "GEMINI_CLI_TRUST_WORKSPACE": "true"},
                                 realclients.work_dir(tmp_path), timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "gemini through the written settings" in result.stdout
    finally:
        assert proc.stop() == 0


def test_claude_code_with_the_written_settings(tmp_path, fake):
    binary = realclients.require("claude")
    proc, home, key = server_with_key(tmp_path, fake)
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"model": "sonnet", "env": {"DISABLE_TELEMETRY": "1"}}))
    try:
        refused = kiroproxy(home, fake.url, "client", "claude", "--write")  # keys exist: --key is needed
        assert refused.returncode != 0 and "--key" in refused.stderr
        assert json.loads(settings.read_text())["env"] == {"DISABLE_TELEMETRY": "1"}
        written = kiroproxy(home, fake.url, "client", "claude", "--write", "--key", key)
        assert written.returncode == 0, written.stderr
        merged = json.loads(settings.read_text())
        assert merged["model"] == "sonnet" and merged["env"]["DISABLE_TELEMETRY"] == "1"  # kept
        assert merged["env"]["ANTHROPIC_BASE_URL"] == proc.url
        fake.queue(text_answer("claude through the written settings"))
        # No ANTHROPIC_* variable here: the address and the key come from the settings file alone.
        result = realclients.run([binary, "-p", "say hi"],
                                 {"HOME": str(home), "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1"},
                                 realclients.work_dir(tmp_path), timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "claude through the written settings" in result.stdout
    finally:
        assert proc.stop() == 0
