"""`python kiroproxy.py` as a user runs it: start-up, the admin key, the server.json marker, and a
clean SIGTERM shutdown that lets requests in flight finish within the grace period."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import requests

from tests import factories
from tests.fakes.scripts import Script

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
        self.data = home / ".kiro-proxy"

    @property
    def key(self) -> str:
        return (self.data / "admin.key").read_text().strip()

    def admin(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.url + "/api" + path, headers={"Authorization": f"Bearer {self.key}"},
                                timeout=10, **kw)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self) -> int:
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
        assert any(f"admin page at {first.url}/ " in line for line in first.lines), first.lines
        page = requests.get(first.url + "/", timeout=5)
        assert page.status_code == 200 and "ui/js/app.js" in page.text
        key_file = home / ".kiro-proxy" / "admin.key"
        key = key_file.read_text().strip()
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        # Standard output is a pipe here, as under systemd or docker: the file is named, the key is not.
        assert not any(key in line for line in first.lines)
        assert sum(str(key_file) in line for line in first.lines) == 1
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


def base_env(home: Path, fake_url: str) -> Dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KIROPROXY_KIRO_API_URL": fake_url,
            "KIROPROXY_KIRO_AUTH_URL": fake_url, "KIROPROXY_AWS_OIDC_URL": fake_url}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refuses_connections(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_login_before_the_first_start_does_not_swallow_the_admin_key(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    fake.device_interval = 0
    login = subprocess.run([sys.executable, str(ROOT / "kiroproxy.py"), "--port", str(free_port()), "login",
                            "builder-id"], env=base_env(home, fake.url), capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stdout + login.stderr
    first = Process(home, fake.url)
    try:
        key = first.key
        lines = login.stdout.splitlines() + login.stderr.splitlines() + first.lines
        assert not any(key in line for line in lines)  # not a terminal: the file is named instead
        announced = [line for line in lines if "generated an admin key" in line]
        assert len(announced) == 1 and str(first.data / "admin.key") in announced[0]  # once, whoever came first
        assert first.admin("GET", "/accounts").json()["accounts"][0]["provider"] == "BuilderId"
    finally:
        assert first.stop() == 0
    second = Process(home, fake.url)
    try:
        assert not any(key in line for line in second.lines)
    finally:
        assert second.stop() == 0


def test_the_marker_names_the_live_server_and_goes_at_shutdown(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        marker = json.loads((proc.data / "server.json").read_text())
        assert (marker["pid"], f"http://{marker['host']}:{marker['port']}") == (proc.proc.pid, proc.url)
        assert oct((proc.data / "server.json").stat().st_mode & 0o777) == "0o600"
        second = subprocess.run([sys.executable, str(ROOT / "kiroproxy.py"), "--port", "0"],
                                env=base_env(home, fake.url), capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert f"pid {proc.proc.pid}" in second.stderr and "--data-dir" in second.stderr
    finally:
        assert proc.stop() == 0
    assert not (proc.data / "server.json").exists()


def test_a_stale_marker_is_replaced(tmp_path, fake):
    home = tmp_path / "home"
    (home / ".kiro-proxy").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait(30)  # reaped: its pid names no process now
    marker = home / ".kiro-proxy" / "server.json"
    marker.write_text(json.dumps({"pid": dead.pid, "host": "127.0.0.1", "port": 1, "started_at": 0}))
    proc = Process(home, fake.url)
    try:
        assert json.loads(marker.read_text())["pid"] == proc.proc.pid
    finally:
        assert proc.stop() == 0


def stream_in_thread(url: str, out: dict) -> threading.Thread:
    def run() -> None:
        try:
            out["body"] = requests.post(url + "/v1/messages", headers={"x-api-key": "k"}, timeout=60,
                                        json=factories.anthropic_body(stream=True)).text
        except requests.RequestException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stream_held_at_a_gate(tmp_path: Path, fake, gate: str, rest: str, grace: str) -> tuple:
    """A server (shutdown grace `grace` seconds) with one account, streaming an answer the fake
    holds at `gate` (then `rest`): (process, the client's output dict, the client thread)."""
    home = tmp_path / "home"
    home.mkdir()
    fake.queue(Script().text("before the signal, ").gate(gate).text(rest).context_usage(3))
    proc = Process(home, fake.url, extra_env={"KIROPROXY_SHUTDOWN_GRACE_SECONDS": grace})
    assert proc.admin("POST", "/accounts", json=factories.token_file(f"acc-{gate}")).status_code == 201
    out: dict = {}
    client = stream_in_thread(proc.url, out)
    assert fake.wait_gate(gate, 10)
    return proc, out, client


def test_sigterm_lets_a_stream_in_flight_finish_and_flushes_state(tmp_path, fake):
    proc, out, client = stream_held_at_a_gate(tmp_path, fake, "mid", "after the signal", grace="30")
    proc.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(proc.url), timeout=10)  # no longer accepting...
    assert proc.proc.poll() is None  # ...but still serving the stream
    fake.release("mid")
    client.join(30)
    assert proc.finish() == 0, "".join(proc.lines)
    assert "error" not in out
    assert "after the signal" in out["body"] and "event: message_stop" in out["body"]
    assert not (proc.data / "server.json").exists()
    (record,) = json.loads((proc.data / "accounts.json").read_text())["_default"].values()
    assert record["requests"] == 1
    again = Process(tmp_path / "home", fake.url)
    try:
        (flow,) = again.admin("GET", "/flows").json()["flows"]
        assert flow["state"] == "completed" and flow["stream"] is True
    finally:
        assert again.stop() == 0


def test_sigterm_cuts_a_stream_that_outlasts_the_grace(tmp_path, fake):
    proc, out, client = stream_held_at_a_gate(tmp_path, fake, "never", "never sent", grace="0.5")
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.finish() == 0, "".join(proc.lines)
    assert time.monotonic() - started < 15  # the grace, not the fake's 30 s hold
    client.join(30)
    assert "never sent" not in out.get("body", "")
    assert fake.wait_disconnect(10)  # the upstream connection was closed, not left hanging


def test_an_idle_keep_alive_connection_does_not_hold_the_shutdown(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, extra_env={"KIROPROXY_SHUTDOWN_GRACE_SECONDS": "60"})
    with requests.Session() as http:  # keeps its connection open after the answer
        assert http.get(proc.url + "/v1/models", timeout=5).status_code == 200
        started = time.monotonic()
        assert proc.stop() == 0
        assert time.monotonic() - started < 15  # not the 60 s grace


def test_a_second_signal_cuts_the_grace_short(tmp_path, fake):
    proc, out, client = stream_held_at_a_gate(tmp_path, fake, "held", "never sent", grace="120")
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(proc.url), timeout=10)
    proc.proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
    assert proc.finish() == 0, "".join(proc.lines)
    assert time.monotonic() - started < 15  # not the 120 s grace
    client.join(30)
    assert "never sent" not in out.get("body", "")


def test_the_generated_admin_key_is_shown_only_on_a_terminal(tmp_path, fake):
    import pty

    home = tmp_path / "home"
    home.mkdir()
    controller, terminal = pty.openpty()
    env = {**base_env(home, fake.url), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "--port", "0"], env=env,
                            stdout=terminal, stderr=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in shown and time.monotonic() < deadline:
            try:
                shown += os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        os.close(controller)
    key = (home / ".kiro-proxy" / "admin.key").read_text().strip()
    assert key.encode() in shown, shown
