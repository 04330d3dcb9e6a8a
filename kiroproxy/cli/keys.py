"""`keys create | list | revoke` (client keys for /v1) and `admin-key`.

Keys go through the running server when there is one, else straight to keys.json (safe: the store
locks the file, and a server started later, or running elsewhere, re-reads it).
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, List

from ..config import Settings
from ..errors import ProxyError
from ..services import ADMIN_KEY_FILE
from . import options
from .local import LocalAdmin
from .remote import find_server
from .table import emit, emit_json, table, when

EXAMPLES = "kiroproxy keys create --name laptop\nkiroproxy keys list\nkiroproxy keys revoke laptop"


def register(commands: Any) -> None:
    keys = options.command(commands, "keys", "client keys for /v1: once one exists, every call must carry one",
                           EXAMPLES)
    actions = keys.add_subparsers(dest="action", metavar="{create,list,revoke}")
    actions.required = True
    parents = [options.common(), options.json_flag()]
    create = options.command(actions, "create", "create a key; it is printed once, only its hash is stored",
                             "kiroproxy keys create --name laptop", parents=parents)
    create.add_argument("--name", help="a name to revoke it by (default key-N)")
    options.command(actions, "list", "name, prefix, created and last used of every key (never the key)",
                    "kiroproxy keys list --json", parents=parents)
    revoke = options.command(actions, "revoke", "revoke a key by name (a running server refuses it at once)",
                             "kiroproxy keys revoke laptop", parents=parents)
    revoke.add_argument("name", help="the key's name (or its shown prefix)")
    keys.set_defaults(run=run_keys)
    admin = options.command(commands, "admin-key", "print the admin key (from the settings or the data directory)",
                            "curl -H \"Authorization: Bearer $(kiroproxy admin-key)\" http://127.0.0.1:8080/api/status",
                            parents=[options.common()])
    admin.set_defaults(run=run_admin_key)


def run_keys(settings: Settings, args: argparse.Namespace) -> int:
    backend: Any = find_server(settings, args) or LocalAdmin(settings)
    try:
        if args.action == "create":
            return show_created(backend.call("POST", "/keys", json={"name": args.name}), args.json)
        if args.action == "revoke":
            revoked = backend.call("DELETE", f"/keys/{args.name}")["revoked"]
            if args.json:
                emit_json(revoked)
            else:
                emit(f"Revoked key {revoked['name']} ({revoked['prefix']}…)")
            return 0
        return show_list(backend.call("GET", "/keys")["keys"], args.json)
    finally:
        backend.close()


def show_created(created: Dict[str, Any], as_json: bool) -> int:
    if as_json:
        emit_json(created)
        return 0
    emit(f"Created key {created['name']} (shown once; only its hash is stored):\n\n    {created['key']}\n\n"
         "Clients send it as x-api-key, Authorization: Bearer, x-goog-api-key or ?key=. "
         "Every /v1 call must now carry a key.")
    return 0


def show_list(rows: List[Dict[str, Any]], as_json: bool) -> int:
    if as_json:
        emit_json(rows)
        return 0
    emit(table(("name", "prefix", "created", "last used"),
               ([r["name"], r["prefix"] + "…", when(r["created"]), when(r.get("last_used"))] for r in rows),
               empty="No client keys: any key is accepted (create one with `kiroproxy keys create`)."))
    return 0


def run_admin_key(settings: Settings, args: argparse.Namespace) -> int:
    if settings.admin_key:
        emit(settings.admin_key)
        return 0
    path = settings.home / ADMIN_KEY_FILE
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise ProxyError(f"cannot read {path} ({exc.strerror}); run this as the user that owns the data "
                         "directory (e.g. sudo -u kiroproxy kiroproxy admin-key --data-dir /var/lib/kiroproxy)"
                         ) from None
    if not key:
        raise ProxyError(f"no admin key in {settings.home} yet: the server generates one at its first start "
                         "(or set admin_key / KIROPROXY_ADMIN_KEY)")
    emit(key)
    return 0
