"""Flow store benchmark: recording cost, index writes, queries and search over 10,000 flows, memory,
and disk use under a size cap.

Run from the repository root:  python bench/flows_bench.py [--flows 10000] [--secrets 150]

1. Recording: the time FlowStore.finished() takes on the request thread for Claude Code-shaped
   requests of ~4 KB and ~300 KB with --secrets known secrets (50 accounts hold 150), median and
   p99 (wall time, and the thread's CPU time: wall time also counts waiting for the GIL while
   the writer thread works), next to the time the writer thread spends per flow; then the index
   and body bytes written per flow when every flow is its own batch (light load).
2. Queries: the store is filled with --flows flows of ~4 KB, the real server (`python
   kiroproxy.py`) is started on it, and GET /api/flows (filtered page), q with a common and a rare
   term, GET /api/flows/stats and GET /api/status are timed over HTTP (median of 20), with the
   server's resident memory. A second store of --big flows of ~300 KB measures how fast `q` reads.
3. Disk cap: ~300 KB requests stream through the real server with flows_max_mb=--cap-mb; the flow
   folder's size is sampled every few milliseconds by a thread and its maximum reported.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets as random_secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiroproxy import chat  # noqa: E402
from kiroproxy.exchange import COMPLETED, ERROR, Attempt, ExchangeSnapshot  # noqa: E402
from kiroproxy.protocols import anthropic  # noqa: E402
from kiroproxy.store.flows import FlowStore  # noqa: E402
from kiroproxy.store.stats import Stats  # noqa: E402
from tests import factories  # noqa: E402
from tests.fakes.kiro import FakeKiro  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from stream_processes import ADMIN, free_port, rss_mb  # noqa: E402

WORDS = ("the quick brown fox jumps over lazy dogs while reading source files and running tests "
         "def class return import self value result error config parse render stream").split()
BIG_TEXT = "".join(f"line {n}: the quick brown fox {os.urandom(6).hex()} jumps\n" for n in range(6000))


def prose(size: int, seed: int) -> str:
    out, n, length = [], seed, 0
    while length < size:
        n = (n * 1103515245 + 12345) % 2**31
        word = WORDS[n % len(WORDS)] + (f"{n % 997}" if n % 11 == 0 else "")
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def claude_code_body(size: int, n: int) -> dict:
    """A Messages body shaped like Claude Code's: system blocks, tools, tool use and results."""
    messages = [{"role": "user", "content": f"task {n}: fix the failing test"}]
    big = size > 50_000
    tools = [{"name": f"Tool{i}", "description": prose(400 if big else 150, i), "input_schema": {
        "type": "object", "properties": {"path": {"type": "string"}}}} for i in range(12 if big else 3)]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 32000, "stream": True, "tools": tools,
            "system": [{"type": "text", "text": "You are Claude Code. " + prose(3000 if big else 800, n)}],
            "messages": messages}
    length, turn = len(json.dumps(body)), 0
    while length < size:
        turn += 1
        said = prose(200, n + turn)
        result = prose(min(6000, size // 8), n * 7 + turn)
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": said},
            {"type": "tool_use", "id": f"t{turn}", "name": "Tool1", "input": {"path": f"src/file{turn}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{turn}", "content": result}]})
        length += len(said) + len(result) + 220
    messages.append({"role": "user", "content": f"question {n} " + prose(300 if big else 100, n)})
    return body


def exchange(n: int, size: int = 4096) -> ExchangeSnapshot:
    """A finished exchange as the relay hands it to the flow store."""
    body = claude_code_body(size, n)
    received = time.time()
    reply = chat.Reply(model="claude-sonnet-4.6", parts=[chat.Text(f"answer {n} " + prose(1500, n + 1))],
                       usage=chat.Usage(input_tokens=80000, output_tokens=300))
    done = ExchangeSnapshot(
        protocol=("anthropic", "openai", "gemini")[n % 3], path="/v1/messages", requested_model="claude-sonnet-4-6",
        stream=True, body=body, request=anthropic.parse(body), headers={"user-agent": "bench"},
        raw_body=json.dumps(body).encode(),  # as web/bodies leaves it
        model="claude-sonnet-4.6", account_id=f"acct{n % 4}", state=COMPLETED, received_at=received,
        first_byte_at=received + 0.2, completed_at=received + 1.5, usage=reply.usage,
        attempts=(Attempt(f"acct{n % 4}", "ok"),), reply=reply)
    if n % 17 == 0:
        done = replace(done, state=ERROR, status=429,
                       error={"kind": "rate_limit", "status": 429, "message": "every account is rate limited"})
    return done


