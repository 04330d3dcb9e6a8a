"""Flags shared by the commands that talk to a running server or a data directory, and the help
layout (every command's --help ends with an example)."""
from __future__ import annotations

import argparse
from typing import Any


def common() -> argparse.ArgumentParser:
    """--server, --admin-key, --data-dir, --log-level, usable after any command."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--server", help="the running proxy's URL (default: the server that owns the data "
                                        "directory, as its server.json says, else http://<host>:<port>)")
    flags.add_argument("--admin-key", dest="admin_key", help="the admin key (default: the configured or stored one)")
    # SUPPRESS: an unset flag here must not hide the same flag given before the command.
    flags.add_argument("--data-dir", dest="data_dir", default=argparse.SUPPRESS, help="data directory")
    flags.add_argument("--log-level", dest="log_level", default=argparse.SUPPRESS, help="DEBUG ... ERROR")
    return flags


def json_flag() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of a table")
    return flags


def command(commands: Any, name: str, help: str, example: str, **kw: Any) -> argparse.ArgumentParser:
    """A sub-command whose --help shows `example` (one or more lines) at the end."""
    return commands.add_parser(name, help=help, description=help, epilog="example:\n  " + example.replace("\n", "\n  "),
                               formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
