"""Command line: `serve` (the default) runs the proxy; the other commands manage it, through the
running server's admin API when there is one (remote.find_server), else on the data directory
where that is safe. One module per command group, imported only when its command runs (or for
--help); this package is the only code that prints and configures logging.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module
from typing import List, Optional

from .. import __version__
from ..config import ConfigError, load
from ..errors import ProxyError
from . import serve
from .remote import UNREACHABLE
from .table import fail

# Every command, in --help order, and the module (command group) that registers and runs it.
COMMANDS = {"serve": "serve", "status": "status", "accounts": "accounts", "keys": "keys", "admin-key": "keys",
            "client": "client", "login": "login", "logs": "logs", "flows": "logs", "doctor": "doctor",
            "service": "service"}


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the cause and the value), exit status 2; sub-commands inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"kiroproxy: {message} (usage: {self.prog} --help)\n")


class Unparsed(Exception):
    """The quick look at the command line failed; the full parser reports why."""


class Probe(Parser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise Unparsed(message)


def parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line; with `command` (a key of COMMANDS), only that command's group is registered."""
    root = Parser(prog="kiroproxy", description="OpenAI / Anthropic / Gemini APIs on Kiro accounts",
                                   epilog="example:\n  kiroproxy serve --port 8080\n  kiroproxy status",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--version", action="version", version=f"kiroproxy {__version__}")
    serve.add_flags(root)
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for group in dict.fromkeys(COMMANDS.values()):
        if command is None or COMMANDS[command] == group:
            import_module(f"{__name__}.{group}").register(commands)
    return root


def command_in(argv: List[str]) -> Optional[str]:
    """The command `argv` names, read as the full parser reads it ("serve" when none); None when
    every group is needed: a help request, or a command line the full parser must reject."""
    if "-h" in argv or "--help" in argv:
        return None
    probe = Probe(prog="kiroproxy", add_help=False)
    serve.add_flags(probe)
    commands = probe.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        commands.add_parser(name, add_help=False)
    try:
        args, _ = probe.parse_known_args(argv)
    except Unparsed:
        return None
    return args.command or "serve"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(command_in(argv)).parse_args(argv)
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
