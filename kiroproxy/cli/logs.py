"""`logs [-f] [--errors]` (the recent request log) and `flows [QUERY]` (a flow search), both from
the running server's admin API. `-f` polls for new lines until Ctrl-C."""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable, List, Set

from ..config import Settings
from . import options
from .remote import require_server
from .table import emit, emit_json, table, when

FOLLOW_SECONDS = 1.0


def register(commands: Any) -> None:
    parents = [options.common(), options.json_flag()]
    logs = options.command(commands, "logs", "the recent request log, one line per request",
                           "kiroproxy logs -n 50 --errors\nkiroproxy logs -f", parents=parents)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("--errors", action="store_true", help="failed requests only")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many recent lines (default 50)")
    logs.set_defaults(run=run_logs)
    flows = options.command(commands, "flows", "search the recorded flows (every word must occur)",
                            "kiroproxy flows \"timeout error\" --limit 10\nkiroproxy flows --model claude-sonnet-4.5",
                            parents=parents)
    flows.add_argument("query", nargs="?", default="", help="words to find in requests and answers")
    flows.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    flows.add_argument("--model", help="only this model")
    flows.add_argument("--errors", action="store_true", help="failed requests only")
    flows.set_defaults(run=run_flows)


def line_text(line: dict) -> str:
    return (f"{line['time']} {line['protocol']} {line.get('model') or '-'} {line.get('account') or '-'} "
            f"{line.get('status')} {line.get('state')} {line.get('duration_ms') or 0:.0f}ms"
            + (f" error={line['error']}" if line.get("error") else ""))


def run_logs(settings: Settings, args: argparse.Namespace) -> int:
    api = require_server(settings, args, "logs")
    params = {"limit": max(1, min(args.lines, 500))}
    if args.errors:
        params["errors"] = "true"
    seen: Set[str] = set()

    def fetch() -> List[dict]:
        lines = api.call("GET", "/logs", params=params)["lines"]
        fresh = [line for line in reversed(lines) if line["id"] not in seen]  # oldest first
        seen.update(line["id"] for line in fresh)
        return fresh

    try:
        show(fetch(), args.json)
        while args.follow:
            time.sleep(FOLLOW_SECONDS)
            show(fetch(), args.json)
    except KeyboardInterrupt:
        pass
    finally:
        api.close()
    return 0


def show(lines: List[dict], as_json: bool, out: Callable[[str], None] = emit) -> None:
    for line in lines:
        if as_json:
            emit_json(line)
        else:
            out(line_text(line))


def run_flows(settings: Settings, args: argparse.Namespace) -> int:
    api = require_server(settings, args, "flows")
    params = {"limit": max(1, min(args.limit, 500))}
    if args.query:
        params["q"] = args.query
    if args.model:
        params["model"] = args.model
    if args.errors:
        params["has_error"] = "true"
    try:
        answer = api.call("GET", "/flows", params=params)
    finally:
        api.close()
    if args.json:
        emit_json(answer)
        return 0
    emit(table(("id", "time", "protocol", "model", "state", "status", "ms", "snippet"),
               ([f["id"], when(f.get("received_at")), f.get("protocol"), f.get("model") or f.get("requested_model"),
                 f.get("state"), f.get("status"), round(f.get("duration_ms") or 0),
                 (f.get("snippet") or "")[:60].replace("\n", " ")] for f in answer.get("flows", [])),
               empty="No flows match."))
    if answer.get("partial"):
        emit(f"(partial: searched {answer.get('examined')} flows within the time budget; narrow the query)")
    return 0