def kiro_secrets(count: int) -> list:
    """Access tokens, refresh tokens and client secrets of count // 3 accounts, at realistic lengths."""
    made = []
    for n in range(count):
        prefix, length = (("aoa", 900), ("aor", 600), ("", 400))[n % 3]
        made.append(prefix + random_secrets.token_urlsafe(length)[:length])
    return made


def percentile(values: list, point: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * point))], 4)


def bench_recording(samples: int, secret_count: int) -> dict:
    secrets = kiro_secrets(secret_count)
    out = {"secrets": secret_count}
    for label, size in (("4KB", 3300), ("300KB", 300_000)):
        with tempfile.TemporaryDirectory() as home:
            store = FlowStore(Path(home) / "flows", Stats(Path(home) / "stats.json"), secrets=lambda: secrets)
            store.start()
            for n in range(10):  # warm up (first calls import and compile lazily)
                store.finished(exchange(samples + n, size))
            made = [exchange(n, size) for n in range(samples)]
            times, cpu = [], []
            for ex in made:
                start, start_cpu = time.perf_counter(), time.thread_time()
                store.finished(ex)
                times.append((time.perf_counter() - start) * 1000)
                cpu.append((time.thread_time() - start_cpu) * 1000)
            start = time.perf_counter()
            store.flush(600)
            writer = (time.perf_counter() - start) * 1000 / samples
            store.close()
        out[label] = {"body_kb": round(len(json.dumps(made[0].body)) / 1024),
                      "finished_median_ms": round(statistics.median(times), 4),
                      "finished_p99_ms": percentile(times, 0.99),
                      # Wall time includes waiting for the GIL while the writer thread works; the
                      # thread's own CPU time is the work finished() does.
                      "finished_cpu_median_ms": round(statistics.median(cpu), 4),
                      "finished_cpu_p99_ms": percentile(cpu, 0.99),
                      "writer_ms_per_flow (off the request path)": round(writer, 2)}
    return out


