"""`python kiroproxy.py login ...` as a user runs it: through a running server's admin API (found
through its server.json marker, whatever port it listens on), and offline on a data directory that
a proxy then serves. Stdin plays the user pasting the URL."""
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
from typing import Callable, Iterator, List

import pytest
import requests

from kiroproxy import cli, server
from tests import factories
from tests.fakes.kiro import DEVICE_CODE_GRANT
from tests.fakes.scripts import Reply, oauth_error

from .conftest import ADMIN_KEY, wait_for
from .test_server_process import Process

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """One `kiroproxy.py` run; stdout and stderr are collected line by line as they come."""

    def __init__(self, home: Path, fake_url: str, *args: str) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONUNBUFFERED": "1",
               "KIROPROXY_KIRO_API_URL": fake_url, "KIROPROXY_KIRO_AUTH_URL": fake_url,
               "KIROPROXY_AWS_OIDC_URL": fake_url}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), *args], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.out: List[str] = []
        self.err: List[str] = []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: List[str]) -> None:
        for line in stream:
            lines.append(line)

    def line(self, pattern: str, timeout: float = 30) -> re.Match:
        return wait_for(lambda: next((m for m in map(re.compile(pattern).search, list(self.out)) if m), None),
                        timeout=timeout)

    def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Kill the run if it is still going (a failed test) and release its pipes. Idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for reader in self.readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    @property
    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)


@pytest.fixture
def launch() -> Iterator[Callable[..., Cli]]:
    runs: List[Cli] = []

    def start(home: Path, fake_url: str, *args: str) -> Cli:
        runs.append(Cli(home, fake_url, *args))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def browse(url: str) -> str:
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def social(run: Cli) -> None:
    """The user: open the printed URL, sign in, paste where the browser ended."""
    url = run.line(r"^\s+(http://\S+/login\?\S+)").group(1)
    run.type(browse(url))


def token_answer(access: str) -> Reply:
    return Reply(200, {"accessToken": access, "refreshToken": factories.refresh_token(access), "expiresIn": 3600})


def online(launch, proxy, *args: str, key: str = ADMIN_KEY) -> Cli:
    return launch(proxy.home, proxy.fake.url, "login", *args, "--server", proxy.url, "--admin-key", key)


def accounts(proxy) -> list:
    return proxy.admin("GET", "/accounts").json()["accounts"]


def test_builder_id_through_the_running_server(launch, proxy, fake):
    fake.device_interval = 0
    fake.queue_token(oauth_error("authorization_pending"), token_answer("cli-access"), grant=DEVICE_CODE_GRANT)
    run = online(launch, proxy, "builder-id")
    code = run.finish()

    assert code == 0, run.output
    (account,) = accounts(proxy)
    assert f"Signed in: account {account['id']}" in run.output
    assert (account["auth_method"], account["provider"]) == ("idc", "BuilderId")
    assert re.search(r"enter the code FAKE-\d+", run.output)
    assert "through the server at " + proxy.url in run.output
    device_code = fake.requests_to("/token")[0].json["deviceCode"]
    assert device_code not in run.output and "cli-access" not in run.output
    assert len(fake.requests_to("/token")) == 2


def test_google_through_the_running_server(launch, proxy, fake):
    run = online(launch, proxy, "google")
    social(run)
    code = run.finish()

    assert code == 0, run.output
    (account,) = accounts(proxy)
    assert (account["auth_method"], account["provider"]) == ("social", "Google")
    verifier = fake.requests_to("/oauth/token")[0].json["code_verifier"]
    assert verifier not in run.output


def test_offline_on_a_data_directory_then_served(launch, tmp_path, fake, make_proxy):
    home = tmp_path / "home"
    (home / ".kiro-proxy" / "flows").mkdir(parents=True)
    unfinished = home / ".kiro-proxy" / "flows" / ".index.json.1.2.tmp"  # a running server's write
    unfinished.write_text("{}")
    flags = ("--data-dir", str(home / ".kiro-proxy"), "--port", str(free_port()))
    fake.device_interval = 0
    fake.queue_token(oauth_error("authorization_pending"), token_answer("offline-access"), grant=DEVICE_CODE_GRANT)
    device = launch(home, fake.url, *flags, "login", "builder-id", "--region", "eu-central-1")
    assert device.finish() == 0, device.output
    github = launch(home, fake.url, "--port", flags[3], "login", "github", *flags[:2])  # flags on both sides
    social(github)
    assert github.finish() == 0, github.output

    assert "No server at" in device.output and "No server at" in github.output
    # Only the account store was opened: no flow store sweep, stats, or admin key behind anyone's back.
    assert unfinished.exists()
    assert sorted(p.name for p in (home / ".kiro-proxy").iterdir()) == ["accounts.json", "flows"]
    proxy = make_proxy()
    listed = {a["provider"]: a for a in accounts(proxy)}
    assert sorted(listed) == ["BuilderId", "Github"]
    assert (listed["BuilderId"]["region"], listed["Github"]["auth_method"]) == ("eu-central-1", "social")
    assert listed["BuilderId"]["client_id"] == fake.requests_to("/token")[0].json["clientId"]
    proxy.admin("PATCH", f"/accounts/{listed['Github']['id']}", json={"enabled": False})
    assert proxy.http.post(proxy.url + "/v1/messages", headers={"x-api-key": "k"}, timeout=30,
                           json=factories.anthropic_body()).status_code == 200
    assert fake.requests_to("/generateAssistantResponse")[-1].token == "offline-access"


