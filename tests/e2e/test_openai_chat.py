"""OpenAI Chat Completions end to end: official openai SDK -> real server -> fake Kiro."""
from __future__ import annotations

import base64
import json
from typing import Iterator

import pydantic
import pytest
import sseclient

from tests.fakes.scripts import Script, text_answer, throttled

from .conftest import wait_for

pytest.importorskip("openai", reason="the official SDKs need Python 3.10 or newer")

import openai  # noqa: E402

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
HI = [{"role": "user", "content": "hi"}]


def sdk(proxy, path: str = "/v1", api_key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + path, api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
def client(proxy) -> Iterator[openai.OpenAI]:
    with sdk(proxy) as opened:  # closing it releases its pooled connections
        yield opened


def upstream(fake, n: int = -1) -> dict:
    """The conversationState of the n-th chat request the fake received."""
    return fake.requests_to("/generateAssistantResponse")[n].json["conversationState"]


def current(fake, n: int = -1) -> dict:
    return upstream(fake, n)["currentMessage"]["userInputMessage"]


def weather_call(call_id: str, arguments: str) -> dict:
    """An assistant tool call as a client echoes it back."""
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def test_non_streaming_text(proxy, fake, client):
    proxy.add_account("acc-A")
    completion = client.chat.completions.create(model="gpt-4o", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == (
        "assistant", "Hello from fake Kiro", "stop")
    assert choice.message.tool_calls is None
    assert completion.object == "chat.completion" and completion.model == "gpt-4o"
    assert completion.id.startswith("chatcmpl-")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = current(fake)
    assert sent["modelId"] == "claude-sonnet-4"
    assert sent["content"].startswith("Be brief.") and sent["content"].endswith("Say hello")


def test_streaming_text_chunks(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hel", "lo", " there"))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    texts = [c.choices[0].delta.content for c in chunks[1:-1]]  # frames that arrived together are joined
    assert "".join(texts) == "Hello there" and 1 <= len(texts) <= 3 and all(texts)
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None
    assert len({(c.id, c.created, c.model, c.object) for c in chunks}) == 1
    assert chunks[0].model == "gpt-4o" and chunks[0].object == "chat.completion.chunk"
    assert all(c.choices and c.usage is None for c in chunks)  # no usage chunk unless asked for


def test_streaming_wire_format(proxy, fake):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/chat/completions", stream=True,
                               headers={"Authorization": "Bearer sk-test"},
                               json={"model": "gpt-4o", "stream": True, "messages": HI})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    raw = response.content.decode("utf-8")
    assert "event:" not in raw and '"usage"' not in raw
    assert raw.endswith("data: [DONE]\n\n") and raw.count("[DONE]") == 1


def test_streaming_is_incremental(proxy, fake, client):
    """The first delta reaches the client while the fake still holds the rest of the answer."""
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("g").text(" second").context_usage())
    stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    texts = (c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content)
    assert next(texts) == "first"
    assert fake.wait_gate("g", 5)  # the rest does not exist upstream yet
    fake.release("g")
    assert "".join(texts) == " second"


def test_include_usage_adds_one_usage_chunk(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hel", "lo"))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True,
                                                     stream_options={"include_usage": True}))
    *choice_chunks, last = chunks
    assert last.choices == [] and last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None for c in choice_chunks)


