"""`python kiroproxy.py` as a user runs it: start-up, the admin key, clean SIGTERM shutdown."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import requests

from tests import factories

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, home: Path, fake_url: str, *args: str, extra_env=None) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KIROPROXY_KIRO_API_URL": fake_url,
               "KIROPROXY_KIRO_AUTH_URL": fake_url, "KIROPROXY_AWS_OIDC_URL": fake_url, "PYTHONUNBUFFERED": "1"}
        env.update(extra_env or {})
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "--port", "0", *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        match = wait_for(lambda: next((re.search(r"listening on (http://[\d.]+:\d+)", line)
                                       for line in self.lines if "listening on" in line), None), timeout=30)
        self.url = match.group(1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def test_start_admin_key_and_clean_shutdown(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    first = Process(home, fake.url)
    try:
        assert first.url.startswith("http://127.0.0.1:")
        assert requests.get(first.url + "/v1/models", timeout=5).status_code == 200
        key_file = home / ".kiro-proxy" / "admin.key"
        key = key_file.read_text().strip()
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert sum(key in line for line in first.lines) == 1  # printed once
        added = requests.post(first.url + "/api/accounts", json=factories.token_file("acc-P"),
                              headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert added.status_code == 201
        requests.post(first.url + "/v1/messages", headers={"x-api-key": "k"}, timeout=10,
                      json=factories.anthropic_body())
    finally:
        code = first.stop()
    assert code == 0, "".join(first.lines)
    stored = json.loads((home / ".kiro-proxy" / "accounts.json").read_text())
    (record,) = stored["_default"].values()
    assert record["requests"] == 1  # the in-memory counter was flushed at shutdown
    second = Process(home, fake.url)
    try:
        assert not any(key in line for line in second.lines)  # not printed again
        listing = requests.get(second.url + "/api/accounts", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert [a["name"] for a in listing.json()["accounts"]] == ["Google"]
    finally:
        assert second.stop() == 0


def test_env_admin_key_and_threads_flag(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, "--threads", "4", extra_env={"KIROPROXY_ADMIN_KEY": "from-env"})
    try:
        assert not (home / ".kiro-proxy" / "admin.key").exists()
        ok = requests.get(proc.url + "/api/accounts", headers={"Authorization": "Bearer from-env"}, timeout=5)
        assert ok.status_code == 200
    finally:
        assert proc.stop() == 0


def test_bad_config_exits_with_a_clear_message(tmp_path):
    home = tmp_path / "home"
    (home / ".kiro-proxy").mkdir(parents=True)
    (home / ".kiro-proxy" / "config.json").write_text('{"port": "not-a-port"}')
    result = subprocess.run([sys.executable, str(ROOT / "kiroproxy.py")], env={"HOME": str(home),
                            "PATH": os.environ.get("PATH", "")}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "port" in result.stderr and "Traceback" not in result.stderr


def test_import_and_app_creation_have_no_side_effects(tmp_path):
    code = (
        "import sys, threading\n"
        "import kiroproxy, kiroproxy.app, kiroproxy.cli, kiroproxy.relay, kiroproxy.tokens\n"
        "assert threading.active_count() == 1, 'a thread started at import'\n"
        "from kiroproxy.config import load\n"
        f"settings = load({{'data_dir': {str(tmp_path / 'd')!r}}}, env={{}})\n"
        "app = kiroproxy.app.create_app(settings)\n"
        "assert 'tiktoken' not in sys.modules, 'the tokenizer was loaded eagerly'\n"
        "assert threading.active_count() == 1, 'create_app started a thread'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
