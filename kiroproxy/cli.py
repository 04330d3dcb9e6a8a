"""Command line: `serve` (the default) runs the proxy; `login` signs in to Kiro and adds the account,
through the running server's admin API when there is one, else on the data directory directly.

The only module that prints and configures logging; the sign-in logic lives in accounts.logins.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, List, Optional, Tuple

import requests

from . import __version__
from .accounts.logins import SUCCESS, DeviceStart, PollResult, SocialStart, follow
from .config import ConfigError, Settings, load
from .errors import ProxyError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kiroproxy", description="OpenAI / Anthropic / Gemini APIs on Kiro accounts")
    root.add_argument("--version", action="version", version=f"kiroproxy {__version__}")
    commands = root.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy server (default)")
    add_serve_flags(serve)
    add_serve_flags(root)
    add_login_command(commands)
    return root


def add_login_command(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help="the running proxy's URL (default: the server that owns the data "
                                         "directory, as its server.json says, else http://<host>:<port>)")
    common.add_argument("--admin-key", dest="admin_key", help="the admin key (default: the configured or stored one)")
    # SUPPRESS: an unset flag here must not hide the same flag given before `login`.
    common.add_argument("--data-dir", dest="data_dir", default=argparse.SUPPRESS, help="data directory")
    common.add_argument("--log-level", dest="log_level", default=argparse.SUPPRESS, help="DEBUG ... ERROR")
    login = commands.add_parser("login", help="sign in to Kiro and add the account")
    methods = login.add_subparsers(dest="method", metavar="{builder-id,google,github}")
    methods.required = True
    builder = methods.add_parser("builder-id", parents=[common],
                                 help="AWS Builder ID or IAM Identity Center (a code to approve in any browser)")
    builder.add_argument("--region", help="the OIDC region (default: the configured region)")
    builder.add_argument("--start-url", dest="start_url", help="your Identity Center start URL (Enterprise)")
    for name in ("google", "github"):
        methods.add_parser(name, parents=[common], help=f"Kiro's {name.capitalize()} sign-in (paste the "
                                                        "URL the browser ends on)")


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--threads", type=int, help="worker threads besides the stream slots, for admin calls, "
                                             "model lists and token counts (default 16)")
    p.add_argument("--max-streams", dest="max_streams", type=int,
                   help="chat requests served at once, streamed or not; more get 429 (default 64)")
    p.add_argument("--data-dir", dest="data_dir", help="data directory (default ~/.kiro-proxy)")
    p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING, ERROR")


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    flags = {k: getattr(args, k, None) for k in ("host", "port", "threads", "max_streams", "data_dir", "log_level")}
    try:
        settings = load(flags)
    except ConfigError as exc:
        print(f"kiroproxy: {exc}", file=sys.stderr)
        return 2
    quiet = args.command == "login" and not flags["log_level"]  # a sign-in prints its own progress
    logging.basicConfig(level="WARNING" if quiet else settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "login":
        return run_login(settings, args)
    return run_server(settings)


def run_server(settings: Settings) -> int:
    from . import connections
    from .app import create_app
    from .exposure import client_keys_configured, public_bind_refusal
    from .server import claim, local_url, owner, release, serve
    from .services import Services

    refusal = public_bind_refusal(settings.host, client_keys_configured(settings))
    if refusal is not None:
        print(f"kiroproxy: {refusal}", file=sys.stderr)
        return 2
    running = owner(settings.home)
    if running is not None:  # two servers on one data directory overwrite each other's state
        print(f"kiroproxy: another kiroproxy server (pid {running.pid}, {running.url}) uses {settings.home}; "
              "stop it first, or give this one its own --data-dir", file=sys.stderr)
        return 2
    services = Services.build(settings)
    app = create_app(settings, services)
    if services.admin_key_generated:
        announce_admin_key(services.home / "admin.key", services.admin_key)

    def ready(server) -> None:
        services.listen = f"{settings.host}:{server.effective_port}"
        claim(services.home, settings.host, server.effective_port)
        services.start()
        print(f"kiroproxy {__version__} listening on http://{settings.host}:{server.effective_port} "
              f"(data in {services.home}; {len(services.pool.ids())} account(s))", flush=True)
        print(f"kiroproxy: admin page at {local_url(settings.host, server.effective_port)}/ "
              "(it asks for the admin key)", flush=True)

    def stopped() -> None:
        services.close()
        release(services.home)  # last: until the state is on disk, `login` must not write under us

    serve(app, settings.host, settings.port, connections.options(settings), on_ready=ready, on_stop=stopped,
          grace=settings.shutdown_grace_seconds, on_grace_end=services.relay.cut_streams)
    return 0


def announce_admin_key(path: Path, key: str) -> None:
    """Show a newly generated admin key on a terminal; elsewhere (systemd, docker) standard output
    ends up in a journal or a log, so only say where the key file is."""
    if sys.stdout.isatty():
        print(f"kiroproxy: generated an admin key (stored in {path}, shown once):\n    {key}", flush=True)
    else:
        print(f"kiroproxy: generated an admin key; it is in {path} (readable only by you)", flush=True)


class AdminApi:
    """The running server's sign-in endpoints, answering like accounts.logins.Logins."""

    def __init__(self, url: str, key: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: no proxy from the environment
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.timeout = timeout

    def probe(self) -> int:
        """The status of GET /api/accounts, 0 when nothing answers."""
        try:
            return self.http.get(self.url + "/api/accounts", timeout=5).status_code
        except requests.RequestException:
            return 0

    def _call(self, method: str, path: str, **kw: Any) -> dict:
        try:
            response = self.http.request(method, self.url + "/api" + path, timeout=self.timeout, **kw)
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProxyError(f"the server at {self.url} failed: {type(exc).__name__}", status=502) from None
        if response.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            message = error.get("message") if isinstance(error, dict) else f"HTTP {response.status_code}"
            raise ProxyError(str(message), status=response.status_code)
        return data

    def start_device(self, region: Optional[str], start_url: Optional[str]) -> DeviceStart:
        return _build(DeviceStart, self._call("POST", "/kiro/login/start",
                                              json={"region": region, "start_url": start_url}))

    def poll(self, login_id: str) -> PollResult:
        return _build(PollResult, self._call("GET", "/kiro/login/poll", params={"id": login_id}))

    def cancel(self, login_id: str) -> PollResult:
        return _build(PollResult, self._call("POST", "/kiro/login/cancel", json={"id": login_id}))

    def start_social(self, provider: str) -> SocialStart:
        return _build(SocialStart, self._call("POST", "/kiro/social/start", json={"provider": provider}))

    def exchange(self, pasted: str, login_id: str) -> PollResult:
        return _build(PollResult, self._call("POST", "/kiro/social/exchange", json={"url": pasted, "id": login_id}))

    def describe(self, account_id: str) -> dict:
        return self._call("GET", f"/accounts/{account_id}")["account"]

    def close(self) -> None:
        self.http.close()


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
    """(backend, close): the admin API of the server that owns the data directory (its server.json
    says where it listens), else of a server at the configured address, else the data directory
    itself. A live owner that does not answer is an error: writing accounts.json underneath a
    server loses the account when the server next saves its own copy."""
    from .server import local_url, owner

    key_file = settings.home / "admin.key"
    key = args.admin_key or settings.admin_key or (key_file.read_text().strip() if key_file.exists() else "")
    if args.server:
        return _through(args.server, key, f"no kiroproxy server answers at {args.server}")
    running = owner(settings.home)
    if running is not None:
        return _through(running.url, key, (
            f"the kiroproxy server that uses {settings.home} (pid {running.pid}) does not answer at "
            f"{running.url}; not adding the account underneath it. Try again once it answers, or pass "
            f"--server (if no kiroproxy runs, delete {settings.home / 'server.json'})"))
    url = local_url(settings.host, settings.port)
    api = _admin_api(url, key)
    if api is not None:
        return api, api.close
    from .services import open_logins

    logins, close = open_logins(settings)
    print(f"No server at {url}; adding the account to {settings.home} directly", flush=True)
    return logins, close


def _through(url: str, key: str, unreachable: str) -> Tuple[Any, Any]:
    """The admin API at `url`, which must answer: ProxyError(`unreachable`) when nothing does."""
    api = _admin_api(url, key)
    if api is None:
        raise ProxyError(unreachable)
    return api, api.close


def _admin_api(url: str, key: str) -> Optional[AdminApi]:
    """The admin API at `url` when it accepts `key`; None when nothing answers there. Raises
    ProxyError when the server refuses the key."""
    api = AdminApi(url, key)
    status = api.probe()
    if status == 200:
        print(f"Signing in through the server at {url}", flush=True)
        return api
    api.close()
    if status == 401:
        raise ProxyError(f"the server at {url} refused the admin key; pass --admin-key")
    return None


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
