"""Finding and running the real client CLIs (installed from npm by .ci/run into .ci/node), and reading
what they sent to the fake Kiro. A run gets a clean environment: no proxies, no real keys, stdin closed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

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
NOTE = "the secret word is pomegranate\n"


def find(name: str) -> Optional[str]:
    """The CLI's path: KIROPROXY_<NAME>_BIN, then .ci/node, then PATH; None when it is not installed."""
    env = os.environ.get(f"KIROPROXY_{name.upper()}_BIN")
    if env:
        return env
    local = NODE_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def require(name: str) -> str:
    """The CLI's path; skips the test (naming the pinned npm package) when it is not installed."""
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


def timed_run(argv: List[str], env: Dict[str, str], cwd: Path,
              timeout: float = 120) -> Tuple[subprocess.CompletedProcess, float]:
    """run(), and the wall-clock seconds it took (a retried upstream call shows up as a slow run)."""
    started = time.monotonic()
    result = run(argv, env, cwd, timeout=timeout)
    return result, time.monotonic() - started


def home_dir(tmp_path: Path, client: str) -> Path:
    """A fresh HOME for one client, tmp_path/<client>-home, so no real config or key is read."""
    home = tmp_path / f"{client}-home"
    home.mkdir(exist_ok=True)
    return home


def work_dir(tmp_path: Path) -> Path:
    """The CLI's working directory, tmp_path/work (created on first use)."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return work


def write_note(tmp_path: Path) -> Path:
    """note.txt holding NOTE in the working directory: the file every tool-loop test asks about."""
    note = work_dir(tmp_path) / "note.txt"
    note.write_text(NOTE)
    return note


def chat_calls(fake: Any) -> list:
    """Every generateAssistantResponse call the fake Kiro received, in order."""
    return fake.requests_to("/generateAssistantResponse")


def current(recorded: Any) -> dict:
    """The userInputMessage of a recorded upstream call (the turn being asked)."""
    return recorded.json["conversationState"]["currentMessage"]["userInputMessage"]


def tool_results(recorded: Any) -> list:
    """The tool results the current turn of a recorded call carries ([] when it carries none)."""
    return current(recorded).get("userInputMessageContext", {}).get("toolResults") or []


def declared_tools(recorded: Any) -> List[str]:
    """The tool names the client declared in a recorded call (KeyError when it declared none)."""
    return [tool["toolSpecification"]["name"] for tool in current(recorded)["userInputMessageContext"]["tools"]]


def answers(recorded: Any, call_id: str) -> bool:
    """Whether a recorded call carries the result of tool call `call_id`."""
    return any(result.get("toolUseId") == call_id for result in tool_results(recorded))


def tool_round_trip(fake: Any, call_id: str) -> Tuple[dict, List[dict]]:
    """(tool result, replayed tool uses) of the single follow-up call answering call_id; asserts it is single."""
    follow_ups = [r for r in chat_calls(fake) if answers(r, call_id)]
    assert len(follow_ups) == 1
    follow = follow_ups[0].json["conversationState"]
    (answer,) = tool_results(follow_ups[0])
    return answer, follow["history"][-1]["assistantResponseMessage"]["toolUses"]
