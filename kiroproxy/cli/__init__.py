"""Command line: `serve` (the default) runs the proxy; the other commands manage it, through the
running server's admin API when there is one (remote.find_server), else on the data directory
where that is safe. One module per command group; this package is the only code that prints and
configures logging.
"""
from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from .. import __version__
from ..config import ConfigError, load
from ..errors import ProxyError
from . import accounts, client, doctor, keys, login, logs, serve, service, status
from .remote import UNREACHABLE
from .table import fail

GROUPS = (serve, status, accounts, keys, client, login, logs, doctor, service)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the cause and the value), exit status 2; sub-commands inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"kiroproxy: {message} (usage: {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="kiroproxy", description="OpenAI / Anthropic / Gemini APIs on Kiro accounts",
                                   epilog="example:\n  kiroproxy serve --port 8080\n  kiroproxy status",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--version", action="version", version=f"kiroproxy {__version__}")
    serve.add_flags(root)
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return root


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    flags = {k: getattr(args, k, None) for k in ("host", "port", "threads", "max_streams", "data_dir", "log_level")}
    try:
        settings = load(flags)
    except ConfigError as exc:
        fail(str(exc))
        return 2
    quiet = args.command not in (None, "serve") and not flags["log_level"]  # commands print their own output
    logging.basicConfig(level="WARNING" if quiet else settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = getattr(args, "run", serve.run_server)
    try:
        return run(settings, args)
    except ProxyError as exc:
        fail(exc.message)
        return 2 if exc.kind == UNREACHABLE else 1
