"""`service install [--print] [--user NAME] [--data-dir DIR]`: the hardened systemd unit (dedicated
user, StateDirectory, secrets in an EnvironmentFile, Restart=on-failure, sandboxing), written to
/etc/systemd/system (or --output), and the commands that create the user and enable it."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ProxyError
from ..store.jsondb import write_atomic
from . import options
from .table import emit

UNIT_PATH = Path("/etc/systemd/system/kiroproxy.service")
ENV_FILE = "/etc/kiroproxy.env"
STATE_ROOT = Path("/var/lib")


def register(commands: Any) -> None:
    service = options.command(commands, "service", "run kiroproxy as a systemd service",
                              "sudo kiroproxy service install\nkiroproxy service install --print --user kp")
    actions = service.add_subparsers(dest="action", metavar="{install}")
    actions.required = True
    install = options.command(actions, "install", "write the hardened systemd unit and print how to enable it",
                              "sudo kiroproxy service install --user kiroproxy --data-dir /var/lib/kiroproxy")
    install.add_argument("--print", dest="print_only", action="store_true", help="only print the unit")
    install.add_argument("--user", default="kiroproxy", help="the dedicated system user (default kiroproxy)")
    install.add_argument("--data-dir", dest="service_data_dir", default="/var/lib/kiroproxy",
                         help="the service's data directory (default /var/lib/kiroproxy, its StateDirectory)")
    install.add_argument("--output", type=Path, default=UNIT_PATH, help=f"where to write it (default {UNIT_PATH})")
    service.set_defaults(run=run_service)


def unit(user: str, data_dir: Path, host: str, port: int, python: str = sys.executable) -> str:
    """The unit text. Under /var/lib the data directory is the unit's StateDirectory (created 0700,
    owned by the user); elsewhere it must exist and is made writable with ReadWritePaths."""
    if data_dir.parent == STATE_ROOT:
        state = f"StateDirectory={data_dir.name}\nStateDirectoryMode=0700"
    else:
        state = f"ReadWritePaths={data_dir}"
    # A venv under /home or /root stays readable for the service; otherwise home is hidden entirely.
    home = "read-only" if python.startswith(("/home/", "/root/")) else "yes"
    return f"""[Unit]
Description=kiroproxy (OpenAI / Anthropic / Gemini APIs on Kiro accounts)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
{state}
Environment=KIROPROXY_HOME={data_dir}
EnvironmentFile=-{ENV_FILE}
ExecStart={python} -m kiroproxy serve --host {host} --port {port}
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome={home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
SystemCallFilter=@system-service
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def next_steps(user: str, data_dir: Path, path: Path) -> str:
    return f"""Wrote {path}. Now:

  sudo useradd --system --user-group --home-dir {data_dir} --shell /usr/sbin/nologin {user}
  sudo install -m 600 -o root -g root /dev/null {ENV_FILE}    # secrets: KIROPROXY_ADMIN_KEY=..., KIROPROXY_API_KEYS=...
  sudo systemctl daemon-reload
  sudo systemctl enable --now kiroproxy
  journalctl -u kiroproxy -f
  sudo -u {user} {sys.executable} -m kiroproxy login builder-id --data-dir {data_dir}"""


def run_service(settings: Settings, args: argparse.Namespace) -> int:
    data_dir = Path(args.service_data_dir)
    if not data_dir.is_absolute():
        raise ProxyError(f"--data-dir must be an absolute path, got {data_dir}")
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") or settings.api_keys else "127.0.0.1"
    text = unit(args.user, data_dir, host, settings.port or 8080)
    if args.print_only:
        emit(text.rstrip("\n"))
        return 0
    target: Path = args.output
    if target.exists():
        backup = target.with_name(target.name + ".bak")
        backup.write_bytes(target.read_bytes())
        emit(f"(the previous unit is kept as {backup})")
    try:
        write_atomic(target, text.encode("utf-8"), 0o644)
    except PermissionError:
        raise ProxyError(f"cannot write {target}: run it with sudo, or use --print and install the unit yourself"
                         ) from None
    if os.geteuid() != 0 and target == UNIT_PATH:
        emit("(not root: the commands below need sudo)")
    emit(next_steps(args.user, data_dir, target))
    return 0
