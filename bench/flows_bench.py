"""Flow store benchmark: recording cost, queries over 10,000 flows, disk use under a size cap.

Run from the repository root:  python bench/flows_bench.py [--flows 10000]

1. Recording: the time FlowStore.finished() takes on the request thread for a 300 KB request
   (median and p99 over many calls), next to the time the writer thread spends per flow.
2. Queries: the store is filled with --flows flows, the real server (`python kiroproxy.py`) is
   started on it, and a filtered GET /api/flows page, a full-text search and GET /api/flows/stats
   are timed over HTTP (median of 20 each).
3. Disk cap: large requests (300 KB each) stream through the real server with flows_max_mb=--cap-mb (5);
   the flow directory's size is sampled after every request batch and its maximum reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiroproxy import chat  # noqa: E402
from kiroproxy.exchange import Attempt, Exchange  # noqa: E402
from kiroproxy.store.flows import FlowStore  # noqa: E402
from kiroproxy.store.stats import Stats  # noqa: E402
from tests import factories  # noqa: E402
from tests.fakes.kiro import FakeKiro  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from stream_bench import ADMIN, free_port  # noqa: E402

BIG_TEXT = "".join(f"line {n}: the quick brown fox {os.urandom(6).hex()} jumps\n" for n in range(6000))


def exchange(n: int, big: bool = True) -> Exchange:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 32000, "system": "You are Claude Code." * 50,
            "messages": [{"role": "user", "content": (BIG_TEXT if big else "short") + f" question {n}"}]}
    req = chat.ChatRequest(model="claude-sonnet-4-6", messages=(chat.Message("user", (chat.Text(f"question {n}"),)),))
    ex = Exchange(protocol=("anthropic", "openai", "gemini")[n % 3], path="/v1/messages",
                  requested_model="claude-sonnet-4-6", stream=True, body=body, request=req,
                  headers={"user-agent": "bench"})
    ex.model, ex.account_id, ex.state, ex.first_byte_at = "claude-sonnet-4.6", f"acct{n % 4}", "completed", \
        ex.received_at + 0.2
    ex.completed_at = ex.received_at + 1.5
    ex.attempts.append(Attempt(ex.account_id, "ok"))
    reply = chat.Reply(model=ex.model, parts=[chat.Text(f"answer {n} " + "lorem ipsum " * 40)],
                       usage=chat.Usage(input_tokens=80000, output_tokens=300))
    ex.reply, ex.usage = reply, reply.usage
    if n % 17 == 0:
        ex.fail(429, "rate_limit", "every account is rate limited")
    return ex


def bench_recording(samples: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        store = FlowStore(Path(home) / "flows", Stats(Path(home) / "stats.json"),
                          secrets=lambda: ["aoa-secret-token-value-123456"])
        store.start()
        exchanges = [exchange(n) for n in range(samples)]
        times = []
        for ex in exchanges:
            store.started(ex)
            start = time.perf_counter()
            store.finished(ex)
            times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        store.flush(120)
        writer = (time.perf_counter() - start) * 1000 / samples
        store.close()
    ordered = sorted(times)
    return {"finished_median_ms": round(statistics.median(times), 4),
            "finished_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 4),
            "writer_ms_per_flow (off the request path)": round(writer, 2)}


def fill(home: Path, count: int) -> None:
    store = FlowStore(home / ".kiro-proxy" / "flows", Stats(home / ".kiro-proxy" / "stats.json"),
                      max_flows=count + 10)
    store.start()
    for n in range(count):
        ex = exchange(n, big=False)
        store.started(ex)
        store.finished(ex)
    store.close(300)


def timed(call, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return round(statistics.median(times), 2)


def start_proxy(home: Path, fake_url: str, *extra: str) -> tuple:
    port = free_port()
    env = dict(os.environ, HOME=str(home), KIROPROXY_ADMIN_KEY=ADMIN, KIROPROXY_KIRO_API_URL=fake_url,
               KIROPROXY_KIRO_AUTH_URL=fake_url, KIROPROXY_AWS_OIDC_URL=fake_url, KIROPROXY_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "--port", str(port), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(url + "/v1/models", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("the proxy did not start")


def bench_queries(count: int, fake_url: str) -> dict:
    home = Path(tempfile.mkdtemp(prefix="kiroproxy-flows-"))
    start = time.perf_counter()
    fill(home, count)
    filled = time.perf_counter() - start
    started = time.perf_counter()
    proc, url = start_proxy(home, fake_url)
    startup = time.perf_counter() - started
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        total = requests.get(url + "/api/flows", headers=headers, params={"limit": 1}).json()["total"]
        page = timed(lambda: requests.get(url + "/api/flows", headers=headers,
                                          params={"protocol": "openai", "has_error": "false", "limit": 50}))
        search = timed(lambda: requests.get(url + "/api/flows", headers=headers, params={"q": "answer 4321"}))
        stats = timed(lambda: requests.get(url + "/api/flows/stats", headers=headers))
        status = timed(lambda: requests.get(url + "/api/status", headers=headers))
    finally:
        proc.terminate()
        proc.wait(10)
    return {"flows": total, "fill_seconds": round(filled, 1), "startup_with_store_ms": round(startup * 1000),
            "filtered_page_ms": page, "full_text_search_ms": search, "flows_stats_ms": stats, "status_ms": status}


def bench_disk_cap(fake: FakeKiro, requests_count: int, cap_mb: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix="kiroproxy-cap-"))
    proc, url = start_proxy(home, fake.url)
    flows_dir = home / ".kiro-proxy" / "flows"
    peak = 0
    try:
        requests.post(url + "/api/accounts", json=factories.token_file("bench-acc"),
                      headers={"Authorization": f"Bearer {ADMIN}"}).raise_for_status()
        config = home / ".kiro-proxy" / "config.json"
        config.write_text(json.dumps({"flows_max_mb": cap_mb}))
        proc.terminate()
        proc.wait(10)
        proc, url = start_proxy(home, fake.url)
        body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": BIG_TEXT}]}
        for n in range(requests_count):
            requests.post(url + "/v1/messages", json=body, headers={"x-api-key": "k"}).raise_for_status()
            if n % 10 == 9:
                size = sum(p.stat().st_size for p in flows_dir.rglob("*") if p.is_file())
                peak = max(peak, size)
        time.sleep(1.5)  # bench only: let the writer's last batch land
        final = sum(p.stat().st_size for p in flows_dir.rglob("*") if p.is_file())
        kept = requests.get(url + "/api/flows", headers={"Authorization": f"Bearer {ADMIN}"},
                            params={"limit": 1}).json()["total"]
    finally:
        proc.terminate()
        proc.wait(10)
    return {"requests": requests_count, "request_kb": len(BIG_TEXT) // 1024, "cap_mb": cap_mb,
            "peak_mb": round(peak / 2**20, 2), "final_mb": round(final / 2**20, 2), "flows_kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--cap-mb", dest="cap_mb", type=float, default=5.0)
    args = parser.parse_args()
    results = {"recording": bench_recording(args.samples)}
    with FakeKiro() as fake:
        results["queries"] = bench_queries(args.flows, fake.url)
        results["disk_cap"] = bench_disk_cap(fake, args.large, args.cap_mb)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
