"""`status`: the running server's address, uptime, accounts by state, requests in flight and
today's counts (UTC day), from its admin API."""
from __future__ import annotations

import argparse
import time
from typing import Any, Dict, Optional

from ..config import Settings
from . import options
from .remote import require_server
from .table import emit, emit_json


def register(commands: Any) -> None:
    status = options.command(commands, "status", "the running server: address, uptime, accounts, today's requests",
                             "kiroproxy status\nkiroproxy status --json --data-dir /var/lib/kiroproxy",
                             parents=[options.common(), options.json_flag()])
    status.set_defaults(run=run_status)


def today(hourly: Any, now: float) -> Dict[str, int]:
    """Sums of the hourly buckets since the start of the current UTC day."""
    midnight = now // 86400 * 86400
    out = {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}
    for bucket in hourly:
        if bucket.get("hour", 0) >= midnight:
            for key in out:
                out[key] += int(bucket.get(key) or 0)
    return out


def duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{hours}h {minutes:02d}m"


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    api = require_server(settings, args, "status")
    try:
        status = api.call("GET", "/status")
        counts = today(api.call("GET", "/stats/detailed").get("hourly") or [], time.time())
    finally:
        api.close()
    status["today"] = counts
    status["url"] = api.url
    if args.json:
        emit_json(status)
        return 0
    accounts = status.get("accounts") or {}
    states = ", ".join(f"{n} {state}" for state, n in accounts.items() if n) or "none"
    emit("\n".join([
        f"kiroproxy {status.get('version')} at {api.url}, up {duration(status.get('uptime_seconds') or 0)}",
        f"data directory: {status.get('data_dir')}",
        f"accounts: {sum(accounts.values())} ({states})",
        f"in flight: {status.get('in_flight', 0)} request(s)" + slots(status.get("streams")),
        f"today (UTC): {counts['requests']} request(s), {counts['errors']} error(s), "
        f"{counts['input_tokens']} input / {counts['output_tokens']} output tokens",
        f"token counter: {status.get('tokenizer')}",
    ]))
    return 0


def slots(streams: Optional[dict]) -> str:
    """", 3 of 64 chat slots taken" (max_streams); empty for a server too old to report it."""
    if not streams:
        return ""
    return f", {streams['open']} of {streams['max']} chat slots taken (max_streams)"
