"""`doctor`: checks, each ok / warn / fail with a fix: the data directory and its file modes, the
clock against the upstream's Date header, every account's token (expiry, a refresh that works,
profile ARN), the active token counter, and reaching each upstream host through the configured
outbound proxy. Exit status 1 on any fail. Nothing secret is printed."""
from __future__ import annotations

import argparse
import os
import stat
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from ..config import Settings
from ..errors import ProxyError
from . import options
from .remote import find_server
from .table import emit, emit_json, table, when

SECRET_FILES = ("accounts.json", "admin.key", "keys.json", "config.json", "server.json")
OK, WARN, FAIL = "ok", "warn", "fail"


class Check(NamedTuple):
    name: str
    level: str
    detail: str
    fix: str = ""


def register(commands: Any) -> None:
    doctor = options.command(commands, "doctor", "check the data directory, clock, accounts and upstream hosts",
                             "kiroproxy doctor\nsudo -u kiroproxy kiroproxy doctor --data-dir /var/lib/kiroproxy",
                             parents=[options.common(), options.json_flag()])
    doctor.set_defaults(run=run_doctor)


def data_dir_checks(home: Path) -> List[Check]:
    if not home.is_dir():
        return [Check("data directory", FAIL, f"{home} does not exist", "start the server once, or pass --data-dir")]
    if not os.access(home, os.W_OK | os.X_OK):
        return [Check("data directory", FAIL, f"{home} is not writable by this user",
                      f"run as its owner, or: sudo chown -R $USER {home}")]
    out = []
    mode = stat.S_IMODE(home.stat().st_mode)
    out.append(Check("data directory", OK if not mode & 0o077 else WARN, f"{home} (mode {mode:o})",
                     "" if not mode & 0o077 else f"chmod 700 {home}"))
    for name in SECRET_FILES:
        path = home / name
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            bad = bool(mode & 0o077)
            out.append(Check(f"file {name}", WARN if bad else OK, f"mode {mode:o}", f"chmod 600 {path}" if bad else ""))
    return out


def tokenizer_check() -> Check:
    from .. import tokens

    name = tokens.counter().name
    if name == "tiktoken":
        return Check("token counter", OK, "tiktoken (cl100k_base, bundled)")
    return Check("token counter", WARN, "the estimate (tiktoken is not installed)",
                 "pip install 'kiroproxy[tokens]' where a wheel exists (not on 32-bit ARM); the estimate works")


def upstream_checks(settings: Settings) -> List[Check]:
    """Each upstream host answers (any HTTP status) through the outbound proxy; the first Date
    header found is compared with this machine's clock."""
    import requests

    from ..kiro.transport import Endpoints, Sessions

    endpoints = Endpoints(settings.kiro_api_url, settings.kiro_auth_url, settings.aws_oidc_url)
    hosts = {"Kiro API": (settings.kiro_api_url or f"https://runtime.{settings.region}.kiro.dev").rstrip("/"),
             "Kiro sign-in": endpoints.social_auth(), "AWS OIDC": endpoints.oidc(settings.region)}
    sessions = Sessions(settings.proxy_url)
    via = " through the outbound proxy" if settings.proxy_url else ""
    out: List[Check] = []
    skew: Optional[float] = None
    try:
        for name, url in hosts.items():
            try:
                answer = sessions.get().get(url + "/", timeout=10, allow_redirects=False)
            except requests.RequestException as exc:
                out.append(Check(f"reach {name}", FAIL, f"{url}{via}: {type(exc).__name__}",
                                 "check the network, DNS, firewall and proxy_url"))
                continue
            out.append(Check(f"reach {name}", OK, f"{url}{via} answered HTTP {answer.status_code}"))
            if skew is None and answer.headers.get("Date"):
                skew = time.time() - parsedate_to_datetime(answer.headers["Date"]).timestamp()
    finally:
        sessions.close()
    out.append(clock_check(skew))
    return out


def clock_check(skew: Optional[float]) -> Check:
    if skew is None:
        return Check("clock", WARN, "no upstream answered with a Date header to compare with",
                     "make sure NTP runs (timedatectl)")
    level = OK if abs(skew) < 30 else WARN if abs(skew) < 300 else FAIL
    return Check("clock", level, f"{skew:+.0f} s against the upstream's Date",
                 "" if level == OK else "sync the clock (timedatectl set-ntp true): signed requests fail when off")


def account_checks(settings: Settings, args: argparse.Namespace) -> List[Check]:
    api = find_server(settings, args)
    if api is not None:
        try:
            accounts = api.call("GET", "/accounts")["accounts"]
            results = api.call("POST", "/accounts/refresh-all")["results"]
        finally:
            api.close()
    else:
        accounts, results = _offline_refresh(settings)
    if not accounts:
        return [Check("accounts", FAIL, "no account", "kiroproxy login builder-id (or google / github), "
                                                      "or kiroproxy accounts scan --add")]
    refreshed: Dict[str, Dict[str, Any]] = {r["id"]: r for r in results}
    return [_account_check(a, refreshed.get(a["id"])) for a in accounts]


def _offline_refresh(settings: Settings) -> Any:
    from ..accounts.monitor import Monitor
    from ..accounts.refresher import Refresher
    from ..kiro.auth import Authenticator
    from ..kiro.transport import ClientIdentity, Endpoints, Sessions
    from ..services import account_pool

    pool = account_pool(settings)
    sessions = Sessions(settings.proxy_url)
    try:
        endpoints = Endpoints(settings.kiro_api_url, settings.kiro_auth_url, settings.aws_oidc_url)
        identity = ClientIdentity(settings.kiro_version, settings.node_version, settings.os_version)
        refresher = Refresher(pool, Authenticator(endpoints, sessions, identity))
        results = Monitor(pool, refresher, None).refresh_all()  # type: ignore[arg-type]
        return pool.summaries(), results
    finally:
        sessions.close()


def _account_check(account: Dict[str, Any], result: Optional[Dict[str, Any]]) -> Check:
    name = f"account {account['id']}"
    label = account.get("name") or account.get("provider") or ""
    if result is None:
        return Check(name, WARN if account["state"] == "disabled" else FAIL, f"{label}: {account['state']}",
                     "kiroproxy accounts enable ID" if account["state"] == "disabled" else "")
    if not result.get("refreshed"):
        return Check(name, FAIL, f"{label}: token refresh failed: {result.get('error')}",
                     "sign in again: kiroproxy login ... (then remove the old account)")
    detail = f"{label}: refresh works, token valid until {when(result.get('expires_at'))}"
    if account.get("auth_method") == "social" and not account.get("profile_arn"):
        return Check(name, WARN, detail + "; no profile ARN", "refresh it once more, or sign in again")
    return Check(name, OK, detail + ("; has a profile ARN" if account.get("profile_arn") else ""))


def run_doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks = data_dir_checks(settings.home) + [tokenizer_check()] + upstream_checks(settings)
    try:
        checks += account_checks(settings, args)
    except ProxyError as exc:
        checks.append(Check("accounts", FAIL, exc.message, ""))
    if args.json:
        emit_json([c._asdict() for c in checks])
    else:
        emit(table(("check", "result", "detail", "fix"), ([c.name, c.level.upper(), c.detail, c.fix] for c in checks)))
    failed = sum(c.level == FAIL for c in checks)
    if not args.json:
        emit(f"\n{failed} failed, {sum(c.level == WARN for c in checks)} warning(s)")
    return 1 if failed else 0
