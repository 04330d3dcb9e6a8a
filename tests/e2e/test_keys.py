"""Client keys: `kiroproxy keys create | list | revoke` through a running server and on the data
directory, hashes only on disk, every /v1 shape of carrying a key, and a running server honouring
a change made by another process within a second."""
from __future__ import annotations

import json
import time

import requests

from kiroproxy.store.keys import KeyStore
from tests import factories

from .commands import kiroproxy, through
from .conftest import ADMIN_KEY, wait_for
from .test_server_process import Process


def created_key(output: str) -> str:
    (key,) = [word for word in output.split() if word.startswith("sk-kp-")]
    return key


def anthropic_status(url: str, **headers: str) -> int:
    return requests.post(url + "/v1/messages", headers=headers, json=factories.anthropic_body(),
                         timeout=30).status_code


def test_keys_through_the_running_server(proxy, fake):
    proxy.add_account()
    assert anthropic_status(proxy.url, **{"x-api-key": "anything"}) == 200  # no keys yet: any key
    made = kiroproxy(proxy.home, fake.url, "keys", "create", "--name", "laptop", *through(proxy))
    assert made.returncode == 0, made.stderr
    key = created_key(made.stdout)
    other = created_key(kiroproxy(proxy.home, fake.url, "keys", "create", *through(proxy)).stdout)

    stored = (proxy.home / ".kiro-proxy" / "keys.json")
    assert key not in stored.read_text() and other not in stored.read_text()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    assert anthropic_status(proxy.url, **{"x-api-key": "anything"}) == 401
    assert anthropic_status(proxy.url) == 401
    assert anthropic_status(proxy.url, **{"x-api-key": key}) == 200
    assert anthropic_status(proxy.url, Authorization=f"Bearer {other}") == 200
    gemini = proxy.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert requests.post(gemini, params={"key": key}, json=body, timeout=30).status_code == 200
    assert requests.post(gemini, headers={"x-goog-api-key": key}, json=body, timeout=30).status_code == 200
    assert requests.post(gemini, headers={"x-goog-api-key": "nope"}, json=body, timeout=30).status_code in (401, 403)
    assert requests.get(proxy.url + "/v1/models", timeout=10).status_code == 401

    listed = kiroproxy(proxy.home, fake.url, "keys", "list", *through(proxy))
    assert listed.returncode == 0
    assert "laptop" in listed.stdout and "key-1" in listed.stdout and key[:12] in listed.stdout
    assert key not in listed.stdout and other not in listed.stdout
    rows = json.loads(kiroproxy(proxy.home, fake.url, "keys", "list", "--json", *through(proxy)).stdout)
    laptop = next(r for r in rows if r["name"] == "laptop")
    assert laptop["last_used"] is not None and "hash" not in laptop

    revoked = kiroproxy(proxy.home, fake.url, "keys", "revoke", "laptop", *through(proxy))
    assert revoked.returncode == 0 and "laptop" in revoked.stdout
    assert anthropic_status(proxy.url, **{"x-api-key": key}) == 401  # at once, no restart
    assert anthropic_status(proxy.url, **{"x-api-key": other}) == 200
    missing = kiroproxy(proxy.home, fake.url, "keys", "revoke", "laptop", *through(proxy))
    assert missing.returncode == 1 and "no key named 'laptop'" in missing.stderr


def test_keys_api_needs_the_admin_key_and_checks_names(proxy):
    assert proxy.admin("GET", "/keys", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert proxy.admin("POST", "/keys", json={"name": "bad name!"}).status_code == 400
    made = proxy.admin("POST", "/keys", json={"name": "ci"})
    assert made.status_code == 201 and made.json()["key"].startswith("sk-kp-")
    assert made.headers["Cache-Control"] == "no-store"
    assert proxy.admin("POST", "/keys", json={"name": "ci"}).status_code == 400  # taken
    (row,) = proxy.admin("GET", "/keys").json()["keys"]
    assert set(row) == {"name", "prefix", "created", "last_used"}
    assert proxy.admin("DELETE", "/keys/nope").status_code == 404
    assert proxy.admin("DELETE", "/keys/ci").json()["revoked"]["name"] == "ci"


def test_settings_api_keys_and_stored_keys_both_count(make_proxy):
    proxy = make_proxy(api_keys=["from-settings"])
    proxy.add_account()
    assert anthropic_status(proxy.url, **{"x-api-key": "from-settings"}) == 200
    key = proxy.admin("POST", "/keys", json={}).json()["key"]
    assert anthropic_status(proxy.url, **{"x-api-key": key}) == 200
    assert anthropic_status(proxy.url, **{"x-api-key": "from-elsewhere"}) == 401


def test_offline_keys_then_a_server_that_sees_changes_within_a_second(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    made = kiroproxy(home, fake.url, "keys", "create", "--name", "offline")
    assert made.returncode == 0, made.stderr
    key = created_key(made.stdout)
    spare = created_key(kiroproxy(home, fake.url, "keys", "create", "--name", "spare").stdout)
    assert not (home / ".kiro-proxy" / "admin.key").exists()  # the store alone was opened
    proc = Process(home, fake.url)
    try:
        assert proc.admin("POST", "/accounts", json=factories.token_file("acc-K")).status_code == 201
        assert anthropic_status(proc.url, **{"x-api-key": key}) == 200
        assert anthropic_status(proc.url, **{"x-api-key": "guess"}) == 401
        # Found through server.json: no --server, no --admin-key.
        listed = kiroproxy(home, fake.url, "keys", "list", "--json")
        assert [r["name"] for r in json.loads(listed.stdout)] == ["offline", "spare"]
        # Another process changes keys.json behind the server's back.
        KeyStore(home / ".kiro-proxy").revoke("offline")
        changed = time.monotonic()
        wait_for(lambda: anthropic_status(proc.url, **{"x-api-key": key}) == 401, timeout=1.0)
        assert time.monotonic() - changed <= 1.0
        assert anthropic_status(proc.url, **{"x-api-key": spare}) == 200
        KeyStore(home / ".kiro-proxy").revoke("spare")  # the last key gone: any key is accepted again
        wait_for(lambda: anthropic_status(proc.url, **{"x-api-key": "guess"}) == 200, timeout=1.0)
    finally:
        assert proc.stop() == 0


def test_admin_key_prints_the_stored_key(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    none_yet = kiroproxy(home, fake.url, "admin-key")
    assert none_yet.returncode == 1 and "first start" in none_yet.stderr
    proc = Process(home, fake.url)
    try:
        printed = kiroproxy(home, fake.url, "admin-key")
        assert printed.returncode == 0 and printed.stdout.strip() == proc.key
    finally:
        assert proc.stop() == 0
    configured = kiroproxy(home, fake.url, "admin-key", env={"KIROPROXY_ADMIN_KEY": ADMIN_KEY})
    assert configured.stdout.strip() == ADMIN_KEY
