"""`accounts list | add FILE | remove ID | enable ID | disable ID | refresh ID|--all | usage ID |
scan [--add] | export [--include-secrets] | import FILE`: through the running server's admin API,
else on the data directory (cli.local) where that is safe; refresh and usage need the server."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List

from ..config import Settings
from ..errors import ProxyError
from . import options
from .local import LocalAdmin
from .remote import find_server
from .table import emit, emit_json, table, when

ACTIONS = ("list", "add", "remove", "enable", "disable", "refresh", "usage", "scan", "export", "import")


def register(commands: Any) -> None:
    accounts = options.command(commands, "accounts", "list and manage Kiro accounts",
                               "kiroproxy accounts list\nkiroproxy accounts scan --add\n"
                               "kiroproxy accounts export > backup.json")
    actions = accounts.add_subparsers(dest="action", metavar="{" + ",".join(ACTIONS) + "}")
    actions.required = True
    parents = [options.common(), options.json_flag()]

    def action(name: str, help: str, example: str) -> argparse.ArgumentParser:
        return options.command(actions, name, help, example, parents=parents)

    action("list", "every account: state, reason, token expiry, requests, last use",
           "kiroproxy accounts list --json")
    action("add", "add an account from a Kiro token file",
           "kiroproxy accounts add ~/.aws/sso/cache/kiro-auth-token.json").add_argument(
        "file", help="the token file (JSON); '-' reads standard input")
    for name, help in (("remove", "remove an account"), ("enable", "let an account serve again"),
                       ("disable", "keep an account from serving")):
        action(name, help, f"kiroproxy accounts {name} a1b2c3").add_argument("id", help="the account id")
    refresh = action("refresh", "refresh tokens now (needs the running server)", "kiroproxy accounts refresh --all")
    refresh.add_argument("id", nargs="?", help="the account id")
    refresh.add_argument("--all", action="store_true", help="every enabled account")
    action("usage", "live usage and limits of an account (needs the running server)",
           "kiroproxy accounts usage a1b2c3").add_argument("id", help="the account id")
    action("scan", "Kiro token files on this machine and whether each is an account", "kiroproxy accounts scan --add"
           ).add_argument("--add", action="store_true", help="add every usable one that is not an account yet")
    action("export", "settings and accounts as one JSON document (secrets masked)",
           "kiroproxy accounts export --include-secrets > backup.json"
           ).add_argument("--include-secrets", dest="include_secrets", action="store_true",
                          help="include tokens and keys (keep the file private)")
    action("import", "merge an exported document (all or nothing)", "kiroproxy accounts import backup.json"
           ).add_argument("file", help="the exported document; '-' reads standard input")
    accounts.set_defaults(run=run_accounts)


def read_json(name: str) -> Any:
    import sys

    try:
        text = sys.stdin.read() if name == "-" else Path(name).expanduser().read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise ProxyError(f"cannot read {name}: {exc.strerror}") from None
    except ValueError as exc:
        raise ProxyError(f"{name} is not JSON: {exc}") from None


def run_accounts(settings: Settings, args: argparse.Namespace) -> int:
    api: Any = find_server(settings, args) or LocalAdmin(settings)
    try:
        return ACTION_RUNS[args.action](api, args)
    finally:
        api.close()


def _list(api: Any, args: argparse.Namespace) -> int:
    rows = api.call("GET", "/accounts")["accounts"]
    if args.json:
        emit_json(rows)
        return 0
    emit(table(("id", "name", "provider", "state", "reason", "token expires", "requests", "last used"),
               ([a["id"], a.get("name"), a.get("provider"), a["state"], a.get("reason"),
                 when(a.get("token_expires_at")), a.get("requests"), when(a.get("last_used"))] for a in rows),
               empty="No accounts: kiroproxy login builder-id, or kiroproxy accounts scan --add"))
    return 0


def _show(answer: Dict[str, Any], args: argparse.Namespace, text: str) -> int:
    if args.json:
        emit_json(answer)
    else:
        emit(text)
    return 0


def _add(api: Any, args: argparse.Namespace) -> int:
    answer = api.call("POST", "/accounts", json=read_json(args.file))
    account = answer["account"]
    return _show(answer, args, answer.get("message") or f"Added account {account['id']} "
                                                         f"({account.get('name') or account.get('provider')})")


def _remove(api: Any, args: argparse.Namespace) -> int:
    return _show(api.call("DELETE", f"/accounts/{args.id}"), args, f"Removed account {args.id}")


def _toggle(api: Any, args: argparse.Namespace) -> int:
    enabled = args.action == "enable"
    answer = api.call("POST", f"/accounts/{args.id}/toggle", json={"enabled": enabled})
    return _show(answer, args, f"Account {args.id} {'enabled' if enabled else 'disabled'} "
                               f"(state: {answer['account']['state']})")


def _refresh(api: Any, args: argparse.Namespace) -> int:
    if args.all == bool(args.id):
        raise ProxyError("give an account id or --all")
    if args.all:
        results: List[Dict[str, Any]] = api.call("POST", "/accounts/refresh-all")["results"]
        failed = [r for r in results if not r.get("refreshed")]
        _show({"results": results}, args, table(("id", "name", "outcome", "error"),
                                                ([r["id"], r.get("name"), r.get("outcome"), r.get("error")]
                                                 for r in results), empty="No enabled accounts."))
        return 1 if failed else 0
    answer = api.call("POST", f"/accounts/{args.id}/refresh")
    return _show(answer, args, f"Refreshed account {args.id}: token valid until "
                               f"{when(answer['account'].get('token_expires_at'))}")


def _usage(api: Any, args: argparse.Namespace) -> int:
    usage = api.call("GET", f"/accounts/{args.id}/usage")
    lines = [f"{key}: {value}" for key, value in usage.items() if not isinstance(value, (dict, list))]
    return _show(usage, args, "\n".join(lines))


def _scan(api: Any, args: argparse.Namespace) -> int:
    rows = api.call("GET", "/token/scan")["tokens"]
    added = []
    if args.add:
        for row in rows:
            if not row.get("already_added") and not row.get("problem"):
                added.append(api.call("POST", "/token/add-from-scan", json={"path": row["path"]})["account"]["id"])
        rows = api.call("GET", "/token/scan")["tokens"] if added else rows
    if args.json:
        emit_json({"tokens": rows, "added": added})
        return 0
    emit(table(("path", "provider", "expires", "account", "problem"),
               ([r["path"], r.get("provider"), when(r.get("expires_at")), r.get("account_id"), r.get("problem")]
                for r in rows), empty="No Kiro token files found (~/.aws/sso/cache, kiro-cli's store)."))
    if added:
        emit(f"Added {len(added)} account(s): {', '.join(added)}")
    return 0


def _export(api: Any, args: argparse.Namespace) -> int:
    params = {"include_secrets": "true"} if args.include_secrets else None
    emit_json(api.call("GET", "/config/export", params=params))
    return 0


def _import(api: Any, args: argparse.Namespace) -> int:
    answer = api.call("POST", "/config/import", json=read_json(args.file))
    text = "; ".join(f"{k}: {len(v) if isinstance(v, list) else v}" for k, v in answer.items())
    return _show(answer, args, f"Imported ({text})")


ACTION_RUNS = {"list": _list, "add": _add, "remove": _remove, "enable": _toggle, "disable": _toggle,
               "refresh": _refresh, "usage": _usage, "scan": _scan, "export": _export, "import": _import}
