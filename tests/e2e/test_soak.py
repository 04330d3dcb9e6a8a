"""Soak: streams whose clients leave after the first chunk leave nothing behind in the server
(threads, file descriptors, upstream connections) and its memory flat. Half the answers are
slow (the client leaves while the proxy still waits for the first upstream event, behind
keep-alives), half are held after their first text. The server is a real process, measured
through /proc."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Dict

import pytest
import requests

from tests import factories
from tests.fakes.scripts import Script

from .conftest import wait_for
from .test_server_process import Process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
CLIENTS = 10


def usage(pid: int) -> Dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rss_kb": int(fields["VmRSS"].split()[0])}


def leave_after_the_first_chunk(url: str, count: int) -> None:
    """`count` streams from CLIENTS threads, half of them slow; each client closes its connection
    after the first chunk of the answer."""
    errors: list = []

    def client(n: int, prompt: str) -> None:
        with requests.Session() as http:
            for _ in range(n):
                try:
                    with http.post(url + "/v1/messages", json=factories.anthropic_body(prompt, stream=True),
                                   headers=HEADERS, stream=True, timeout=30) as response:
                        assert response.status_code == 200, response.status_code
                        assert next(response.iter_content(chunk_size=None))
                except Exception as exc:  # reported below, on the test's thread
                    errors.append(exc)

    threads = [threading.Thread(target=client, args=(count // CLIENTS, "slow" if i % 2 else "fast"))
               for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


def settled(proc: Process, fake, baseline: Dict[str, int], streams: int) -> bool:
    now = usage(proc.proc.pid)
    return (fake.wait_streams(streams, 0) and len(fake._connections) <= baseline["upstream"]
            and now["threads"] <= baseline["threads"] and now["fds"] <= baseline["fds"])


def test_streams_left_after_the_first_chunk_leave_nothing_behind(tmp_path, fake):
    fake.route(lambda r: b"slow" in r.body, Script().slow_first_byte(30, "never").text("late").context_usage())
    fake.route(lambda r: True, Script().text("first").gate("never").text("rest").context_usage())
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, extra_env={"KIROPROXY_FIRST_EVENT_TIMEOUT": "1.5",
                                              "KIROPROXY_STREAM_START_SECONDS": "0.1"})
    try:
        assert proc.admin("POST", "/accounts", json=factories.token_file("acc-soak")).status_code == 201
        leave_after_the_first_chunk(proc.url, CLIENTS)  # warm up: thread pools, warm connections
        wait_for(lambda: fake.wait_streams(CLIENTS, 0), timeout=30)
        wait_for(lambda: proc.admin("GET", "/status").json()["in_flight"] == 0, timeout=30)
        baseline = {**usage(proc.proc.pid), "upstream": len(fake._connections)}
        done = CLIENTS
        for _ in range(2):
            leave_after_the_first_chunk(proc.url, 50)
            done += 50
            wait_for(lambda: settled(proc, fake, baseline, done), timeout=30)
        assert {s.outcome for s in fake.streams} == {"disconnected"}  # every upstream stream was cut
        grown_kb = usage(proc.proc.pid)["rss_kb"] - baseline["rss_kb"]
        assert grown_kb < 8 * 1024, f"RSS grew {grown_kb} KiB over 100 streams"

        def flows_recorded() -> bool:  # the last flows may still be on their way to the writer
            flows = proc.admin("GET", "/flows", params={"limit": 500}).json()["flows"]
            return len(flows) == done and {f["state"] for f in flows} == {"cancelled"}

        wait_for(flows_recorded, timeout=30)
    finally:
        assert proc.stop() == 0
