"""Short-request benchmark: non-streaming requests at 16 concurrent, with the proxy's CPU time per
request (read from /proc before and after each run: steadier than req/s on a loaded machine).

Run from the repository root:

    python bench/short_bench.py --baseline main --rounds 5

Each round runs every build once (order rotated), `--requests` Anthropic non-streaming requests
over 16 kept-alive connections; figures are medians over the rounds. One process differs from the
next by ~0.1 ms of CPU per request (memory layout, hash seeds), so each round starts every build
afresh unless --keep is given. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

from stream_bench import baseline_worktree
from stream_processes import ROOT, FakeProcess, ProxyProcess
from stream_readers import anthropic_call, rate, read


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(proxy: ProxyProcess, requests: int) -> Tuple[float, float]:
    """(requests per second, proxy CPU milliseconds per request)."""
    before = cpu_seconds(proxy.pid)
    per_second, failures = rate(proxy.url, anthropic_call(1, stream=False), requests, 16)
    if failures:
        raise RuntimeError(f"{failures} request(s) failed")
    return per_second, (cpu_seconds(proxy.pid) - before) * 1000 / requests


def started(root: Path, fake_url: str) -> ProxyProcess:
    proxy = ProxyProcess(root, fake_url)
    proxy.add_account()
    read(proxy.url, anthropic_call(2))  # loads the tokenizer
    run(proxy, 100)  # warm-up
    return proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REF", help="also run this git ref, side by side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="short requests per build and round")
    parser.add_argument("--keep", action="store_true", help="one process per build for every round")
    args = parser.parse_args()
    tree = baseline_worktree(args.baseline) if args.baseline else None
    roots: Dict[str, Path] = {"kiroproxy": ROOT, **({args.baseline: tree} if tree is not None else {})}
    fake = FakeProcess(1, 0.0)
    proxies: Dict[str, ProxyProcess] = {}
    rates: Dict[str, List[float]] = {name: [] for name in roots}
    cpus: Dict[str, List[float]] = {name: [] for name in roots}
    try:
        names = list(roots)
        for number in range(args.rounds):
            for name in names[number % len(names):] + names[:number % len(names)]:
                if name not in proxies or not args.keep:
                    if name in proxies:
                        proxies.pop(name).stop()
                    proxies[name] = started(roots[name], fake.url)
                per_second, cpu_ms = run(proxies[name], args.requests)
                rates[name].append(per_second)
                cpus[name].append(cpu_ms)
                print(f"round {number + 1} {name:>12}: {per_second:6.0f} req/s  {cpu_ms:.3f} ms CPU/request",
                      flush=True)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        fake.stop()
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"{args.requests} requests x {args.rounds} rounds, 16 concurrent; medians")
    for name in roots:
        print(f"{name:>12}: {statistics.median(rates[name]):6.0f} req/s  "
              f"{statistics.median(cpus[name]):.3f} ms proxy CPU/request")


if __name__ == "__main__":
    main()
