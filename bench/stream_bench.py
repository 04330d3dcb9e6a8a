"""Streaming benchmark: the proxy against the fake Kiro, beside the same answer read directly.

Run from the repository root:

    python bench/stream_bench.py                       # this checkout alone
    python bench/stream_bench.py --baseline d5e573e    # and a git ref, side by side (git worktree)
    python bench/stream_bench.py --streams-only --rounds 3 --baseline main   # quicker, while tuning

The fake upstream and every proxy run in their own processes (client, proxy and fake never share
an interpreter lock). The long answer is <chunks> text frames <interval> apart. One run prints,
for the Anthropic and the OpenAI path, each figure of the performance goals next to its direct
reference and whether the goal is met:
  * 1 stream and <streams> concurrent streams: time to first text byte, total time, errors, and
    the proxy's CPU time per stream during the concurrent batch (its steadiest cost figure);
  * short non-streaming requests per second at 16 concurrent (kept-alive client connections);
  * resident memory idle (before the first request), with the tokenizer loaded, at <streams> streams;
  * start-up to the first answered GET /v1/models;
  (the `floor` column of the stream figures: Flask, waitress and requests passing the fake's bytes
  through, bench/floor_stream_app.py: the fixed stack's own cost, which no proxy change removes;
  for idle memory and start-up, the `direct` column is the floor: Python, Flask and waitress alone
  serving one JSON route, bench/floor_app.py, started and measured like the proxy);
  * time to first byte against a fake charging 100 ms per new upstream connection, beside a
    reader on a warm connection.
Rounds interleave direct reads and the proxies so drift on a shared machine hits all alike.
Figures are medians; compare columns of one run, not numbers across machines.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from stream_processes import (FLOOR_APP, FLOOR_STREAM_APP, ROOT, FakeProcess, ProxyProcess, RssSampler, cpu_seconds,
                              rss_mb)
from stream_readers import (Call, anthropic_call, concurrent, direct_call, floor_call, median_ms, openai_call, rate,
                            read)

DIRECT = "direct"
FLOOR = "floor"  # Flask + waitress + requests passing the bytes through (bench/floor_stream_app.py)
PATHS = ("anthropic", "openai")
CALLS = {"anthropic": anthropic_call, "openai": openai_call}
SHORT_RATE_GOAL = 370.0  # 10 x petehsu/KiroProxy's 36.9 req/s measured on the reference machine


@dataclass
class Target:
    """One build of the proxy: this checkout or a baseline ref."""

    name: str
    root: Path
    proxy: Optional[ProxyProcess] = None
    slow: Optional[ProxyProcess] = None


@dataclass
class Results:
    values: Dict[str, Dict[str, List[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, figure: str, column: str, value: Optional[float]) -> None:
        if value is not None:
            self.values[figure][column].append(value)

    def median(self, figure: str, column: str) -> Optional[float]:
        found = self.values.get(figure, {}).get(column)
        return statistics.median(found) if found else None


# figure -> (label, unit, goal text, goal(value, direct) -> bool, or None for a figure without a goal)
Goal = Callable[[float, Optional[float]], Optional[bool]]


def goals(streams: int) -> Dict[str, tuple]:
    table: Dict[str, tuple] = {}
    for path in PATHS:
        table.update({
            f"{path}.ttfb_1": (f"{path}: 1 stream, first byte", "ms", "<= direct + 3 ms",
                               lambda v, d: d is not None and v <= d + 3),
            f"{path}.total_1": (f"{path}: 1 stream, total", "ms", "<= 1.03 x direct",
                                lambda v, d: d is not None and v <= 1.03 * d),
            f"{path}.ttfb_n": (f"{path}: {streams} streams, first byte", "ms", "<= 1.5 x direct",
                               lambda v, d: d is not None and v <= 1.5 * d),
            f"{path}.total_n": (f"{path}: {streams} streams, total", "ms", "<= 1.2 x direct",
                                lambda v, d: d is not None and v <= 1.2 * d),
            f"{path}.errors_n": (f"{path}: {streams} streams, errors (sum)", "", "0", lambda v, d: v == 0),
            f"{path}.rate": (f"{path}: short requests, 16 concurrent", "req/s", f">= {SHORT_RATE_GOAL:.0f}",
                             lambda v, d: v >= SHORT_RATE_GOAL),
            f"{path}.slow_ttfb": (f"{path}: first byte, 100 ms per new connection", "ms",
                                  "<= direct (warm) + 10 ms", lambda v, d: d is not None and v <= d + 10),
            f"{path}.rss_n": (f"{path}: memory at {streams} streams", "MB", "<= 130", lambda v, d: v <= 130),
            f"{path}.cpu_n": (f"{path}: proxy CPU per stream, {streams} streams", "ms", "(lower is better)",
                              lambda v, d: None),
        })
    table["rss_idle"] = ("memory idle, before the first request (direct: floor)", "MB", "<= 40",
                         lambda v, d: v <= 40)
    table["rss_tokenizer"] = ("memory with the tokenizer loaded", "MB", "<= 100", lambda v, d: v <= 100)
    table["startup"] = ("start-up to the first /v1/models (direct: floor)", "ms", "<= 300", lambda v, d: v <= 300)
    return table


# ----- scenarios -------------------------------------------------------------------------------


def start_targets(targets: List[Target], fake: FakeProcess, slow_fake: FakeProcess, results: Results,
                  startups: int) -> None:
    """Start each build `startups` times, alternating, for start-up time and idle memory; keep the last."""
    for number in range(startups):
        floor = ProxyProcess(ROOT, fake.url, script=FLOOR_APP)
        results.add("startup", DIRECT, floor.startup * 1000)
        results.add("rss_idle", DIRECT, rss_mb(floor.pid))
        floor.stop()
        for target in targets:
            proxy = ProxyProcess(target.root, fake.url)
            results.add("startup", target.name, proxy.startup * 1000)
            results.add("rss_idle", target.name, rss_mb(proxy.pid))
            if number + 1 < startups:
                proxy.stop()
            else:
                target.proxy = proxy
    for target in targets:
        target.slow = ProxyProcess(target.root, slow_fake.url)
        for proxy in (target.proxy, target.slow):
            proxy.add_account()
        for path in PATHS:  # the first chat request loads the tokenizer
            for proxy in (target.proxy, target.slow):
                read(proxy.url, CALLS[path](2))
        results.add("rss_tokenizer", target.name, rss_mb(target.proxy.pid))


def run_round(targets: List[Target], fake: FakeProcess, slow_fake: FakeProcess, results: Results,
              args: argparse.Namespace, floor: Optional[ProxyProcess] = None) -> None:
    chunks, streams = args.chunks, args.streams
    for _ in range(args.singles):
        sample = read(fake.url, direct_call(chunks))
        for path in PATHS:
            results.add(f"{path}.ttfb_1", DIRECT, _ms(sample.ttfb))
            results.add(f"{path}.total_1", DIRECT, sample.total * 1000)
    record_many(results, [f"{p}.{{}}_n" for p in PATHS], DIRECT, concurrent(fake.url, direct_call(chunks), streams))
    if floor is not None:
        for path in PATHS:
            run_streams(floor, FLOOR, path, floor_call(CALLS[path](chunks), chunks), results, args)
    if not args.streams_only:
        direct_rate, _ = rate(fake.url, direct_call(1, stream=False), args.requests, 16)
        for path in PATHS:
            results.add(f"{path}.rate", DIRECT, direct_rate)
            results.add(f"{path}.slow_ttfb", DIRECT,
                        _ms(read(slow_fake.url, direct_call(chunks), warm=args.settle).ttfb))
    for target in targets:
        for path in PATHS:
            run_path(target, path, results, args)


def run_streams(process: ProxyProcess, column: str, path: str, call: Call, results: Results,
                args: argparse.Namespace) -> None:
    """The 1-stream and concurrent-stream figures of one server (a proxy or the floor)."""
    for _ in range(args.singles):
        sample = read(process.url, call)
        results.add(f"{path}.ttfb_1", column, _ms(sample.ttfb))
        results.add(f"{path}.total_1", column, sample.total * 1000)
    cpu = cpu_seconds(process.pid)
    with RssSampler(process.pid) as peak:
        record_many(results, [f"{path}.{{}}_n"], column, concurrent(process.url, call, args.streams))
    results.add(f"{path}.cpu_n", column, (cpu_seconds(process.pid) - cpu) * 1000 / args.streams)
    results.add(f"{path}.rss_n", column, peak.mb)


def run_path(target: Target, path: str, results: Results, args: argparse.Namespace) -> None:
    make = CALLS[path]
    url = target.proxy.url
    run_streams(target.proxy, target.name, path, make(args.chunks), results, args)
    if args.streams_only:
        return
    per_second, failures = rate(url, make(1, stream=False), args.requests, 16)
    results.add(f"{path}.rate", target.name, per_second if not failures else 0.0)
    time.sleep(args.settle)  # time for a proxy to open its next upstream connection
    results.add(f"{path}.slow_ttfb", target.name, _ms(read(target.slow.url, make(args.chunks)).ttfb))


def record_many(results: Results, patterns: List[str], column: str, samples: list) -> None:
    """One concurrent batch: median first byte and total over its streams, errors summed."""
    ttfb = median_ms([s.ttfb for s in samples])
    total = median_ms([s.total for s in samples])
    errors = sum(1 for s in samples if not s.ok)
    for pattern in patterns:
        results.add(pattern.format("ttfb"), column, ttfb)
        results.add(pattern.format("total"), column, total)
        results.add(pattern.format("errors"), column, errors)


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else seconds * 1000


# ----- report ----------------------------------------------------------------------------------


def report(results: Results, targets: List[Target], streams: int) -> str:
    names = ([FLOOR] if FLOOR in results.values.get("anthropic.ttfb_n", {}) else []) + [t.name for t in targets]
    lines = [f"{'figure':<56}{'direct':>10}" + "".join(f"{n:>20}" for n in names) + "   goal"]
    for figure, (label, unit, goal_text, goal) in goals(streams).items():
        direct = results.median(figure, DIRECT)
        if figure.endswith("errors_n"):
            direct = sum(results.values.get(figure, {}).get(DIRECT, [])) if direct is not None else None
        cells = []
        for name in names:
            value = results.median(figure, name)
            if figure.endswith("errors_n"):
                value = sum(results.values.get(figure, {}).get(name, []))
            cells.append(_cell(value, goal(value, direct) if value is not None else False))
        shown = "" if direct is None else _number(direct)
        lines.append(f"{label + (f' ({unit})' if unit else ''):<56}{shown:>10}" + "".join(f"{c:>20}" for c in cells)
                     + f"   {goal_text}")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.1f}"


def _cell(value: Optional[float], met: Optional[bool]) -> str:
    if value is None:
        return "-"
    if met is None:  # a figure without a goal
        return _number(value)
    return f"{_number(value)} {'ok' if met else 'MISS'}"


# ----- main ------------------------------------------------------------------------------------


def baseline_worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="kiroproxy-baseline-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), ref], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REF", help="also run this git ref, side by side")
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between two frames")
    parser.add_argument("--rounds", type=int, default=5, help="0: only start-up and memory (quicker)")
    parser.add_argument("--singles", type=int, default=3, help="1-stream reads per path and round")
    parser.add_argument("--requests", type=int, default=200, help="short requests per path and round")
    parser.add_argument("--startups", type=int, default=3)
    parser.add_argument("--connect-delay", type=float, default=0.1, help="the slow fake's cost per connection")
    parser.add_argument("--settle", type=float, default=0.3, help="idle seconds before a slow-connect read")
    parser.add_argument("--streams-only", action="store_true",
                        help="only the 1-stream and concurrent-stream figures (quicker, while tuning)")
    parser.add_argument("--json", action="store_true", help="also print every sample as JSON")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the streaming floor (Flask + waitress + requests passing bytes through)")
    args = parser.parse_args()
    targets = [Target("kiroproxy", ROOT)]
    tree = baseline_worktree(args.baseline) if args.baseline else None
    if tree is not None:
        targets.append(Target(args.baseline, tree))
    fake = FakeProcess(args.chunks, args.interval)
    slow_fake = FakeProcess(args.chunks, args.interval, args.connect_delay)
    results = Results()
    floor: Optional[ProxyProcess] = None
    try:
        start_targets(targets, fake, slow_fake, results, args.startups)
        floor = ProxyProcess(ROOT, fake.url, script=FLOOR_STREAM_APP) if args.rounds and not args.no_floor else None
        for number in range(args.rounds):
            order = targets[number % len(targets):] + targets[:number % len(targets)]
            run_round(order, fake, slow_fake, results, args, floor)
    finally:
        if floor is not None:
            floor.stop()
        for target in targets:
            for proxy in (target.proxy, target.slow):
                if proxy is not None:
                    proxy.stop()
        fake.stop()
        slow_fake.stop()
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"{args.chunks} chunks {args.interval * 1000:g} ms apart, {args.rounds} rounds; medians")
    print(report(results, targets, args.streams))
    if args.json:
        print(json.dumps({k: dict(v) for k, v in results.values.items()}, indent=1))


if __name__ == "__main__":
    main()
