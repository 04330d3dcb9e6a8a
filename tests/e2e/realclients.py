"""Finding and running the real client CLIs (installed from npm by .ci/run into .ci/node)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin"

PINNED = {
    "claude": "@anthropic-ai/claude-code@2.1.332",
    "codex": "@openai/codex@0.169.0",
    "gemini": "@google/gemini-cli@0.61.0",
    "cn": "@continuedev/cli@1.5.47",
    "cline": "cline@3.0.65",
}


def find(name: str) -> Optional[str]:
    env = os.environ.get(f"KIROPROXY_{name.upper()}_BIN")
    if env:
        return env
    local = NODE_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def require(name: str) -> str:
    path = find(name)
    if path is None:
        pytest.skip(f"{name} CLI not installed: `npm install --prefix .ci/node {PINNED[name]}` "
                    f"(.ci/run does this when npm is available)")
    return path


def run(argv: List[str], env: Dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a CLI with a clean environment (no proxies, no real keys), stdin closed."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "NO_COLOR": "1",
            "CI": "1", "TERM": "dumb"}
    base.update(env)
    return subprocess.run(argv, env=base, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
