"""Cline CLI itself (`cline --json`, OpenAI Chat Completions via the AI SDK) against the real server
and the fake Kiro upstream.

`cline auth` stores an openai-compatible provider in the temporary HOME. By default a run also
spawns a detached "hub daemon" that outlives it; CLINE_SESSION_BACKEND_MODE=local keeps everything
in the one process, and each test checks that no daemon was left behind. DO_NOT_TRACK turns off
most telemetry; the one remaining attempt (otel.cline.bot) fails harmlessly offline.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import List

import pytest

from tests.fakes.scripts import Script, text_answer

from . import realclients

pytestmark = pytest.mark.realclient

API_KEY = "sk-cline-test"
CALL_ID = "tooluse_cline1"
MAX_SECONDS = 30.0  # a run takes ~3 s; the AI SDK retries failed calls with backoff


def cline(proxy, tmp_path, prompt: str):
    """`cline auth` then `cline --json` in a fresh HOME; returns (run_result document, elapsed seconds)."""
    binary = realclients.require("cline")
    home = realclients.home_dir(tmp_path, "cline")
    env = {"HOME": str(home), "DO_NOT_TRACK": "1", "CLINE_SESSION_BACKEND_MODE": "local"}
    work = realclients.work_dir(tmp_path)
    started = time.monotonic()
    try:
        auth = realclients.run([binary, "auth", "-p", "openai", "-k", API_KEY, "-m", "gpt-4o-mini",
                                "-b", proxy.url + "/v1"], env, work, timeout=60)
        assert auth.returncode == 0, auth.stderr[-3000:]
        result = realclients.run([binary, "--json", prompt], env, work, timeout=60)
    finally:
        stray = stop_hub_daemons(work)
    elapsed = time.monotonic() - started
    assert not stray, f"cline left hub daemons running (pids {stray}); stopped them"
    assert result.returncode == 0, result.stderr[-3000:]
    return run_result(result.stdout), elapsed


def stop_hub_daemons(work: Path) -> List[int]:
    """Stop hub daemons this test's runs started (their command line names our working directory)."""
    stray = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already, or not ours to read
        if b"--cline-hub-daemon" in argv and os.fsencode(work) in argv:
            stray.append(int(entry.name))
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
    return stray


def run_result(stdout: str) -> dict:
    """The final `run_result` line of --json output (one JSON document per line)."""
    documents = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    results = [d for d in documents if d.get("type") == "run_result"]
    assert results, stdout[-3000:]
    return results[-1]


def answers_call(recorded) -> bool:
    """Whether a recorded call carries the result of the scripted read_files call."""
    return realclients.answers(recorded, CALL_ID)


def test_plain_answer(make_proxy, fake, tmp_path):
    proxy = make_proxy(api_keys=[API_KEY])  # proves Cline sends the key given to `cline auth`
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hello from ", "the fake Kiro via kiroproxy"))
    outcome, elapsed = cline(proxy, tmp_path, "say hi")
    assert outcome["finishReason"] == "completed"
    assert outcome["text"] == "Hello from the fake Kiro via kiroproxy"
    assert outcome["usage"]["inputTokens"] > 0  # read from the include_usage chunk
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a failed call was probably retried"
    (sent,) = realclients.chat_calls(fake)
    message = realclients.current(sent)
    assert message["content"].endswith("say hi")
    assert message["modelId"].startswith("claude-")


def test_tool_loop(make_proxy, fake, tmp_path):
    """Cline's read_files tool runs (auto-approved by default) and its output goes back upstream."""
    proxy = make_proxy(api_keys=[API_KEY])
    proxy.add_account("acc-A")
    note = realclients.write_note(tmp_path)
    arguments = {"files": [{"path": str(note)}]}
    fake.route(answers_call, text_answer("The note says the word is pomegranate."))
    fake.queue(Script().text("Let me read it.").tool_use(CALL_ID, "read_files", json.dumps(arguments))
               .context_usage())
    outcome, elapsed = cline(proxy, tmp_path, "what does note.txt say?")
    declared = realclients.declared_tools(realclients.chat_calls(fake)[0])
    assert "read_files" in declared, f"Cline no longer declares read_files ({declared}); re-script the call"
    assert outcome["finishReason"] == "completed"
    assert outcome["iterations"] == 2
    assert outcome["text"] == "The note says the word is pomegranate."
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a failed call was probably retried"
    answer, uses = realclients.tool_round_trip(fake, CALL_ID)
    assert answer["status"] == "success"
    assert "the secret word is pomegranate" in json.dumps(answer["content"])
    assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(CALL_ID, "read_files", arguments)]
