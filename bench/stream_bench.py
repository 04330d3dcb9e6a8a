"""Streaming benchmark: the proxy against the fake Kiro, side by side with the fake read directly.

Run from the repository root:  python bench/stream_bench.py [--streams 32] [--chunks 200]

It starts the fake upstream and the real proxy (`python kiroproxy.py`) as two subprocesses, so
the client, the proxy and the fake never share an interpreter lock, then reports, in one run:
  * time to first byte and total time of a <chunks>-chunk stream, direct vs through the proxy,
    at 1 and <streams> concurrent streams;
  * requests per second for short non-streaming requests, direct vs through the proxy;
  * resident memory of the proxy idle and under load;
  * start-up time to the first answered GET /v1/models.
Numbers are medians over the runs; compare ratios, not absolute times (shared machines are noisy).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiroproxy.kiro.eventstream import Decoder  # noqa: E402
from tests import factories  # noqa: E402
from tests.fakes.kiro import FakeKiro  # noqa: E402
from tests.fakes.scripts import Script, text_answer  # noqa: E402

ADMIN = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class ProxyProcess:
    def __init__(self, fake_url: str) -> None:
        self.home = tempfile.mkdtemp(prefix="kiroproxy-bench-")
        self.port = free_port()
        env = dict(os.environ, HOME=self.home, KIROPROXY_ADMIN_KEY=ADMIN, KIROPROXY_KIRO_API_URL=fake_url,
                   KIROPROXY_KIRO_AUTH_URL=fake_url, KIROPROXY_AWS_OIDC_URL=fake_url,
                   KIROPROXY_LOG_LEVEL="WARNING")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "--port", str(self.port),
                                      "--threads", "64"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            try:
                if requests.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except requests.ConnectionError:
                pass
            time.sleep(0.005)
        raise RuntimeError("the proxy did not start")

    def add_account(self) -> None:
        response = requests.post(self.url + "/api/accounts", json=factories.token_file("bench-acc"),
                                 headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class RssSampler:
    """Peak resident memory of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stream_script(chunks: int) -> Script:
    return text_answer(*[f"chunk{i:04d} " for i in range(chunks)])


SHORT_MARK = b"bench-short"


def serve_fake(chunks: int) -> None:
    """Child process: a fake Kiro answering short requests with "ok" and the rest with a long stream."""
    with FakeKiro() as fake:
        fake.route(lambda recorded: SHORT_MARK in recorded.body, text_answer("ok"))
        fake.route(lambda recorded: True, stream_script(chunks))
        print(fake.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin


class FakeProcess:
    def __init__(self, chunks: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(chunks)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake did not start")

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def read_direct(fake_url: str) -> tuple:
    start = time.perf_counter()
    first = None
    with requests.post(fake_url + "/generateAssistantResponse", data=b'{"bench":"stream"}', stream=True,
                       headers={"Authorization": "Bearer bench-acc"}, timeout=60) as response:
        decoder = Decoder()
        for chunk in _chunks(response):
            for frame in decoder.feed(chunk):
                if first is None and frame.event_type == "assistantResponseEvent":
                    first = time.perf_counter() - start
    return first, time.perf_counter() - start


def _chunks(response):
    read1 = response.raw.read1
    while True:
        data = read1(65536)
        if not data:
            return
        yield data


def read_proxy(url: str) -> tuple:
    start = time.perf_counter()
    first = None
    body = {"model": "claude-sonnet-4.5", "max_tokens": 4096, "stream": True,
            "messages": [{"role": "user", "content": "benchmark"}]}
    with requests.post(url + "/v1/messages", json=body, stream=True, timeout=60,
                       headers={"x-api-key": "bench", "anthropic-version": "2023-06-01"}) as response:
        for line in response.iter_lines(chunk_size=None):
            if first is None and line.startswith(b"data:") and b"text_delta" in line:
                first = time.perf_counter() - start
    return first, time.perf_counter() - start


def run_streams(reader, target: str, count: int, rounds: int) -> tuple:
    ttfb, total = [], []
    for _ in range(rounds):
        with ThreadPoolExecutor(count) as pool:
            for first, whole in pool.map(lambda _: reader(target), range(count)):
                ttfb.append(first)
                total.append(whole)
    return statistics.median(ttfb) * 1000, statistics.median(total) * 1000


def rps(call, count: int, workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: call(), range(count)))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--serve-fake", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    results: dict = {}
    fake = FakeProcess(args.chunks)
    try:
        proxy = ProxyProcess(fake.url)
        try:
            results["startup_ms"] = round(proxy.startup * 1000, 1)
            proxy.add_account()
            requests.get(proxy.url + "/v1/models", timeout=5)
            results["rss_idle_mb"] = round(rss_kb(proxy.proc.pid) / 1024, 1)
            read_proxy(proxy.url)  # one warm-up stream: the tokenizer loads lazily on first use
            results["rss_after_first_request_mb"] = round(rss_kb(proxy.proc.pid) / 1024, 1)
            for count in (1, args.streams):
                rounds = args.rounds if count == 1 else max(1, args.rounds // 2)
                direct = run_streams(read_direct, fake.url, count, rounds)
                with RssSampler(proxy.proc.pid) as sampler:
                    via = run_streams(read_proxy, proxy.url, count, rounds)
                results[f"streams_{count}"] = {
                    "direct_ttfb_ms": round(direct[0], 2), "proxy_ttfb_ms": round(via[0], 2),
                    "ttfb_added_ms": round(via[0] - direct[0], 2),
                    "direct_total_ms": round(direct[1], 1), "proxy_total_ms": round(via[1], 1),
                    "total_ratio": round(via[1] / direct[1], 2), "proxy_peak_rss_mb": round(sampler.peak / 1024, 1),
                }
            session_local = threading.local()

            def session() -> requests.Session:
                if not hasattr(session_local, "s"):
                    session_local.s = requests.Session()
                return session_local.s

            def direct_call() -> None:
                response = session().post(fake.url + "/generateAssistantResponse", data=SHORT_MARK, timeout=30)
                response.raise_for_status()

            body = {"model": "claude-sonnet-4.5", "max_tokens": 64,
                    "messages": [{"role": "user", "content": SHORT_MARK.decode()}]}

            def proxy_call() -> None:
                r = session().post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": "b"}, timeout=30)
                r.raise_for_status()

            direct_rps = rps(direct_call, args.requests, 8)
            proxy_rps = rps(proxy_call, args.requests, 8)
            results["short_requests"] = {"direct_rps": round(direct_rps, 1), "proxy_rps": round(proxy_rps, 1),
                                         "ratio": round(proxy_rps / direct_rps, 2)}
            results["rss_end_mb"] = round(rss_kb(proxy.proc.pid) / 1024, 1)
        finally:
            proxy.stop()
    finally:
        fake.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
