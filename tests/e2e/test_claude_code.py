"""Claude Code itself (`claude -p`) against the real server and the fake Kiro upstream."""
from __future__ import annotations

import json

import pytest

from tests.fakes.scripts import Script, text_answer

from . import realclients

pytestmark = pytest.mark.realclient


def claude(proxy, tmp_path, prompt: str, *extra: str):
    """Run `claude -p` in a fresh HOME; returns (result, working directory)."""
    binary = realclients.require("claude")
    home = realclients.home_dir(tmp_path, "claude")
    env = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": proxy.url,
        "ANTHROPIC_API_KEY": "sk-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    work = realclients.work_dir(tmp_path)
    return realclients.run([binary, "-p", prompt, *extra], env, work), work


def test_plain_answer(proxy, fake, tmp_path):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hello from ", "the fake Kiro via kiroproxy"))
    result, _ = claude(proxy, tmp_path, "say hi")
    assert result.returncode == 0, result.stderr
    assert "Hello from the fake Kiro via kiroproxy" in result.stdout
    sent = realclients.chat_calls(fake)[0].json["conversationState"]
    assert "say hi" in sent["currentMessage"]["userInputMessage"]["content"]
    assert sent["currentMessage"]["userInputMessage"]["modelId"].startswith("claude-")


def test_tool_loop(proxy, fake, tmp_path):
    proxy.add_account("acc-A")
    note = realclients.write_note(tmp_path)
    fake.queue(Script().text("Let me read it.")
               .tool_use("tooluse_read1", "Read", json.dumps({"file_path": str(note)}))
               .context_usage())
    fake.queue(text_answer("The file says the word is pomegranate."))
    result, _ = claude(proxy, tmp_path, "what does note.txt say?", "--allowedTools", "Read")
    assert result.returncode == 0, result.stderr
    assert "pomegranate" in result.stdout
    chats = realclients.chat_calls(fake)
    assert len(chats) >= 2
    follow = chats[-1].json["conversationState"]
    results = follow["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert results[0]["toolUseId"] == "tooluse_read1"
    assert "pomegranate" in json.dumps(results[0]["content"])
    assert follow["history"][-1]["assistantResponseMessage"]["toolUses"][0]["name"] == "Read"