def test_tool_call_round_trip(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().text("Checking.").tool_use("tooluse_w1", "get_weather", '{"ci', 'ty": "Par', 'is"}')
               .context_usage())
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("tooluse_w1", "function", "get_weather")
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {"city": "Paris"}
    fake.queue(text_answer("It is sunny."))
    second = client.chat.completions.create(model="gpt-4o", tools=[WEATHER], messages=messages + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24C"}])
    assert second.choices[0].message.content == "It is sunny."
    sent = upstream(fake)
    assert sent["history"][-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    context = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert context["toolResults"][0]["toolUseId"] == "tooluse_w1"
    assert context["toolResults"][0]["content"] == [{"text": "Sunny, 24C"}]
    assert "additionalProperties" not in json.dumps(context["tools"])


def test_tool_calls_only_have_null_content(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_t", "get_weather", '{"city": "Oslo"}').context_usage())
    message = client.chat.completions.create(model="gpt-4o", messages=HI, tools=[WEATHER]).choices[0].message
    assert message.content is None and message.tool_calls[0].function.arguments == '{"city": "Oslo"}'


def test_streaming_tool_call_round_trip(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().text("Both.").tool_use("tooluse_a", "get_weather", '{"city":', ' "Paris"}')
               .tool_use("tooluse_b", "get_weather", {"city": "Rome"}).context_usage())
    messages = [{"role": "user", "content": "Paris and Rome?"}]
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER], stream=True))
    fragments = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert [(f.index, f.id, f.function.name) for f in fragments if f.id] == [
        (0, "tooluse_a", "get_weather"), (1, "tooluse_b", "get_weather")]
    assert all(f.function.arguments == "" for f in fragments if f.id)
    assert [f.function.arguments for f in fragments if f.index == 0 and not f.id] == ['{"city":', ' "Paris"}']
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    fake.queue(Script().tool_use("tooluse_c", "get_weather", '{"city": "Oslo"}').context_usage())
    with client.chat.completions.stream(model="gpt-4o", messages=messages, tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    fake.queue(text_answer("Done."))
    answered = list(client.chat.completions.create(model="gpt-4o", tools=[WEATHER], stream=True, messages=messages + [
        {"role": "assistant", "content": "Both.", "tool_calls": [
            weather_call("tooluse_a", '{"city": "Paris"}'), weather_call("tooluse_b", '{"city":"Rome"}')]},
        {"role": "tool", "tool_call_id": "tooluse_a", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "tooluse_b", "content": "Rain"}]))
    assert "".join(c.choices[0].delta.content or "" for c in answered) == "Done."
    sent = upstream(fake)
    assert [u["toolUseId"] for u in sent["history"][-1]["assistantResponseMessage"]["toolUses"]] == [
        "tooluse_a", "tooluse_b"]
    results = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert [(r["toolUseId"], r["content"]) for r in results] == [
        ("tooluse_a", [{"text": "Sunny"}]), ("tooluse_b", [{"text": "Rain"}])]


def test_data_url_image_reaches_upstream(proxy, fake, client):
    proxy.add_account("acc-A")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    sent = current(fake)
    assert sent["images"] == [{"format": "png", "source": {"bytes": PNG}}]
    assert "What is this?" in sent["content"] and "https://example.com/cat.jpg" in sent["content"]


def test_reasoning_effort_and_reasoning_content(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("Let me ", "think.").text("It is 4.").context_usage())
    completion = client.chat.completions.create(model="gpt-4o", reasoning_effort="high",
                                                    messages=[{"role": "user", "content": "2+2?"}])
    message = completion.choices[0].message
    assert message.content == "It is 4."
    assert message.model_extra["reasoning_content"] == "Let me think."
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0
    assert current(fake)["content"].startswith(
        "<thinking_mode>adaptive</thinking_mode><thinking_effort>high</thinking_effort>")


def test_streamed_reasoning_content(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().text("<thin", "king>\nhmm", "m\n</thinking>\n\nDone").context_usage())
    chunks = list(client.chat.completions.create(model="o3", reasoning_effort="low", messages=HI, stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas)
    assert reasoning == "hmmm" and "".join(d.content or "" for d in deltas) == "Done"
    assert "<thinking_effort>low</thinking_effort>" in current(fake)["content"]


def test_minimal_effort_means_no_thinking(proxy, fake, client):
    proxy.add_account("acc-A")
    client.chat.completions.create(model="gpt-5", reasoning_effort="minimal", messages=HI)
    assert "thinking_mode" not in current(fake)["content"]


@pytest.mark.parametrize("model, model_id", [
    ("gpt-4o", "claude-sonnet-4"), ("gpt-4", "claude-sonnet-4"), ("gpt-4o-mini", "claude-haiku-4.5"),
    ("gpt-3.5-turbo", "claude-haiku-4.5"), ("o1", "claude-opus-4.5"), ("o1-preview", "claude-opus-4.5"),
    ("gpt-5", "claude-sonnet-4.5"), ("o3", "claude-opus-4.5"), ("gpt-4.1-mini", "claude-haiku-4.5")])
def test_openai_model_names_reach_upstream_as_kiro_ids(proxy, fake, model, model_id, client):
    proxy.add_account("acc-A")
    completion = client.chat.completions.create(model=model, messages=HI)
    assert completion.model == model
    assert current(fake)["modelId"] == model_id


def test_roles_follow_the_settings(make_proxy, fake):
    proxy = make_proxy(default_model="claude-sonnet-4.6", fast_model="claude-sonnet-4", strong_model="claude-opus-4.6")
    proxy.add_account("acc-A")
    with sdk(proxy) as client:
        for model in ("gpt-5-codex", "gpt-4.1-nano", "o4-pro"):
            client.chat.completions.create(model=model, messages=HI)
    assert [r.json["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]
            for r in fake.requests_to("/generateAssistantResponse")] == [
        "claude-sonnet-4.6", "claude-sonnet-4", "claude-opus-4.6"]


def test_unknown_model_is_404_listing_served_models(proxy, fake, client):
    proxy.add_account("acc-A")
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="llama-3-70b", messages=HI)
    error = caught.value.body
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "model_not_found", "model")
    assert "llama-3-70b" in error["message"] and "claude-sonnet-4.5" in error["message"]
    assert fake.requests_to("/generateAssistantResponse") == []


def test_model_list_and_retrieve(proxy, client):
    models = client.models.list().data
    assert "claude-sonnet-4.5" in [m.id for m in models]
    assert {(m.object, m.owned_by) for m in models} == {("model", "kiro")}
    assert client.models.retrieve("claude-sonnet-4.5").id == "claude-sonnet-4.5"
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"  # a mapped name is served too
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("llama-3-70b")


def test_429_fails_over_to_the_next_account(proxy, fake, client):
    first = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(throttled("120"), token="acc-A")
    fake.queue(text_answer("from B"), token="acc-B")
    completion = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert completion.choices[0].message.content == "from B"
    assert [r.token for r in fake.requests_to("/generateAssistantResponse")] == ["acc-A", "acc-B"]
    accounts = {a["id"]: a for a in proxy.admin("GET", "/accounts").json()["accounts"]}
    assert accounts[first]["state"] == "cooldown"


def test_every_account_throttled_gives_rate_limit_error(proxy, fake, client):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(throttled("30"), token="acc-A")
    fake.queue(throttled("30"), token="acc-B")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_error_after_the_first_byte_raises_in_the_sdk(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().text("partial answer"))  # no contextUsageEvent: cut upstream
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="gpt-4o", messages=HI, stream=True):
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"  # the 200 had started
    assert "".join(c.choices[0].delta.content or "" for c in received) == "partial answer"
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body["type"] == "server_error" and caught.value.message