def test_a_wrong_admin_key_is_a_usage_error(launch, proxy, fake):
    run = online(launch, proxy, "builder-id", key="wrong-key")
    assert run.finish() == 2
    assert "--admin-key" in run.output
    assert fake.requests_to("/client/register") == []


@pytest.mark.parametrize("error, word", [("access_denied", "denied"), ("expired_token", "expired")])
def test_a_failed_sign_in_exits_1(launch, proxy, fake, error, word):
    fake.device_interval = 0
    fake.queue_token(oauth_error(error), grant=DEVICE_CODE_GRANT)
    run = online(launch, proxy, "builder-id")
    assert run.finish() == 1
    assert word in "".join(run.err)
    assert accounts(proxy) == []


def test_ctrl_c_cancels_the_login(launch, proxy, fake):
    run = online(launch, proxy, "builder-id")  # the fake's interval is 5 s: the CLI is waiting when interrupted
    run.line(r"Waiting for approval")
    assert proxy.services.logins.pending() == 1
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 1
    assert "Cancelled" in run.output
    assert proxy.services.logins.pending() == 0 and accounts(proxy) == []


def test_nothing_pasted_cancels_the_social_login(launch, proxy, fake):
    run = online(launch, proxy, "github")
    run.line(r"Paste the URL")
    assert run.proc.stdin is not None
    run.proc.stdin.close()
    assert run.finish() == 1
    assert proxy.services.logins.pending() == 0 and fake.requests_to("/oauth/token") == []


@pytest.mark.parametrize("argv", [["login"], ["login", "facebook"], ["login", "builder-id", "--bogus"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_an_explicit_server_that_does_not_answer_fails(launch, tmp_path, fake):
    run = launch(tmp_path, fake.url, "login", "google", "--server", f"http://127.0.0.1:{free_port()}",
              "--data-dir", str(tmp_path / "data"))
    assert run.finish() == 2
    assert "no kiroproxy server answers" in run.output
    assert not (tmp_path / "data" / "accounts.json").exists()


def test_finds_a_server_on_another_port_through_its_marker(launch, tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)  # --port 0: anything but the configured 8080
    try:
        existing = proc.admin("POST", "/accounts", json=factories.token_file("acc-existing"))
        assert existing.status_code == 201
        fake.device_interval = 0
        fake.queue_token(oauth_error("authorization_pending"), token_answer("marker-access"),
                         grant=DEVICE_CODE_GRANT)
        run = launch(home, fake.url, "login", "builder-id")  # no --server, no --admin-key
        assert run.finish() == 0, run.output
        assert "through the server at " + proc.url in run.output
        listed = proc.admin("GET", "/accounts").json()["accounts"]
        assert sorted(a["provider"] for a in listed) == ["BuilderId", "Google"]
    finally:
        assert proc.stop() == 0
    stored = json.loads((home / ".kiro-proxy" / "accounts.json").read_text())["_default"].values()
    assert sorted(r["access_token"] for r in stored) == ["acc-existing", "marker-access"]  # survived shutdown


def write_marker(data: Path, pid: int, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "server.json").write_text(json.dumps({"pid": pid, "host": "127.0.0.1", "port": port,
                                                  "started_at": time.time(),
                                                  "process_start": server.process_start(pid)}))


def test_a_live_owner_that_does_not_answer_is_refused(launch, tmp_path, fake):
    data = tmp_path / "home" / ".kiro-proxy"
    write_marker(data, os.getpid(), free_port())  # this test process lives; nothing listens there
    run = launch(tmp_path / "home", fake.url, "--port", str(free_port()), "login", "builder-id")
    assert run.finish() == 2
    assert f"(pid {os.getpid()}) does not answer" in run.output and "Signed in" not in run.output
    assert not (data / "accounts.json").exists()
    assert fake.requests_to("/client/register") == []


def test_a_stale_marker_is_ignored(launch, tmp_path, fake):
    data = tmp_path / "home" / ".kiro-proxy"
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait(30)  # reaped: its pid names no process now
    write_marker(data, dead.pid, free_port())
    fake.device_interval = 0
    run = launch(tmp_path / "home", fake.url, "--port", str(free_port()), "login", "builder-id")
    assert run.finish() == 0, run.output
    assert "No server at" in run.output
    (record,) = json.loads((data / "accounts.json").read_text())["_default"].values()
    assert record["provider"] == "BuilderId"
