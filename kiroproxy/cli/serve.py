"""`serve` (the default command): run the proxy until SIGTERM / Ctrl-C."""
from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Settings, data_dir
from ..errors import ProxyError
from ..store.jsondb import StoreError
from . import options
from .remote import UNREACHABLE


def add_flags(p: argparse.ArgumentParser, default: Any = None) -> None:
    """The server's flags; on the `serve` command default=SUPPRESS, so they do not hide the same
    flags given before it."""
    p.add_argument("--host", default=default, help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=default, help="listen port (default 8080)")
    p.add_argument("--threads", type=int, default=default,
                   help="worker threads besides the stream slots, for admin calls, model lists and token counts "
                        "(default 16)")
    p.add_argument("--max-streams", dest="max_streams", type=int, default=default,
                   help="chat requests served at once, streamed or not; more get 429 (default 64)")
    p.add_argument("--data-dir", dest="data_dir", default=default, help="data directory (default ~/.kiro-proxy)")
    p.add_argument("--log-level", dest="log_level", default=default, help="DEBUG, INFO, WARNING, ERROR")


def register(commands: Any) -> None:
    serve = options.command(commands, "serve", "run the proxy server (the default command)",
                            "kiroproxy serve --port 8080 --data-dir ~/.kiro-proxy")
    add_flags(serve, argparse.SUPPRESS)
    serve.set_defaults(run=run_server)


def run_server(settings: Settings, args: argparse.Namespace) -> int:
    from .. import connections
    from ..app import create_app
    from ..exposure import client_keys_configured, public_bind_refusal
    from ..server import LateApp, claim, create_server, owner, release, serve_bound
    from ..services import Services

    refusal = public_bind_refusal(settings.host, client_keys_configured(settings))
    if refusal is not None:
        raise StartError(refusal)
    running = owner(settings.home)
    if running is not None:  # two servers on one data directory overwrite each other's state
        raise StartError(f"another kiroproxy server (pid {running.pid}, {running.url}) uses {settings.home}; "
                         "stop it first, or give this one its own --data-dir")
    late = LateApp()
    try:  # bind first: a start that fails here must not spend (generate and print) the admin key
        server = create_server(late, settings.host, settings.port, **connections.options(settings))
    except OSError as exc:
        raise StartError(bind_failure(exc, settings.host, settings.port)) from None
    except ValueError:  # waitress: a host name that does not resolve
        raise StartError(f"cannot listen on {settings.host}: no such address or host name; pick another "
                         "with --host") from None
    try:
        services = Services.build(settings)
    except (OSError, StoreError) as exc:
        server.close()
        raise StartError(f"cannot use the data directory {settings.home}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    late.app = create_app(settings, services)
    if services.admin_key_generated:
        announce_admin_key(services.home / "admin.key", services.admin_key)

    def ready(bound: Any) -> None:
        claim(services.home, settings.host, bound.effective_port)
        services.start(listen=f"{settings.host}:{bound.effective_port}")
        print(banner(settings, services, bound.effective_port), flush=True)

    def stopped() -> None:
        services.close()
        release(services.home)  # last: until the state is on disk, `login` must not write under us

    serve_bound(server, on_ready=ready, on_stop=stopped, grace=settings.shutdown_grace_seconds,
                on_grace_end=services.relay.cut_streams)
    return 0


def announce_admin_key(path: Path, key: str) -> None:
    """Show a newly generated admin key on a terminal; elsewhere (systemd, docker) standard output
    ends up in a journal or a log, so only say where the key file is."""
    if sys.stdout.isatty():
        print(f"kiroproxy: generated an admin key (stored in {path}, shown once):\n    {key}", flush=True)
    else:
        print(f"kiroproxy: generated an admin key; it is in {path} (readable only by you; "
              "`kiroproxy admin-key` prints it)", flush=True)


class StartError(ProxyError):
    """The server cannot start; the message is the one line the user sees (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=UNREACHABLE)


def bind_failure(exc: OSError, host: str, port: int) -> str:
    """One line naming the cause and the value, for a socket that cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host or 'every address'}; pick another with --port"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port}; pick one above 1023 with --port"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: no such address on this machine; pick another with --host"
    return f"cannot listen on {host}:{port}: {exc.strerror or type(exc).__name__}"


def banner(settings: Settings, services: Any, port: int) -> str:
    """The start-up message; with no account yet, what to do next."""
    from ..server import local_url

    url = local_url(settings.host, port)
    accounts = len(services.pool.ids())
    lines = [f"kiroproxy {__version__} listening on http://{settings.host}:{port} "
             f"(data in {services.home}; {accounts} account(s))"]
    page = f"{url}/" if (Path(__file__).resolve().parents[1] / "web" / "static" / "index.html").exists() else None
    if page:
        lines.append(f"kiroproxy: admin page at {page} (it asks for the admin key: kiroproxy admin-key)")
    if not accounts:
        data = "" if services.home == data_dir() else f" --data-dir {services.home}"
        lines += ["No Kiro account yet. Add one:",
                  f"  kiroproxy login builder-id{data}      a code to approve in any browser (headless machines)",
                  f"  kiroproxy login google{data}          or github: paste the URL the browser ends on",
                  f"  kiroproxy accounts scan --add{data}   Kiro's own token file (~/.aws/sso/cache)"]
        if page:
            lines.append(f"  or the web page's Accounts screen: {page}")
    lines.append("Connect a client: kiroproxy client claude | codex | gemini | cline | continue")
    return "\n".join(lines)