def test_truncated_non_streaming_is_a_server_error(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().text("partial answer"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.status_code >= 500 and caught.value.body["type"] == "server_error"


def test_stop_sequence_ends_the_answer(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer("one two ", "th", "ree END four"))
    completion = client.chat.completions.create(model="gpt-4o", messages=HI, stop=["END", "nine"])
    assert completion.choices[0].message.content == "one two three "
    assert completion.choices[0].finish_reason == "stop"


def test_max_completion_tokens_gives_length(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer(*["word " * 40] * 5))
    completion = client.chat.completions.create(model="gpt-4o", messages=HI, max_completion_tokens=8)
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content) < len("word " * 200)


def test_json_object_format_reaches_upstream_as_an_instruction(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer('{"a": 1}'))
    completion = client.chat.completions.create(model="gpt-4o", messages=HI,
                                                    response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"a": 1}
    assert "Reply with a single valid JSON value" in current(fake)["content"]


def test_json_schema_format_carries_the_schema(proxy, fake, client):
    proxy.add_account("acc-A")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    client.chat.completions.create(model="gpt-4o", messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}})
    content = current(fake)["content"]
    assert '"result"' in content and json.dumps(schema, separators=(",", ":")) in content


def test_path_without_v1_works(proxy, fake):
    proxy.add_account("acc-A")
    with sdk(proxy, path="") as bare:  # base URL without /v1: the SDK posts to /chat/completions
        completion = bare.chat.completions.create(model="gpt-4o", messages=HI)
        assert "claude-sonnet-4.5" in [m.id for m in bare.models.list().data]
    assert completion.choices[0].message.content == "Hello from fake Kiro"


def test_client_disconnect_closes_upstream(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("one").gate("g").text("two").context_usage())
    response = proxy.http.post(proxy.url + "/v1/chat/completions", stream=True,
                               headers={"Authorization": "Bearer sk-test"},
                               json={"model": "gpt-4o", "stream": True, "messages": HI})
    for event in sseclient.SSEClient(response).events():
        if json.loads(event.data)["choices"][0]["delta"].get("content"):
            break
    assert fake.wait_gate("g", 5)
    response.close()
    assert fake.wait_disconnect(5)  # noticed while upstream is still holding the answer
    wait_for(lambda: proxy.services.pool.summaries()[0]["in_flight"] == 0)


@pytest.mark.parametrize("body, param", [
    ({"messages": HI}, "model"),
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages"),
    ({"model": "gpt-4o", "messages": HI, "max_tokens": -1}, "max_tokens"),
    ({"model": "gpt-4o", "messages": HI, "n": 3}, "n"),
])
def test_bad_requests_get_openai_errors(proxy, body, param):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/chat/completions", json=body,
                               headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert set(error) == {"message", "type", "param", "code"}


