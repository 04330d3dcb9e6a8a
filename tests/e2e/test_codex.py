"""Codex CLI itself (`codex exec`, Responses API) against the real server and the fake Kiro upstream.

Codex talks to a custom provider from `$CODEX_HOME/config.toml` (real-clients.md): `OPENAI_BASE_URL`
is ignored by 0.169, and the built-in provider sends no key. It sends `store: false` and its whole
history on every turn, so a tool loop is two independent upstream calls; the follow-up is told apart
by its content (the tool result), not by call order.
"""
from __future__ import annotations

import json
import logging
import time
from typing import List

import pytest

from tests.fakes.scripts import Script, text_answer

from . import realclients

pytestmark = pytest.mark.realclient

log = logging.getLogger(__name__)

API_KEY = "sk-codex-test"
CALL_ID = "tooluse_codex1"
TOOL_OUTPUT = "kiroproxy-tool-ok"
# A run takes about a second; with analytics, plugins or apps left on it waits on unreachable hosts
# (~7 s), and a failed stream is retried after a backoff. Either shows up here.
MAX_SECONDS = 20.0

CONFIG = """\
model = "gpt-5"
model_provider = "proxy"
check_for_update_on_startup = false

[model_providers.proxy]
name = "Loopback proxy"
base_url = "{base_url}"
env_key = "PROXY_API_KEY"
wire_api = "responses"
request_max_retries = 1
stream_max_retries = 1

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
in_app_updates = false
"""


def codex(proxy, tmp_path, prompt: str, *extra: str):
    """Run `codex exec` in a fresh HOME; returns (result, elapsed seconds, working directory)."""
    binary = realclients.require("codex")
    home = tmp_path / "codex-home"
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(CONFIG.format(base_url=proxy.url + "/v1"))
    env = {"HOME": str(home), "CODEX_HOME": str(home / ".codex"), "PROXY_API_KEY": API_KEY}
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    started = time.monotonic()
    result = realclients.run([binary, "exec", "--skip-git-repo-check", *extra, prompt], env, work, timeout=60)
    return result, time.monotonic() - started, work


def chat_calls(fake) -> list:
    return fake.requests_to("/generateAssistantResponse")


def current(recorded) -> dict:
    return recorded.json["conversationState"]["currentMessage"]["userInputMessage"]


def tool_results(recorded) -> List[dict]:
    return current(recorded).get("userInputMessageContext", {}).get("toolResults") or []


def tool_names(recorded) -> List[str]:
    tools = current(recorded).get("userInputMessageContext", {}).get("tools") or []
    return [tool["toolSpecification"]["name"] for tool in tools]


def answers_call(recorded) -> bool:
    return any(result.get("toolUseId") == CALL_ID for result in tool_results(recorded))


def asks_for_command(recorded) -> bool:
    return b"exec_command" in recorded.body and not tool_results(recorded)


def test_plain_answer(make_proxy, fake, tmp_path):
    proxy = make_proxy(api_keys=[API_KEY])  # proves Codex sends env_key's value as the bearer key
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hello from ", "the fake Kiro via kiroproxy"))
    result, elapsed, _ = codex(proxy, tmp_path, "say hi")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Hello from the fake Kiro via kiroproxy" in result.stdout
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a retry or a wait on an unreachable host"
    (sent,) = [r for r in chat_calls(fake) if b"say hi" in r.body]  # exactly one: no retried stream
    message = current(sent)
    assert message["content"].endswith("say hi")
    assert "<environment_context>" in message["content"]  # Codex's developer/context messages arrived
    assert message["modelId"].startswith("claude-")
    assert len(proxy.services.responses) == 0  # Codex sends store: false; nothing is kept


def test_tool_loop(make_proxy, fake, tmp_path):
    """Codex runs the shell command the model asked for and sends its output back."""
    proxy = make_proxy(api_keys=[API_KEY])
    proxy.add_account("acc-A")
    command = {"cmd": f"echo {TOOL_OUTPUT}"}
    fake.route(answers_call, text_answer("The command printed the marker."))
    fake.route(asks_for_command, Script().text("Running it.")
               .tool_use(CALL_ID, "exec_command", json.dumps(command)).context_usage())
    # danger-full-access: no bubblewrap sandbox, which needs user namespaces that CI may lack.
    result, elapsed, work = codex(proxy, tmp_path, "run the echo command", "--sandbox", "danger-full-access")
    first = chat_calls(fake)[0]
    log.info("tools Codex declared upstream: %s", tool_names(first))
    assert "exec_command" in tool_names(first), "Codex no longer declares exec_command; re-script the call"
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The command printed the marker." in result.stdout
    assert elapsed < MAX_SECONDS, f"took {elapsed:.1f} s: a retry or a wait on an unreachable host"
    follow_ups = [r for r in chat_calls(fake) if answers_call(r)]
    assert len(follow_ups) == 1, [current(r)["content"][-200:] for r in chat_calls(fake)]
    follow = follow_ups[0].json["conversationState"]
    (answer,) = tool_results(follow_ups[0])
    assert answer["status"] == "success"
    assert TOOL_OUTPUT in json.dumps(answer["content"])
    uses = follow["history"][-1]["assistantResponseMessage"]["toolUses"]
    assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(CALL_ID, "exec_command", command)]
    assert follow["history"][-1]["assistantResponseMessage"]["content"] == "Running it."