def bench_index_writes(count: int) -> dict:
    """Index vs body bytes written per flow when each flow is its own batch (light load)."""
    with tempfile.TemporaryDirectory() as home:
        store = FlowStore(Path(home) / "flows", Stats(Path(home) / "stats.json"))
        written = {"index": 0, "body": 0}
        append, rewrite, write_body = store.disk.append, store.disk.rewrite, store.disk.write_body

        def counted_append(segment, records):
            before = store.disk.log_size(segment)
            size = append(segment, records)
            written["index"] += size - before
            return size

        def counted_rewrite(segment, records):
            size = rewrite(segment, records)
            written["index"] += size
            return size

        def counted_body(segment, flow_id, data, **kw):
            written["body"] += write_body(segment, flow_id, data, **kw)
            return len(data)

        store.disk.append, store.disk.rewrite, store.disk.write_body = counted_append, counted_rewrite, counted_body
        for n in range(count):
            store.finished(exchange(n, 300_000 if n % 10 == 0 else 4096))
            store.flush()
        store.close()
    return {"flows": count, "index_bytes_per_flow": written["index"] // count,
            "body_bytes_per_flow": written["body"] // count}


def fill(home: Path, count: int, size: int) -> None:
    store = FlowStore(home / ".kiro-proxy" / "flows", Stats(home / ".kiro-proxy" / "stats.json"),
                      max_flows=count + 10)
    store.start()
    for n in range(count):
        ex = exchange(n, size)
        if n == 7:
            ex.reply.parts.append(chat.Text(" a rare xylophonist"))  # the oldest flows hold the rare term
        store.finished(ex)
    store.close(600)


def timed(call, runs: int = 20) -> tuple:
    times, last = [], None
    for _ in range(runs):
        start = time.perf_counter()
        last = call()
        times.append((time.perf_counter() - start) * 1000)
        last.raise_for_status()
    return round(statistics.median(times), 2), last.json()


def start_proxy(home: Path, fake_url: str) -> tuple:
    port = free_port()
    env = dict(os.environ, HOME=str(home), KIROPROXY_ADMIN_KEY=ADMIN, KIROPROXY_KIRO_API_URL=fake_url,
               KIROPROXY_KIRO_AUTH_URL=fake_url, KIROPROXY_AWS_OIDC_URL=fake_url, KIROPROXY_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, str(ROOT / "kiroproxy.py"), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if requests.get(url + "/v1/models", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("the proxy did not start")


def bench_empty(fake_url: str) -> dict:
    """Start-up time and memory of the server on an empty store, to compare with a full one."""
    home = Path(tempfile.mkdtemp(prefix="kiroproxy-flows-"))
    started = time.perf_counter()
    proc, _ = start_proxy(home, fake_url)
    try:
        startup = round((time.perf_counter() - started) * 1000)
        return {"startup_ms": startup, "rss_mb": round(rss_mb(proc.pid), 1)}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def bench_queries(count: int, size: int, fake_url: str) -> dict:
    home = Path(tempfile.mkdtemp(prefix="kiroproxy-flows-"))
    start = time.perf_counter()
    fill(home, count, size)
    filled = time.perf_counter() - start
    started = time.perf_counter()
    proc, url = start_proxy(home, fake_url)
    startup = time.perf_counter() - started
    headers = {"Authorization": f"Bearer {ADMIN}"}

    def get(path: str, **params):
        return lambda: requests.get(url + path, headers=headers, params=params)

    try:
        rss_idle = rss_mb(proc.pid)
        out = {"flows": requests.get(url + "/api/flows", headers=headers, params={"limit": 1}).json()["total"],
               "body_kb": round(len(json.dumps(claude_code_body(size, 1))) / 1024), "fill_seconds": round(filled, 1),
               "store_mb": round(sum(p.stat().st_size for p in (home / ".kiro-proxy" / "flows").rglob("*")
                                     if p.is_file()) / 2**20, 1),
               "startup_with_store_ms": round(startup * 1000)}
        out["page_ms"], _ = timed(get("/api/flows", limit=50))
        out["filtered_page_ms"], _ = timed(get("/api/flows", protocol="openai", has_error="false", limit=50))
        out["q_common_term_ms"], common = timed(get("/api/flows", q="fix the failing", limit=50))
        out["q_common_term_found"] = len(common["flows"])
        out["q_rare_term_ms"], rare = timed(get("/api/flows", q="xylophonist"), runs=5)
        out["q_rare_term"] = {"found": len(rare["flows"]), "examined": rare["examined"], "partial": rare["partial"]}
        out["flows_stats_ms"], _ = timed(get("/api/flows/stats"))
        out["status_ms"], _ = timed(get("/api/status"))
        out["rss_mb_idle_after_start"] = round(rss_idle, 1)
        out["rss_mb_after_queries"] = round(rss_mb(proc.pid), 1)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)
    return out


def bench_disk_cap(fake: FakeKiro, requests_count: int, cap_mb: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix="kiroproxy-cap-"))
    (home / ".kiro-proxy").mkdir()
    (home / ".kiro-proxy" / "config.json").write_text(json.dumps({"flows_max_mb": cap_mb}))
    proc, url = start_proxy(home, fake.url)
    flows_dir = home / ".kiro-proxy" / "flows"
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            size = 0
            for path in flows_dir.rglob("*"):
                try:
                    size += path.stat().st_size if path.is_file() else 0
                except OSError:
                    pass
            peak[0] = max(peak[0], size)
            stop.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        requests.post(url + "/api/accounts", json=factories.token_file("bench-acc"),
                      headers={"Authorization": f"Bearer {ADMIN}"}).raise_for_status()
        sampler.start()
        body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": BIG_TEXT}]}
        for _ in range(requests_count):
            requests.post(url + "/v1/messages", json=body, headers={"x-api-key": "k"}).raise_for_status()
        time.sleep(1.5)  # bench only: let the writer's last batch land
        stop.set()
        sampler.join()
        final = sum(p.stat().st_size for p in flows_dir.rglob("*") if p.is_file())
        kept = requests.get(url + "/api/flows", headers={"Authorization": f"Bearer {ADMIN}"},
                            params={"limit": 1}).json()["total"]
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)
    return {"requests": requests_count, "request_kb": len(BIG_TEXT) // 1024, "cap_mb": cap_mb,
            "peak_mb": round(peak[0] / 2**20, 2), "final_mb": round(final / 2**20, 2), "flows_kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=500, help="flows of ~300 KB for the search speed")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--secrets", type=int, default=150)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--cap-mb", dest="cap_mb", type=float, default=5.0)
    args = parser.parse_args()
    results = {"recording": bench_recording(args.samples, args.secrets), "index_writes": bench_index_writes(200)}
    with FakeKiro() as fake:
        results["empty_store"] = bench_empty(fake.url)
        results["queries"] = bench_queries(args.flows, 4096, fake.url)
        results["queries_big_bodies"] = bench_queries(args.big, 300_000, fake.url)
        results["disk_cap"] = bench_disk_cap(fake, args.large, args.cap_mb)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
