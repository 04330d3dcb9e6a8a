"""Running `kiroproxy.py COMMAND ...` as a subprocess, the way a user does, against the fake Kiro."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parents[2]


def cli_env(home: Path, fake_url: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONUNBUFFERED": "1",
           "KIROPROXY_KIRO_API_URL": fake_url, "KIROPROXY_KIRO_AUTH_URL": fake_url,
           "KIROPROXY_AWS_OIDC_URL": fake_url}
    env.update(extra or {})
    return env


def kiroproxy(home: Path, fake_url: str, *args: str, env: Optional[Dict[str, str]] = None,
              stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    """One finished run of the real command line; stdout and stderr as text."""
    return subprocess.run([sys.executable, str(ROOT / "kiroproxy.py"), *args], env=cli_env(home, fake_url, env),
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def through(proxy) -> tuple:
    """The flags that point a command at an in-process test server."""
    from .conftest import ADMIN_KEY

    return ("--server", proxy.url, "--admin-key", ADMIN_KEY)
