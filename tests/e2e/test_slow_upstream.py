"""A slow upstream: a first-event timeout moves to another account once, then the client gets the
protocol's timeout error; streaming clients get keep-alives while the first event is awaited."""
from __future__ import annotations

import json
import socket
from typing import Callable, Iterator, List

import pytest

from tests.fakes.scripts import Script, text_answer

from .conftest import wait_for

ANTHROPIC = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

# (path, body, the keep-alive line, what the content line holds)
PROTOCOLS = {
    "anthropic": ("/v1/messages", {**BODY, "stream": True}, "event: ping", "text_delta"),
    "openai": ("/v1/chat/completions", {**CHAT, "stream": True}, ": keepalive", '"content":"late'),
    "gemini": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", GEMINI, "", '"text":"late'),
}


def slow(seconds: float = 30, name: str = "first-byte") -> Script:
    """An answer whose status line waits for fake.release(name)."""
    return Script().slow_first_byte(seconds, name).text("late answer").context_usage()


def flows(proxy) -> list:
    assert proxy.services.flows.flush(10)
    return proxy.admin("GET", "/flows").json()["flows"]


def lines_until(lines: Iterator[str], seen: List[str], done: Callable[[List[str]], bool]) -> None:
    for line in lines:
        seen.append(line)
        if done(seen):
            return
    raise AssertionError(f"the stream ended first: {seen}")


def test_a_first_event_timeout_moves_to_another_account_only_once(make_proxy, fake):
    proxy = make_proxy(first_event_timeout=0.3)
    for name in ("acc-A", "acc-B", "acc-C"):
        proxy.add_account(name)
    fake.route(lambda r: True, slow(30))
    response = proxy.http.post(proxy.url + "/v1/messages", json=BODY, headers=ANTHROPIC, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    tokens = [r.token for r in fake.requests_to("/generateAssistantResponse")]
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # one failover, on another account
    (flow,) = flows(proxy)
    assert flow["status"] == 504 and len(flow["attempts"]) == 2
    fake.release("first-byte")


def test_one_slow_account_is_tried_twice_then_times_out(make_proxy, fake):
    proxy = make_proxy(first_event_timeout=0.3)
    proxy.add_account("acc-A")
    fake.route(lambda r: True, slow(30))
    response = proxy.http.post(proxy.url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert response.status_code == 504
    assert len(fake.requests_to("/generateAssistantResponse")) == 2
    fake.release("first-byte")


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_keep_alives_flow_while_the_first_event_is_awaited(make_proxy, fake, protocol):
    path, body, keepalive, content = PROTOCOLS[protocol]
    proxy = make_proxy(first_event_timeout=30, stream_start_seconds=0.1)
    proxy.add_account("acc-A")
    fake.queue(slow(30))
    with proxy.http.post(proxy.url + path, json=body, headers=ANTHROPIC, stream=True, timeout=10) as response:
        assert response.status_code == 200  # started before the upstream said anything
        lines = response.iter_lines(decode_unicode=True)
        seen: List[str] = []
        # Anthropic's stream opens with one ping of its own: wait for a second one.
        wanted = 2 if protocol == "anthropic" else 3
        lines_until(lines, seen, lambda s: s.count(keepalive) >= wanted)
        assert not any(content in line for line in seen)
        assert len(fake.requests_to("/generateAssistantResponse")) == 1
        fake.release("first-byte")
        lines_until(lines, seen, lambda s: content in s[-1])
        rest = list(lines)
    assert not any("error" in line for line in seen + rest)
    (flow,) = flows(proxy)
    assert flow["state"] == "completed" and flow["status"] == 200


def test_a_stream_fails_over_behind_keep_alives(make_proxy, fake):
    proxy = make_proxy(first_event_timeout=0.5, stream_start_seconds=0.1)
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(slow(30), token="acc-A")
    fake.queue(text_answer("from B"), token="acc-B")
    response = proxy.http.post(proxy.url + "/v1/messages", json={**BODY, "stream": True}, headers=ANTHROPIC,
                               timeout=10)
    events = [line for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["event: message_start", "event: ping", "event: ping"]  # started before B
    assert "event: error" not in events and events[-1] == "event: message_stop"
    assert '"text":"from B"' in response.text
    (flow,) = flows(proxy)
    assert flow["state"] == "completed" and [a["outcome"] for a in flow["attempts"]] == ["rotate", "ok"]
    fake.release("first-byte")


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_stream_that_times_out_twice_ends_with_the_timeout_error(make_proxy, fake, protocol):
    path, body, _, _ = PROTOCOLS[protocol]
    proxy = make_proxy(first_event_timeout=0.3, stream_start_seconds=0.1)
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.route(lambda r: True, slow(30))
    response = proxy.http.post(proxy.url + path, json=body, headers=ANTHROPIC, timeout=30)
    assert response.status_code == 200
    documents = [json.loads(line.split(":", 1)[1]) for line in response.text.splitlines()
                 if line.startswith("data:") and line != "data: [DONE]"]
    error = documents[-1]["error"]
    expected = {"anthropic": ("type", "timeout_error"), "openai": ("code", None),
                "gemini": ("status", "DEADLINE_EXCEEDED")}[protocol]
    assert error[expected[0]] == expected[1] and "did not start answering" in error["message"]
    assert len(fake.requests_to("/generateAssistantResponse")) == 2
    (flow,) = flows(proxy)
    assert flow["state"] == "error" and flow["status"] == 504
    fake.release("first-byte")


def test_a_client_that_leaves_while_waiting_frees_the_account(make_proxy, fake):
    proxy = make_proxy(first_event_timeout=30, stream_start_seconds=0.1)
    proxy.add_account("acc-A")
    fake.queue(slow(30))
    with proxy.http.post(proxy.url + "/v1/messages", json={**BODY, "stream": True}, headers=ANTHROPIC,
                         stream=True, timeout=10) as response:
        lines_until(response.iter_lines(decode_unicode=True), [], lambda s: s.count("event: ping") >= 2)
    # The proxy notices the departure at its next keep-alive; only then does the upstream answer
    # (released earlier, a loaded machine could deliver the answer before the departure is seen).
    wait_for(lambda: flows(proxy) and flows(proxy)[0]["state"] == "cancelled", timeout=30)
    fake.release("first-byte")  # the upstream answers after the client left
    wait_for(lambda: proxy.services.pool.summaries()[0]["in_flight"] == 0, timeout=10)


def test_a_whole_answer_client_that_leaves_mid_answer_frees_the_account(make_proxy, fake):
    """A non-streaming answer is read on the request thread; the watchdog still cuts it when the
    client goes."""
    proxy = make_proxy()
    proxy.add_account("acc-A")
    fake.queue(Script().text("one").gate("g").text("two").context_usage())
    body = json.dumps(BODY).encode()
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"x-api-key: sk-test\r\nanthropic-version: 2023-06-01\r\nContent-Length: {len(body)}\r\n\r\n")
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(head.encode() + body)
        assert fake.wait_gate("g", 10)  # the proxy has the first event, the rest is held back
    assert fake.wait_disconnect(10)  # the proxy cut the upstream before the rest came
    (flow,) = wait_for(lambda: [f for f in flows(proxy) if f["state"] == "cancelled"], timeout=10)
    wait_for(lambda: proxy.services.pool.summaries()[0]["in_flight"] == 0, timeout=10)
    fake.release("g")
