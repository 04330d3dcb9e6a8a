"""Continue CLI itself (`cn -p`, OpenAI Chat Completions) against the real server and the fake Kiro.

Continue reads one `config.yaml` with an `openai` provider whose apiBase is the proxy's /v1
(real-clients.md); `--auto` lets its tools run unasked. Its only egress is a DNS lookup of
api.continue.dev, which fails harmlessly offline.
"""
from __future__ import annotations

import json

import pytest

from tests.fakes.scripts import Script, text_answer

from . import realclients

pytestmark = pytest.mark.realclient

API_KEY = "sk-continue-test"
CALL_ID = "tooluse_continue1"
MAX_SECONDS = 30.0  # a run takes ~3 s; the OpenAI SDK inside retries failed calls with backoff

CONFIG = """\
name: kiroproxy
version: 0.0.1
schema: v1
models:
  - name: kiroproxy
    provider: openai
    model: gpt-4o
    apiBase: {api_base}
    apiKey: {api_key}
    roles: [chat, edit, apply]
"""


def continue_cli(proxy, tmp_path, prompt: str, *extra: str):
    """Run `cn -p` in a fresh HOME; returns (result, elapsed seconds)."""
    binary = realclients.require("cn")
    home = realclients.home_dir(tmp_path, "continue")
    config = home / "config.yaml"
    config.write_text(CONFIG.format(api_base=proxy.url + "/v1", api_key=API_KEY))
    return realclients.timed_run([binary, "-p", prompt, "--config", str(config), *extra], {"HOME": str(home)},
                                 realclients.work_dir(tmp_path), timeout=60)


def answers_call(recorded) -> bool:
    """Whether a recorded call carries the result of the scripted Read call."""
    return realclients.answers(recorded, CALL_ID)


def test_plain_answer(make_proxy, fake, tmp_path):
    proxy = make_proxy(api_keys=[API_KEY])  # proves Continue sends its apiKey
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hello from ", "the fake Kiro via kiroproxy"))
    result, elapsed = continue_cli(proxy, tmp_path, "say hi")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "Hello from the fake Kiro via kiroproxy"
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a failed call was probably retried"
    (sent,) = realclients.chat_calls(fake)
    message = realclients.current(sent)
    assert message["content"].endswith("say hi")
    assert "headless mode" in message["content"]  # Continue's system message reached the upstream
    assert message["modelId"].startswith("claude-")


def test_tool_loop(make_proxy, fake, tmp_path):
    """Continue's Read tool runs on a file in its working directory; the content goes back upstream."""
    proxy = make_proxy(api_keys=[API_KEY])
    proxy.add_account("acc-A")
    realclients.write_note(tmp_path)
    fake.route(answers_call, text_answer("The note says the word is pomegranate."))
    fake.queue(Script().text("Let me read it.")
               .tool_use(CALL_ID, "Read", json.dumps({"filepath": "note.txt"})).context_usage())
    result, elapsed = continue_cli(proxy, tmp_path, "what does note.txt say?", "--auto")
    declared = realclients.declared_tools(realclients.chat_calls(fake)[0])
    assert "Read" in declared, f"Continue no longer declares Read ({declared}); re-script the call"
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The note says the word is pomegranate." in result.stdout
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a failed call was probably retried"
    answer, uses = realclients.tool_round_trip(fake, CALL_ID)
    assert answer["status"] == "success"
    assert "the secret word is pomegranate" in json.dumps(answer["content"])
    assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(CALL_ID, "Read", {"filepath": "note.txt"})]
