"""`login builder-id | google | github`: sign in to Kiro and add the account, through the running
server's admin API when there is one, else on the data directory directly.

The sign-in logic lives in accounts.logins; this module only talks and prints.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from typing import Any, Optional, Tuple

from ..accounts.logins import SUCCESS, DeviceStart, PollResult, SocialStart, follow
from ..config import Settings
from ..errors import ProxyError
from . import options
from .remote import AdminApi, find_server


def register(commands: Any) -> None:
    login = options.command(commands, "login", "sign in to Kiro and add the account",
                            "kiroproxy login builder-id\n"
                            "sudo -u kiroproxy kiroproxy login github --data-dir /var/lib/kiroproxy")
    login.set_defaults(run=run_login, quiet=True)
    methods = login.add_subparsers(dest="method", metavar="{builder-id,google,github}")
    methods.required = True
    builder = methods.add_parser("builder-id", parents=[options.common()],
                                 help="AWS Builder ID or IAM Identity Center (a code to approve in any browser)")
    builder.add_argument("--region", help="the OIDC region (default: the configured region)")
    builder.add_argument("--start-url", dest="start_url", help="your Identity Center start URL (Enterprise)")
    for name in ("google", "github"):
        methods.add_parser(name, parents=[options.common()], help=f"Kiro's {name.capitalize()} sign-in (paste the "
                                                                  "URL the browser ends on)")


class LoginApi:
    """The running server's sign-in endpoints, answering like accounts.logins.Logins."""

    def __init__(self, api: AdminApi) -> None:
        self.api = api

    def start_device(self, region: Optional[str], start_url: Optional[str]) -> DeviceStart:
        return _build(DeviceStart, self.api.call("POST", "/kiro/login/start",
                                                 json={"region": region, "start_url": start_url}))

    def poll(self, login_id: str) -> PollResult:
        return _build(PollResult, self.api.call("GET", "/kiro/login/poll", params={"id": login_id}))

    def cancel(self, login_id: str) -> PollResult:
        return _build(PollResult, self.api.call("POST", "/kiro/login/cancel", json={"id": login_id}))

    def start_social(self, provider: str) -> SocialStart:
        return _build(SocialStart, self.api.call("POST", "/kiro/social/start", json={"provider": provider}))

    def exchange(self, pasted: str, login_id: str) -> PollResult:
        return _build(PollResult, self.api.call("POST", "/kiro/social/exchange", json={"url": pasted, "id": login_id}))

    def describe(self, account_id: str) -> dict:
        return self.api.call("GET", f"/accounts/{account_id}")["account"]


def _build(cls: Any, data: dict) -> Any:
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def run_login(settings: Settings, args: argparse.Namespace) -> int:
    try:
        backend, close = login_backend(settings, args)
    except ProxyError as exc:
        print(f"kiroproxy: {exc.message}", file=sys.stderr)
        return 2
    try:
        if args.method == "builder-id":
            return login_device(backend, args.region, args.start_url)
        return login_social(backend, args.method)
    except ProxyError as exc:
        print(f"kiroproxy: sign-in failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        close()


def login_backend(settings: Settings, args: argparse.Namespace) -> Tuple[Any, Any]:
    """(backend, close): the running server's admin API (remote.find_server), else the data
    directory itself (accounts.json only)."""
    api = find_server(settings, args)
    if api is not None:
        print(f"Signing in through the server at {api.url}", flush=True)
        return LoginApi(api), api.close
    from ..server import local_url
    from ..services import open_logins

    logins, close = open_logins(settings)
    print(f"No server at {local_url(settings.host, settings.port)}; adding the account to {settings.home} directly",
          flush=True)
    return logins, close


def login_device(backend: Any, region: Optional[str], start_url: Optional[str]) -> int:
    started = backend.start_device(region, start_url)
    try:
        print(f"\nOpen this page in a browser (on any machine) and approve the sign-in:\n\n"
              f"    {started.verification_uri_complete}\n\n"
              f"(or open {started.verification_uri} and enter the code {started.user_code})\n"
              f"Waiting for approval (expires in {started.expires_in:.0f} s; Ctrl-C cancels)...", flush=True)
        result = follow(lambda: backend.poll(started.id), time.sleep)
    except KeyboardInterrupt:
        backend.cancel(started.id)
        print("Cancelled.", file=sys.stderr)
        return 1
    return report(backend, result)


def login_social(backend: Any, provider: str) -> int:
    started = backend.start_social(provider)
    print(f"\nOpen this page in a browser (on any machine) and sign in with {started.provider}:\n\n"
          f"    {started.url}\n\n"
          "The browser then tries to open a kiro:// link; an error page there is fine.\n"
          "Paste the URL your browser ended on (kiro://kiro.kiroAgent/authenticate-success?code=...):", flush=True)
    try:
        pasted = sys.stdin.readline()
    except KeyboardInterrupt:
        pasted = ""
    if not pasted.strip():
        backend.cancel(started.id)
        print("Cancelled: nothing was pasted.", file=sys.stderr)
        return 1
    return report(backend, backend.exchange(pasted.strip(), login_id=started.id))


def report(backend: Any, result: PollResult) -> int:
    if result.status != SUCCESS or not result.account_id:
        print(f"Sign-in {result.status}: {result.message}", file=sys.stderr)
        return 1
    account = backend.describe(result.account_id)
    print(f"Signed in: account {result.account_id} ({account.get('name') or account.get('provider')})", flush=True)
    return 0
