"""Gemini CLI itself (`gemini -p`) against the real server and the fake Kiro upstream.

Each turn starts with a router call that asks for JSON (generateContent on a flash-lite model,
responseJsonSchema with a `complexity_score`); the fake answers it through a route with prose
around fenced JSON, as models often write it. The CLI itself only strips a fence that is the whole
answer, so the proxy's JSON-mode repair is what spares it ~37 s of router retries; the elapsed-time
assertions catch a regression there.
"""
from __future__ import annotations

import json
import threading
from typing import Iterator

import pytest

from kiroproxy.protocols import gemini
from tests.fakes.scripts import Script, text_answer

from . import realclients

pytestmark = pytest.mark.realclient

ROUTER_ANSWER = ('Here is my assessment:\n```json\n'
                 '{"complexity_reasoning": "A simple request.", "complexity_score": 5}\n```\nDone.')
MAX_SECONDS = 30.0  # the CLI starts in ~5 s; one failed router call alone costs ~37 s


def is_router_call(recorded) -> bool:
    return b"complexity_score" in recorded.body


def gemini_cli(proxy, tmp_path, prompt: str):
    """Run `gemini -p` (JSON output) in a fresh HOME; returns (result, elapsed seconds)."""
    binary = realclients.require("gemini")
    home = realclients.home_dir(tmp_path, "gemini")
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False}}))
    env = {"HOME": str(home), "GEMINI_API_KEY": "gk-test", "GOOGLE_GEMINI_BASE_URL": proxy.url,
           "GEMINI_CLI_TRUST_WORKSPACE": "true"}
    return realclients.timed_run([binary, "-p", prompt, "--output-format", "json"], env,
                                 realclients.work_dir(tmp_path))


def answer_of(result) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout[result.stdout.index("{"):])["response"]


def main_calls(fake):
    return [r for r in realclients.chat_calls(fake) if not is_router_call(r)]


def test_plain_answer(make_proxy, fake, tmp_path, monkeypatch):
    """A plain answer, with keep-alives on the stream while the upstream is silent."""
    proxy = make_proxy(keepalive_seconds=0.05)
    proxy.add_account("acc-A")
    fake.route(is_router_call, text_answer(ROUTER_ANSWER))
    fake.queue(Script().text("Hello from ").gate("quiet").text("the fake Kiro via kiroproxy").context_usage())
    heartbeat_sent = watch_heartbeats(monkeypatch)
    releaser = threading.Thread(target=lambda: heartbeat_sent.wait(30) and fake.release("quiet"), daemon=True)
    releaser.start()
    result, elapsed = gemini_cli(proxy, tmp_path, "say hi")
    fake.release("quiet")
    assert answer_of(result) == "Hello from the fake Kiro via kiroproxy"
    assert heartbeat_sent.is_set()  # the CLI read past a keep-alive in the middle of the answer
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: the router call probably failed and was retried"
    routed = [r for r in realclients.chat_calls(fake) if is_router_call(r)]
    assert len(routed) == 1
    (sent,) = main_calls(fake)
    message = realclients.current(sent)
    assert "say hi" in message["content"]
    assert "You are Gemini CLI" in message["content"]  # the systemInstruction reached the upstream
    assert message["modelId"].startswith("claude-")


def watch_heartbeats(monkeypatch) -> threading.Event:
    """An Event set once the server writes a keep-alive into a Gemini SSE stream (a spy on the encoder)."""
    seen = threading.Event()
    encode = gemini.encode_sse

    def spy(*args, **kw) -> Iterator[bytes]:
        for chunk in encode(*args, **kw):
            if chunk == gemini.HEARTBEAT:
                seen.set()
            yield chunk

    monkeypatch.setattr(gemini, "encode_sse", spy)
    return seen


def test_tool_loop(proxy, fake, tmp_path):
    proxy.add_account("acc-A")
    note = realclients.write_note(tmp_path)
    fake.route(is_router_call, text_answer(ROUTER_ANSWER))
    fake.queue(Script().text("Let me read it.")
               .tool_use("tooluse_read1", "read_file", json.dumps({"file_path": str(note)}))
               .context_usage())
    fake.queue(text_answer("The note says the word is pomegranate."))
    result, elapsed = gemini_cli(proxy, tmp_path, "what does note.txt say?")
    assert "pomegranate" in answer_of(result)
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: the router call probably failed and was retried"
    calls = main_calls(fake)
    assert len(calls) == 2
    follow = calls[-1].json["conversationState"]
    uses = follow["history"][-1]["assistantResponseMessage"]["toolUses"]
    assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [
        ("tooluse_read1", "read_file", {"file_path": str(note)})]
    results = follow["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert [r["toolUseId"] for r in results] == ["tooluse_read1"]
    assert "pomegranate" in json.dumps(results[0]["content"])


def test_failure_after_the_first_byte_is_retried(proxy, fake, tmp_path):
    """The in-stream error reaches the CLI's SDK as an error (it retries), not as a short answer."""
    proxy.add_account("acc-A")
    fake.route(is_router_call, text_answer(ROUTER_ANSWER))
    fake.queue(Script().text("partial ").gate("sent"))  # then ends without contextUsageEvent: cut upstream
    fake.queue(text_answer("second try worked"))
    releaser = threading.Thread(target=lambda: fake.wait_gate("sent", 30) and fake.release("sent"), daemon=True)
    releaser.start()
    result, elapsed = gemini_cli(proxy, tmp_path, "say hi")
    assert answer_of(result).endswith("second try worked")
    assert len(main_calls(fake)) == 2
    assert elapsed < MAX_SECONDS
