"""Command line: `serve` (the default) runs the proxy; more commands build on the admin API.

The only module that prints and configures logging.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from . import __version__
from .config import ConfigError, load


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kiroproxy", description="OpenAI / Anthropic / Gemini APIs on Kiro accounts")
    root.add_argument("--version", action="version", version=f"kiroproxy {__version__}")
    commands = root.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy server (default)")
    add_serve_flags(serve)
    add_serve_flags(root)
    return root


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--threads", type=int, help="worker threads; each open stream holds one (default 32)")
    p.add_argument("--data-dir", dest="data_dir", help="data directory (default ~/.kiro-proxy)")
    p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING, ERROR")


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    flags = {k: getattr(args, k, None) for k in ("host", "port", "threads", "data_dir", "log_level")}
    try:
        settings = load(flags)
    except ConfigError as exc:
        print(f"kiroproxy: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_server(settings)


def run_server(settings) -> int:
    from .app import create_app
    from .server import serve
    from .services import Services

    services = Services.build(settings)
    app = create_app(settings, services)
    if services.admin_key_generated:
        print(f"kiroproxy: generated an admin key (stored in {services.home / 'admin.key'}, shown once):\n"
              f"    {services.admin_key}", flush=True)

    def ready(server) -> None:
        services.start()
        print(f"kiroproxy {__version__} listening on http://{settings.host}:{server.effective_port} "
              f"(data in {services.home}; {len(services.pool.ids())} account(s))", flush=True)

    serve(app, settings.host, settings.port, settings.threads, on_ready=ready, on_stop=services.close)
    return 0
