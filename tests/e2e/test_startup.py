"""Start-up as a user meets it, through the real command line: every failure is one line naming the
cause and the value, exit status 2, no traceback, and spends nothing (the admin key is generated
only once the socket is bound); the first-start banner says what to do next."""
from __future__ import annotations

import socket

import pytest

from tests import factories

from .commands import kiroproxy
from .conftest import wait_for
from .test_server_process import Process


def one_line_failure(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_busy_port_is_one_line_and_does_not_spend_the_admin_key(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_failure(kiroproxy(home, fake.url, "--port", str(port)))
    assert line == f"kiroproxy: port {port} is already in use on 127.0.0.1; pick another with --port"
    assert not (home / ".kiro-proxy" / "admin.key").exists()
    proc = Process(home, fake.url)  # the next start is the first: it generates and announces the key
    try:
        assert sum("generated an admin key" in line for line in proc.lines) == 1
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("args, env, expected", [
    (("--host", "192.0.2.77", "--port", "0"), {"KIROPROXY_API_KEYS": "k"},
     "cannot listen on 192.0.2.77: no such address on this machine; pick another with --host"),
    (("--host", "no-such-host.invalid", "--port", "0"), {"KIROPROXY_API_KEYS": "k"},
     "cannot listen on no-such-host.invalid: no such address or host name"),
    (("--log-level", "verbose"), {}, "log_level: 'verbose' is not a log level"),
    (("--port", "abc"), {}, "argument --port: invalid int value: 'abc'"),
    (("--port", "70000"), {}, "port: Input should be less than or equal to 65535"),
    (("--threads", "0"), {}, "threads: Input should be greater than or equal to 1"),
])
def test_bad_values_fail_in_one_line(tmp_path, fake, args, env, expected):
    home = tmp_path / "home"
    home.mkdir()
    line = one_line_failure(kiroproxy(home, fake.url, *args, env=env))
    assert line.startswith("kiroproxy: ") and expected in line
    assert not (home / ".kiro-proxy" / "admin.key").exists()


def test_the_first_start_banner_says_what_to_do_next(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        # The banner's lines arrive one by one after "listening on": wait for its last one.
        text = wait_for(lambda: (lambda t: t if "Connect a client" in t else None)("".join(proc.lines)))
        assert "0 account(s)" in text and "No Kiro account yet" in text
        assert "kiroproxy login builder-id" in text and "kiroproxy accounts scan --add" in text
        assert "kiroproxy client claude" in text
        assert proc.admin("POST", "/accounts", json=factories.token_file("acc-B")).status_code == 201
    finally:
        assert proc.stop() == 0
    again = Process(home, fake.url)
    try:
        text = wait_for(lambda: (lambda t: t if "Connect a client" in t else None)("".join(again.lines)))
        assert "1 account(s)" in text and "No Kiro account yet" not in text
    finally:
        assert again.stop() == 0
