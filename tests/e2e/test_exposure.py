"""Listening beyond loopback needs client keys: without them the server refuses to start, with one
line on stderr and exit status 2; with them it starts and demands a key."""
from __future__ import annotations

import os
import subprocess
import sys

import requests

from .test_server_process import ROOT, Process


def test_a_public_bind_without_client_keys_is_refused(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KIROPROXY_KIRO_API_URL": fake.url}
    result = subprocess.run([sys.executable, str(ROOT / "kiroproxy.py"), "--host", "0.0.0.0", "--port", "0"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "api_keys" in lines[0] and "127.0.0.1" in lines[0] and "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    assert not (home / ".kiro-proxy" / "admin.key").exists()  # refused before anything was written


def test_a_public_bind_with_a_client_key_starts_and_demands_the_key(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, "--host", "0.0.0.0", extra_env={"KIROPROXY_API_KEYS": "lan-key"})
    try:
        url = proc.url.replace("0.0.0.0", "127.0.0.1")
        refused = requests.post(url + "/v1/messages/count_tokens", timeout=10, headers={"x-api-key": "wrong"},
                                json={"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "x"}]})
        assert refused.status_code == 401
        counted = requests.post(url + "/v1/messages/count_tokens", timeout=10, headers={"x-api-key": "lan-key"},
                                json={"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "x"}]})
        assert counted.status_code == 200
    finally:
        assert proc.stop() == 0


def test_a_stored_client_key_counts_for_a_public_bind(tmp_path, fake):
    from .commands import kiroproxy

    home = tmp_path / "home"
    home.mkdir()
    made = kiroproxy(home, fake.url, "keys", "create", "--name", "lan")
    assert made.returncode == 0, made.stderr
    key = next(word for word in made.stdout.split() if word.startswith("sk-kp-"))
    proc = Process(home, fake.url, "--host", "0.0.0.0")
    try:
        url = proc.url.replace("0.0.0.0", "127.0.0.1")
        body = {"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "x"}]}
        assert requests.post(url + "/v1/messages/count_tokens", timeout=10, headers={"x-api-key": "wrong"},
                             json=body).status_code == 401
        assert requests.post(url + "/v1/messages/count_tokens", timeout=10, headers={"x-api-key": key},
                             json=body).status_code == 200
    finally:
        assert proc.stop() == 0