def test_invalid_json_is_400(proxy):
    response = proxy.http.post(proxy.url + "/v1/chat/completions", data="{nope",
                               headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_client_keys_enforced_when_configured(make_proxy, fake):
    proxy = make_proxy(api_keys=["sk-good"])
    proxy.add_account("acc-A")
    with sdk(proxy, api_key="sk-bad") as bad, pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.code == "invalid_api_key"
    with sdk(proxy, api_key="sk-good") as good:
        assert good.chat.completions.create(model="gpt-4o", messages=HI).choices[0].message.content


def test_no_accounts_is_a_retryable_server_error(proxy, client):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.status_code == 503
    assert "POST /api/accounts" in caught.value.message


# ----- JSON mode: the SDK's parse helpers read cleaned answers --------------------------------------


class Answer(pydantic.BaseModel):
    answer: int


def test_parse_helper_reads_a_fenced_answer(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer('```json\n{"answer": 4}\n```'))
    completion = client.chat.completions.parse(model="gpt-4o", messages=[{"role": "user", "content": "2+2?"}],
                                               response_format=Answer)
    assert completion.choices[0].message.parsed == Answer(answer=4)
    assert completion.choices[0].message.content == '{"answer": 4}'
    assert '"Answer"' in current(fake)["content"]  # the schema went upstream in the prompt


def test_parse_helper_reads_a_prose_wrapped_answer(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Sure! Here it is:\n", '{"answer": 4}', "\nLet me know if you need more."))
    completion = client.chat.completions.parse(model="gpt-4o", messages=HI, response_format=Answer)
    assert completion.choices[0].message.parsed == Answer(answer=4)


def test_streaming_parse_helper_reads_a_fenced_answer(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(text_answer("```js", 'on\n{"ans', 'wer": 4}', "\n``", "`"))
    with client.chat.completions.stream(model="gpt-4o", messages=HI, response_format=Answer) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(answer=4)
    assert final.choices[0].message.content == '{"answer": 4}'


def test_json_object_mode_cleans_raw_answers_too(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer('```json\n{"a": 1}\n```'))
    response = proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                               json={"model": "gpt-4o", "messages": HI, "response_format": {"type": "json_object"}})
    assert json.loads(response.json()["choices"][0]["message"]["content"]) == {"a": 1}


# ----- validation parity with OpenAI ---------------------------------------------------------------


@pytest.mark.parametrize("fields, param", [
    ({"tool_choice": 5}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}}, "function_call"),
    ({"stream": "false"}, "stream"),
    ({"temperature": "hot"}, "temperature"),
])
def test_invalid_fields_are_400_naming_the_field(proxy, fake, fields, param):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                               json={"model": "gpt-4o", "messages": HI, **fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert fake.requests_to("/generateAssistantResponse") == []


# ----- legacy functions / function_call ------------------------------------------------------------

LEGACY = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Weather in Oslo?"}],
          "functions": [WEATHER["function"]]}


def test_legacy_functions_get_a_legacy_function_call(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_l1", "get_weather", '{"city": "Oslo"}').context_usage())
    response = proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                               json={**LEGACY, "function_call": {"name": "get_weather"}})
    (choice,) = response.json()["choices"]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["content"] is None and "tool_calls" not in choice["message"]
    assert choice["message"]["function_call"]["name"] == "get_weather"
    assert json.loads(choice["message"]["function_call"]["arguments"]) == {"city": "Oslo"}
    assert "You must call the tool `get_weather`" in current(fake)["content"]


def test_legacy_functions_stream_delta_function_call(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_l2", "get_weather", '{"city":', ' "Oslo"}').context_usage())
    response = proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                               json={**LEGACY, "stream": True}, stream=True)
    chunks = [json.loads(e.data) for e in sseclient.SSEClient(response).events() if e.data != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all("tool_calls" not in d for d in deltas)
    calls = [d["function_call"] for d in deltas if "function_call" in d]
    assert calls[0] == {"name": "get_weather", "arguments": ""}
    assert json.loads("".join(c["arguments"] for c in calls)) == {"city": "Oslo"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_legacy_round_trip_with_the_sdk(proxy, fake, client):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_l3", "get_weather", '{"city": "Oslo"}').context_usage())
    first = client.chat.completions.create(**LEGACY)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "function_call" and message.tool_calls is None
    assert message.function_call.name == "get_weather"
    fake.queue(text_answer("Snowing."))
    second = client.chat.completions.create(**{**LEGACY, "messages": LEGACY["messages"] + [
        message.model_dump(exclude_none=True), {"role": "function", "name": "get_weather", "content": "Snow"}]})
    assert second.choices[0].message.content == "Snowing." and second.choices[0].finish_reason == "stop"
    sent = upstream(fake)
    assert sent["history"][-1]["assistantResponseMessage"]["toolUses"][0]["name"] == "get_weather"
    assert current(fake)["userInputMessageContext"]["toolResults"][0]["content"] == [{"text": "Snow"}]


def test_an_image_data_url_that_is_not_base64_is_a_400(proxy, fake, client):
    proxy.add_account("acc-A")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!notbase64"}}]}])
    error = caught.value.body
    assert error["type"] == "invalid_request_error" and "not valid base64" in error["message"]
    assert not fake.requests_to("/generateAssistantResponse")
