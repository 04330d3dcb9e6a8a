"""The Anthropic Messages API end to end: official SDK -> real server -> fake Kiro."""
from __future__ import annotations

import base64
import json

import pytest
import sseclient

from kiroproxy.kiro import eventstream
from tests.fakes.scripts import (
    Script,
    bearer_invalid,
    suspended,
    text_answer,
    throttled,
)

from .conftest import wait_for

pytest.importorskip("anthropic", reason="the official SDKs need Python 3.10 or newer")

import anthropic  # noqa: E402

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def sdk(proxy, api_key: str = "sk-test", **kw) -> anthropic.Anthropic:
    """An SDK client closed with the proxy (so no socket outlives the test)."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key=api_key, max_retries=0, timeout=30, **kw)
    proxy.on_stop(client.close)
    return client


def current(recorded) -> dict:
    return recorded.json["conversationState"]["currentMessage"]["userInputMessage"]


def test_non_streaming_text(proxy, fake):
    proxy.add_account("acc-A")
    message = sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                         messages=[{"role": "user", "content": "Say hello"}])
    assert message.content[0].text == "Hello from fake Kiro"
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-sonnet-4-6"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (sent,) = fake.requests_to("/generateAssistantResponse")
    assert sent.token == "acc-A"
    assert current(sent)["content"] == "Say hello"
    assert current(sent)["modelId"] == "claude-sonnet-4.6"
    assert len(sent.headers["x-amz-user-agent"].rsplit("-", 1)[-1]) == 64


def test_streaming_event_sequence(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hel", "lo", " there"))
    response = proxy.http.post(proxy.url + "/v1/messages?beta=true", stream=True, headers={
        "x-api-key": "sk-test", "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
              "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [(e.event, json.loads(e.data)) for e in sseclient.SSEClient(response).events()]
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")  # frames that arrived together come out joined
    assert 1 <= deltas <= 3
    assert names == ["message_start", "ping", "content_block_start", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert "".join(texts) == "Hello there" and all(texts)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] > 0


def test_streaming_with_sdk_is_incremental(proxy, fake):
    """The first delta reaches the client while the fake still holds the rest of the answer."""
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("g").text(" second").context_usage())
    client = sdk(proxy)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = stream.text_stream
        assert next(texts) == "first"
        assert fake.wait_gate("g", 5)  # the rest does not exist upstream yet
        fake.release("g")
        assert "".join(texts) == " second"
        final = stream.get_final_message()
    assert final.content[0].text == "first second"


def test_tool_round_trip(proxy, fake):
    proxy.add_account("acc-A")
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False}}]
    fake.queue(Script().text("Checking.").tool_use("tooluse_w1", "get_weather", '{"ci', 'ty": "Par', 'is"}')
               .context_usage())
    client = sdk(proxy)
    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=tools,
                                   messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    assert first.content[0].text == "Checking."
    call = first.content[1]
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "tooluse_w1", "get_weather", {"city": "Paris"})
    fake.queue(text_answer("It is sunny."))
    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=256, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [c.model_dump() for c in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tooluse_w1", "content": "Sunny, 24C"}]},
    ])
    assert second.content[0].text == "It is sunny."
    sent = fake.requests_to("/generateAssistantResponse")[-1].json["conversationState"]
    assert sent["history"][-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    results = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert results[0]["toolUseId"] == "tooluse_w1" and results[0]["content"] == [{"text": "Sunny, 24C"}]
    spec = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0]["toolSpecification"]
    assert "additionalProperties" not in json.dumps(spec)


def test_streaming_tool_call_as_input_json_delta(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_x", "read_file", '{"path":', ' "a.py"}').context_usage())
    with sdk(proxy).messages.stream(
            model="claude-sonnet-4-6", max_tokens=256,
            tools=[{"name": "read_file", "input_schema": {"type": "object", "properties": {}}}],
            messages=[{"role": "user", "content": "read a.py"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert partials == ['{"path":', ' "a.py"}']
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"path": "a.py"}


def test_image_reaches_upstream(proxy, fake):
    proxy.add_account("acc-A")
    sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}])
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert sent["images"] == [{"format": "png", "source": {"bytes": PNG}}]
    assert sent["content"] == "What is this?"


def test_thinking_blocks(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("Let me ", "think.").text("The answer is 4.").context_usage())
    message = sdk(proxy).messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "2+2?"}])
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[1].text == "The answer is 4."
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert sent["content"].startswith("<thinking_mode>enabled</thinking_mode><max_thinking_length>2048")


def test_streaming_thinking_deltas(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("<thin", "king>\nhmm", "m\n</thinking>\n\nDone").context_usage())
    with sdk(proxy).messages.stream(model="claude-sonnet-4-6", max_tokens=4096,
                                    thinking={"type": "enabled", "budget_tokens": 2048},
                                    messages=[{"role": "user", "content": "?"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "thinking_delta" in kinds and "text_delta" in kinds
    assert kinds.index("thinking_delta") < kinds.index("text_delta")
    assert final.content[0].thinking == "hmmm"
    assert final.content[1].text == "Done"


def test_count_tokens(proxy):
    client = sdk(proxy)
    plain = client.messages.count_tokens(model="claude-sonnet-4-6",
                                         messages=[{"role": "user", "content": "Hello there, how are you?"}])
    with_tools = client.messages.count_tokens(
        model="claude-sonnet-4-6", system="You are terse.",
        tools=[{"name": "read_file", "description": "Read a file from disk",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        messages=[{"role": "user", "content": "Hello there, how are you?"}])
    assert 3 <= plain.input_tokens < 40
    assert with_tools.input_tokens > plain.input_tokens + 10


def test_429_fails_over_to_next_account(proxy, fake):
    first = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(throttled("120"), token="acc-A")
    fake.queue(text_answer("from B"), token="acc-B")
    message = sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "from B"
    assert [r.token for r in fake.requests_to("/generateAssistantResponse")] == ["acc-A", "acc-B"]
    accounts = {a["id"]: a for a in proxy.admin("GET", "/accounts").json()["accounts"]}
    assert accounts[first]["state"] == "cooldown"
    assert accounts[first]["cooldown_until"] > 0


def test_every_account_throttled_gives_429(proxy, fake):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(throttled("30"), token="acc-A")
    fake.queue(throttled("30"), token="acc-B")
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_403_refreshes_token_and_retries(proxy, fake):
    account = proxy.add_account("acc-A")
    fake.queue(bearer_invalid(), token="acc-A")
    message = sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "Hello from fake Kiro"
    assert fake.refresh_count == 1
    tokens = [r.token for r in fake.requests_to("/generateAssistantResponse")]
    assert tokens[0] == "acc-A" and tokens[1] not in ("acc-A", None)
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert summary["state"] == "active"
    assert "access_token" not in summary and "refresh_token" not in summary


def test_expired_token_is_refreshed_before_use(proxy, fake):
    proxy.add_account("acc-A", expires_in=-60)
    sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                               messages=[{"role": "user", "content": "hi"}])
    assert fake.refresh_count >= 1
    assert fake.requests_to("/generateAssistantResponse")[0].token != "acc-A"


def test_truncated_stream_is_an_error_not_success(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("partial answer"))  # no contextUsageEvent: cut upstream
    with pytest.raises(anthropic.APIStatusError) as caught:
        with sdk(proxy).messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                        messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream:
                pass
    assert "ended before the answer was complete" in str(caught.value) or "truncat" in str(caught.value).lower()


def test_truncated_non_streaming_is_an_error(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("partial answer"))
    with pytest.raises(anthropic.InternalServerError) as caught:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code >= 500


def test_client_disconnect_closes_upstream(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("one").gate("g").text("two").context_usage())
    response = proxy.http.post(proxy.url + "/v1/messages", stream=True, headers={"x-api-key": "k"},
                               json={"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
                                     "messages": [{"role": "user", "content": "hi"}]})
    events = sseclient.SSEClient(response).events()
    for event in events:
        if event.event == "content_block_delta":
            break
    assert fake.wait_gate("g", 5)
    response.close()
    assert fake.wait_disconnect(5)  # noticed while upstream is still holding the answer
    wait_for(lambda: proxy.services.pool.summaries()[0]["in_flight"] == 0)


def test_suspended_account_is_disabled(proxy, fake):
    account = proxy.add_account("acc-A")
    fake.queue(suspended(), token="acc-A")
    with pytest.raises(anthropic.APIStatusError):
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert summary["state"] == "suspended"
    assert "suspended" in summary["reason"].lower()


def test_claude_code_shaped_request_is_accepted(proxy, fake):
    proxy.add_account("acc-A")
    body = {
        "model": "claude-opus-5-5", "max_tokens": 32000, "stream": False,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user",
                      "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
                     {"role": "system", "content": "Be brief.", "output_config": {"effort": "high"}}],
        "tools": [{"name": "Read", "description": "Read", "input_schema": {"type": "object"}, "defer_loading": True},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "thinking": {"type": "adaptive"}, "context_management": {"edits": []}, "output_config": {"effort": "high"},
        "metadata": {"user_id": "{\"session\":\"x\"}"}, "diagnostics": {}, "speed": "fast",
    }
    response = proxy.http.post(proxy.url + "/v1/messages?beta=true", json=body, headers={
        "Authorization": "Bearer sk-test", "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,context-management-2025-06-27", "x-app": "cli"})
    assert response.status_code == 200, response.text
    sent = fake.requests_to("/generateAssistantResponse")[-1].json["conversationState"]
    message = sent["currentMessage"]["userInputMessage"]
    assert message["modelId"].startswith("claude-opus-")  # family fallback to the newest opus
    assert "You are Claude Code." in message["content"] and "Be brief." in message["content"]
    assert "x-anthropic-billing-header" not in message["content"]
    assert [t["toolSpecification"]["name"] for t in message["userInputMessageContext"]["tools"]] == ["Read"]


@pytest.mark.parametrize("body, status, fragment", [
    ({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "hi"}]}, 400, "max_tokens"),
    ({"model": "claude-sonnet-4", "max_tokens": 10, "messages": []}, 400, "messages"),
    ({"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
    ({"model": "llama-3-70b", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, 404,
     "claude-sonnet-4.6"),
])
def test_bad_requests_get_anthropic_errors(proxy, body, status, fragment):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error"
    assert fragment in error["error"]["message"]


def test_invalid_json_is_400(proxy):
    response = proxy.http.post(proxy.url + "/v1/messages", data="{nope",
                               headers={"content-type": "application/json", "x-api-key": "k"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in response.json()["error"]["message"]


def test_no_accounts_is_a_clear_error(proxy):
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code in (503, 529)
    assert "POST /api/accounts" in caught.value.message


def test_models_shape_follows_headers(proxy):
    anthropic_list = sdk(proxy).models.list()
    ids = [m.id for m in anthropic_list.data]
    assert "claude-sonnet-4.6" in ids
    openai_shape = proxy.http.get(proxy.url + "/v1/models").json()
    assert openai_shape["object"] == "list" and openai_shape["data"][0]["object"] == "model"
    one = proxy.http.get(proxy.url + "/v1/models/claude-sonnet-4.5", headers={"anthropic-version": "2023-06-01"})
    assert one.json()["type"] == "model"


def test_client_keys_enforced_when_configured(make_proxy):
    proxy = make_proxy(api_keys=["sk-good"])
    proxy.add_account("acc-A")
    with pytest.raises(anthropic.AuthenticationError):
        sdk(proxy, "sk-bad").messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    ok = sdk(proxy, "sk-good").messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert ok.content[0].text


def test_admin_requires_key(proxy):
    assert proxy.admin("GET", "/accounts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert proxy.http.get(proxy.url + "/api/accounts").status_code == 401
    assert proxy.admin("GET", "/accounts").status_code == 200


def test_accounts_survive_restart_and_never_echo_tokens(make_proxy, fake):
    first = make_proxy()
    account = first.add_account("acc-secret-token")
    listing = first.admin("GET", "/accounts").text
    assert "acc-secret-token" not in listing and "aoracc" not in listing
    first.stop()
    second = make_proxy()
    assert [a["id"] for a in second.admin("GET", "/accounts").json()["accounts"]] == [account]
    store = second.home / ".kiro-proxy" / "accounts.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600"


# ----- the account's own token refused, corrupt frames, cut tool calls, signatures, model ids -----


def raw_stream(proxy, **body):
    """(event name, data) of a streamed /v1/messages call made with plain HTTP."""
    response = proxy.http.post(proxy.url + "/v1/messages", stream=True, timeout=30,
                               headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                               json={"model": "claude-sonnet-4-6", "max_tokens": 256, "stream": True,
                                     "messages": [{"role": "user", "content": "hi"}], **body})
    assert response.status_code == 200, response.text
    return [(e.event, json.loads(e.data)) for e in sseclient.SSEClient(response).events()]


def test_account_token_rejected_even_after_refresh_is_a_retryable_overload_not_a_bad_key(proxy, fake):
    """Claude Code and the SDKs read 401 as "your API key is wrong" and stop for good."""
    proxy.add_account("acc-A")
    fake.queue(bearer_invalid(), bearer_invalid())  # the first try and the retry after the refresh
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert fake.refresh_count == 1 and len(fake.requests_to("/generateAssistantResponse")) == 2
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert "Kiro account's token was rejected" in caught.value.body["error"]["message"]


def test_account_token_rejected_in_openai_shape_is_503(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(bearer_invalid(), bearer_invalid())
    response = proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer k"},
                               json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 503
    assert "Kiro account's token was rejected" in response.json()["error"]["message"]


def test_good_frame_before_a_corrupt_one_in_the_same_chunk_still_reaches_the_client(proxy, fake):
    proxy.add_account("acc-A")
    good = eventstream.event("assistantResponseEvent", {"content": "kept text"})
    bad = bytearray(eventstream.event("assistantResponseEvent", {"content": "corrupted"}))
    bad[-1] ^= 0xFF
    fake.queue(Script().raw(good + bytes(bad)).context_usage())
    events = raw_stream(proxy)
    texts = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert texts == ["kept text"]
    assert events[-1][0] == "error" and "corrupt" in events[-1][1]["error"]["message"]


def test_tool_call_cut_mid_input_is_never_streamed_as_a_tool_use(proxy, fake):
    """kiro-upstream.md §6.5/6.7: execute neither; ask the model for a smaller call."""
    proxy.add_account("acc-A")
    tools = [{"name": "write_file", "input_schema": {"type": "object"}}]
    fake.queue(Script().text("Writing it.").tool_use("tooluse_w", "write_file", '{"path": "a.py", "body": "x')
               .context_usage())
    events = raw_stream(proxy, tools=tools)
    blocks = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert "tool_use" not in blocks
    assert not [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text.startswith("Writing it.") and "write_file was cut off" in text and "smaller" in text
    assert [d["delta"]["stop_reason"] for n, d in events if n == "message_delta"] == ["max_tokens"]
    assert events[-1][0] == "message_stop"


def test_tool_call_cut_mid_input_non_streaming_has_no_tool_use(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_w", "write_file", '{"q":').context_usage())
    message = sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                         tools=[{"name": "write_file", "input_schema": {"type": "object"}}],
                                         messages=[{"role": "user", "content": "go"}])
    assert [b.type for b in message.content] == ["text"]
    assert "write_file was cut off" in message.content[0].text
    assert message.stop_reason == "max_tokens"


def test_tag_thinking_block_ends_with_a_signature_the_sdk_keeps(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("I reason").text("The answer.").context_usage())
    events = raw_stream(proxy, thinking={"type": "enabled", "budget_tokens": 2048})
    thinking = [(n, d) for n, d in events if d.get("index") == 0 and n in ("content_block_delta", "content_block_stop")]
    assert [d["delta"]["type"] if n == "content_block_delta" else n for n, d in thinking] == [
        "thinking_delta", "signature_delta", "content_block_stop"]
    signature = thinking[1][1]["delta"]["signature"]
    assert signature
    # Echoed back next turn, the placeholder never reaches Kiro.
    fake.queue(text_answer("ok"))
    sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=256,
                               thinking={"type": "enabled", "budget_tokens": 2048}, messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "I reason", "signature": signature},
                                          {"type": "text", "text": "The answer."}]},
        {"role": "user", "content": "and?"}])
    sent = fake.requests_to("/generateAssistantResponse")[-1]
    assert signature not in sent.body.decode("utf-8")
    assert "I reason" in sent.body.decode("utf-8")


@pytest.mark.parametrize("model", ["claude-opus-4.7", "claude-opus-4.8", "minimax-m2.1",
                                   "CLAUDE_SONNET_4_20250514_V1_0"])
def test_kiro_ids_from_the_upstream_reference_go_upstream_unchanged(proxy, fake, model):
    proxy.add_account("acc-A")
    sdk(proxy).messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert current(fake.requests_to("/generateAssistantResponse")[-1])["modelId"] == model


def test_admin_paths_that_do_not_exist_need_the_key_too(proxy):
    """An unknown path or wrong method under /api must not reveal which routes exist."""
    for method, path in [("GET", "/api"), ("GET", "/api/"), ("GET", "/api/secret-route"),
                         ("DELETE", "/api/accounts"), ("PUT", "/api/accounts"), ("POST", "/api/stats")]:
        response = proxy.http.request(method, proxy.url + path)
        assert response.status_code == 401, (method, path, response.status_code)
    assert proxy.admin("GET", "/secret-route").status_code == 404
    assert proxy.admin("DELETE", "/accounts").status_code == 405
