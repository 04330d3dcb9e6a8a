"""kill -9 under load: concurrent streams, refreshes of every account (the fake rotates refresh
tokens) and flow writes; the server is killed several times and restarted on the same data
directory. Nothing a crash may not take is lost: no refresh token the provider rotated more than
a moment before the kill, no flow of a request that completed a second before it; no temp file
survives a restart and everything in the data directory is private."""
from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import requests

from tests import factories

from .conftest import wait_for
from .test_server_process import Process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and file modes")

ACCOUNTS = ("acc-K1", "acc-K2", "acc-K3")
ROUNDS = 3
CLIENTS = 4
TOKEN_MARGIN = 0.5  # a refresh answered this long before the kill must be on disk
FLOW_MARGIN = 1.0   # a request completed this long before the kill must have its flow
ENV = {"KIROPROXY_REFRESH_MARGIN_SECONDS": "1000000",  # every token is always due: constant refreshes
       "KIROPROXY_REFRESH_INTERVAL_SECONDS": "0.05"}


class Load:
    """Client threads streaming answers back to back; remembers when each one completed."""

    def __init__(self, url: str, tag: str) -> None:
        self.url, self.tag = url, tag
        self.done: List[Tuple[str, float]] = []  # (prompt, time.monotonic() when read to the end)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def _run(self, client: int) -> None:
        count = 0
        with requests.Session() as http:
            while not self.stopping.is_set():
                prompt = f"{self.tag}-{client}-{count}"
                count += 1
                try:
                    body = http.post(self.url + "/v1/messages", json=factories.anthropic_body(prompt, stream=True),
                                     headers={"x-api-key": "k"}, timeout=10).text
                except requests.RequestException:
                    return  # killed
                if "event: message_stop" in body:
                    self.done.append((prompt, time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def stored_refresh_tokens(data: Path) -> Dict[str, str]:
    """Account id -> the refresh token accounts.json holds."""
    records = json.loads((data / "accounts.json").read_text())["_default"].values()
    return {r["id"]: r["refresh_token"] for r in records}


def flow_snippets(proc: Process) -> set:
    seen: set = set()
    offset = 0
    while True:
        page = proc.admin("GET", "/flows", params={"limit": 500, "offset": offset}).json()
        seen |= {f["snippet"] for f in page["flows"]}
        offset += 500
        if offset >= page["total"]:
            return seen


def assert_private_and_tidy(data: Path) -> None:
    for folder, dirs, names in os.walk(data):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
        for name in names:
            path = os.path.join(folder, name)
            assert not name.endswith(".tmp"), f"a stale temp file survived the restart: {path}"
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_kill_9_under_load_loses_no_refresh_token_and_no_settled_flow(tmp_path, fake):
    fake.rotate_refresh = True
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, extra_env=ENV)
    initial = {}
    for name in ACCOUNTS:
        document = factories.token_file(name)
        initial[name] = document["refreshToken"]
        assert proc.admin("POST", "/accounts", json=document).status_code == 201
    ids = None
    completed: List[str] = []
    for round_ in range(ROUNDS):
        if round_:
            proc = Process(home, fake.url, extra_env=ENV)
            snippets = flow_snippets(proc)  # first: the store reads its flows (and repairs) once it serves
            assert_private_and_tidy(proc.data)
            missing = [p for p in completed if p not in snippets]
            assert missing == [], f"flows lost by the kill: {missing[:5]} ({len(missing)})"
        refreshed_before = len(fake.refreshes)
        load = Load(proc.url, f"r{round_}")
        wait_for(lambda: sum(at <= time.monotonic() - FLOW_MARGIN for _, at in list(load.done)) >= 20
                 and len(fake.refreshes) >= refreshed_before + 3 * len(ACCOUNTS), timeout=30)
        proc.proc.kill()  # SIGKILL, in the middle of everything
        killed_at = time.monotonic()
        assert proc.finish() == -9
        load.stop()
        completed += [p for p, at in load.done if at <= killed_at - FLOW_MARGIN]
        # Refresh tokens: the one on disk has no successor issued before the kill's margin.
        stored = stored_refresh_tokens(proc.data)
        ids = ids or sorted(stored)
        assert sorted(stored) == ids and len(ids) == len(ACCOUNTS)  # every account still there
        refreshes = fake.refreshes
        known = set(initial.values()) | {r.issued for r in refreshes}
        for refresh_token in stored.values():
            assert refresh_token in known
            superseded = [r for r in refreshes if r.sent == refresh_token and r.at <= killed_at - TOKEN_MARGIN]
            assert superseded == [], "the provider rotated a refresh token the data directory lost"
    final = Process(home, fake.url, extra_env=ENV)
    try:
        snippets = flow_snippets(final)
        assert_private_and_tidy(final.data)
        assert [p for p in completed if p not in snippets] == []
        assert len(completed) >= 20 * ROUNDS
    finally:
        assert final.stop() == 0
