"""Bodies real clients produce by accident: lone UTF-16 surrogates and absurd nesting.

A JS client cutting an emoji in half, or binary tool output, sends `"\\ud83d"` in JSON: it
cannot be UTF-8, so it must become U+FFFD at the boundary and the request must be answered
(and recorded as a flow), never a 500. Deeply nested JSON must be a 400 in the protocol's shape.
"""
from __future__ import annotations

import json

import pytest
import sseclient

from tests.fakes.scripts import text_answer

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
OPENAI = {"Authorization": "Bearer k", "content-type": "application/json"}
HIGH, LOW = "<high>", "<low>"  # markers for half of a surrogate pair, written as JSON escapes on the wire


def wire(body: object) -> bytes:
    """`body` as JSON text with every marker turned into a lone-surrogate escape (\\ud83d, \\udc80)."""
    return json.dumps(body).replace(HIGH, "\\ud83d").replace(LOW, "\\udc80").encode("ascii")


def anthropic_body(content: object = f"cut emoji {HIGH}", model: str = "claude-sonnet-4-6", **extra) -> dict:
    return {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": content}], **extra}


def tool_turns(result: str) -> list:
    return [{"role": "user", "content": "read it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": "a"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": result}]}]


def post(proxy, path: str, raw: bytes, headers: dict, stream: bool = False):
    return proxy.http.post(proxy.url + path, data=raw, headers=headers, timeout=30, stream=stream)


def sent_content(fake) -> str:
    return fake.requests_to("/generateAssistantResponse")[-1].body.decode("utf-8")


def flows(proxy) -> list:
    assert proxy.services.flows.flush(10)
    response = proxy.admin("GET", "/flows")
    assert response.status_code == 200, response.text
    return response.json()["flows"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_anthropic_lone_surrogate_in_text_is_answered_and_recorded(proxy, fake, stream):
    proxy.add_account("acc-A")
    fake.queue(text_answer("fine"))
    response = post(proxy, "/v1/messages", wire(anthropic_body(stream=stream)), ANTHROPIC, stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        names = [e.event for e in sseclient.SSEClient(response).events()]
        assert names[-1] == "message_stop"
    else:
        assert response.json()["content"][0]["text"] == "fine"
    assert "cut emoji \ufffd" in json.loads(sent_content(fake))["conversationState"]["currentMessage"][
        "userInputMessage"]["content"]
    (flow,) = flows(proxy)
    assert flow["state"] == "completed" and flow["status"] == 200
    detail = proxy.admin("GET", f"/flows/{flow['id']}").json()
    assert detail["request"]["body"]["messages"][0]["content"] == "cut emoji \ufffd"


def test_anthropic_lone_surrogates_in_a_tool_result_and_in_keys(proxy, fake):
    proxy.add_account("acc-A")
    body = anthropic_body(metadata={f"k{HIGH}": "v"}, tools=[{"name": "Read", "input_schema": {"type": "object"}}])
    body["messages"] = tool_turns(f"bytes {LOW}{LOW} end")
    response = post(proxy, "/v1/messages", wire(body), ANTHROPIC)
    assert response.status_code == 200, response.text
    results = json.loads(sent_content(fake))["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["toolResults"]
    assert results[0]["content"] == [{"text": "bytes \ufffd\ufffd end"}]
    (flow,) = flows(proxy)
    body = proxy.admin("GET", f"/flows/{flow['id']}").json()["request"]["body"]
    assert body["metadata"] == {"k\ufffd": "v"}


def test_anthropic_lone_surrogate_in_the_model_is_a_clear_404(proxy, fake):
    proxy.add_account("acc-A")
    response = post(proxy, "/v1/messages", wire(anthropic_body("hi", model=f"zz{HIGH}")), ANTHROPIC)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert "zz\ufffd" in response.json()["error"]["message"]
    (flow,) = flows(proxy)
    assert (flow["state"], flow["status"], flow["requested_model"]) == ("error", 404, "zz\ufffd")


def test_count_tokens_with_a_lone_surrogate(proxy):
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": f"x {HIGH}"}]}
    response = post(proxy, "/v1/messages/count_tokens", wire(body), ANTHROPIC)
    assert response.status_code == 200 and response.json()["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_lone_surrogate_in_text_is_answered(proxy, fake, stream):
    proxy.add_account("acc-A")
    fake.queue(text_answer("fine"))
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": f"emoji cut {HIGH}"}]}
    response = post(proxy, "/v1/chat/completions", wire(body), OPENAI, stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        data = [e.data for e in sseclient.SSEClient(response).events()]
        assert data[-1] == "[DONE]"
    else:
        assert response.json()["choices"][0]["message"]["content"] == "fine"
    assert "emoji cut \ufffd" in sent_content(fake)
    (flow,) = flows(proxy)
    assert flow["state"] == "completed"


def test_openai_lone_surrogate_in_a_tool_message_and_the_model(proxy, fake):
    proxy.add_account("acc-A")
    body = {"model": "gpt-4o", "tools": [{"type": "function", "function": {"name": "Read", "parameters": {}}}],
            "messages": [{"role": "user", "content": "read"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": f"out {LOW}"}]}
    assert post(proxy, "/v1/chat/completions", wire(body), OPENAI).status_code == 200
    assert "out \ufffd" in json.loads(sent_content(fake))["conversationState"]["currentMessage"][
        "userInputMessage"]["userInputMessageContext"]["toolResults"][0]["content"][0]["text"]
    missing = post(proxy, "/v1/chat/completions",
                   wire({"model": f"nope-{HIGH}", "messages": [{"role": "user", "content": "hi"}]}), OPENAI)
    assert missing.status_code == 404 and "nope-\ufffd" in missing.json()["error"]["message"]


def test_escaped_backslash_before_u_is_left_alone(proxy, fake):
    """`\\\\ud83d` in JSON is a backslash and the letters "ud83d", not a surrogate."""
    proxy.add_account("acc-A")
    raw = json.dumps(anthropic_body("path C:\\ud83d")).encode("ascii")
    assert b"\\\\ud83d" in raw
    response = post(proxy, "/v1/messages", raw, ANTHROPIC)
    assert response.status_code == 200
    (flow,) = flows(proxy)
    body = proxy.admin("GET", f"/flows/{flow['id']}").json()["request"]["body"]
    assert body["messages"][0]["content"] == "path C:\\ud83d"


# ----- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path, headers, shape", [
    ("/v1/messages", ANTHROPIC, "anthropic"),
    ("/v1/messages/count_tokens", ANTHROPIC, "anthropic"),
    ("/v1/chat/completions", OPENAI, "openai"),
    ("/v1beta/models/gemini-2.5-pro:generateContent", {"x-goog-api-key": "k"}, "gemini"),
    ("/v1beta/models/gemini-2.5-pro:countTokens", {"x-goog-api-key": "k"}, "gemini"),
])
@pytest.mark.parametrize("raw", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000],
                         ids=["arrays", "objects"])
def test_absurdly_nested_json_is_a_400_in_the_protocols_shape(proxy, path, headers, shape, raw):
    response = post(proxy, path, raw.encode("ascii"), headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "nests JSON deeper" in error["message"]
    assert {"anthropic": error.get("type") == "invalid_request_error",
            "openai": error.get("type") == "invalid_request_error",
            "gemini": error.get("status") == "INVALID_ARGUMENT"}[shape], error


def test_parseable_but_deep_tool_input_is_a_400_not_a_crash(proxy, fake):
    """Deep enough to parse, too deep for the translators' recursion: refused at the boundary."""
    proxy.add_account("acc-A")
    body = anthropic_body(tools=[{"name": "Read", "input_schema": {"type": "object"}}])
    body["messages"] = tool_turns("r")
    body["messages"][1]["content"][0]["input"] = {"a": "<deep>"}
    raw = json.dumps(body).replace('"<deep>"', "[" * 500 + "]" * 500).encode("ascii")
    response = post(proxy, "/v1/messages", raw, ANTHROPIC)
    assert response.status_code == 400 and "deeper than" in response.json()["error"]["message"]
    assert fake.requests_to("/generateAssistantResponse") == []
    (flow,) = flows(proxy)
    assert (flow["state"], flow["status"]) == ("error", 400)


def test_ordinary_nesting_still_works(proxy, fake):
    proxy.add_account("acc-A")
    schema: dict = {"type": "string"}
    for _ in range(30):
        schema = {"type": "object", "properties": {"x": schema}}
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": schema}]}
    response = proxy.http.post(proxy.url + "/v1/messages", json=body, headers=ANTHROPIC)
    assert response.status_code == 200, response.text
