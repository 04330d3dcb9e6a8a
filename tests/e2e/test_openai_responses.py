"""The OpenAI Responses API end to end: official SDK -> real server -> fake Kiro.

Covers what Codex relies on (store false, developer messages, custom and namespace tools, the full
streaming item sequence) and the stateful parts: previous_response_id, retrieval, restarts.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pydantic
import pytest
import sseclient

from tests.fakes.scripts import DEFAULT_TEXT, Script, text_answer

pytest.importorskip("openai", reason="the official SDKs need Python 3.10 or newer")

import openai  # noqa: E402

MODEL = "claude-sonnet-4-6"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}
TEXT_SEQUENCE = ["response.created", "response.in_progress", "response.output_item.added",
                 "response.content_part.added"]
TEXT_END = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


@pytest.fixture
def sdk() -> Iterator[Callable[..., openai.OpenAI]]:
    """sdk(proxy, base="/v1"): an OpenAI client for the proxy, closed (with its sockets) at teardown."""
    made: List[openai.OpenAI] = []

    def make(proxy, base: str = "/v1") -> openai.OpenAI:
        client = openai.OpenAI(base_url=proxy.url + base, api_key="sk-test", max_retries=0, timeout=30)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def chat_calls(fake) -> List[Dict[str, Any]]:
    return [r.json["conversationState"] for r in fake.requests_to("/generateAssistantResponse")]


def current(state: Dict[str, Any]) -> Dict[str, Any]:
    return state["currentMessage"]["userInputMessage"]


def history_texts(state: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    for entry in state.get("history", []):
        role, message = next(iter(entry.items()))
        out.append((role, message["content"]))
    return out


def sse_events(proxy, body: Dict[str, Any], path: str = "/v1/responses") -> List[Tuple[str, Dict[str, Any]]]:
    with proxy.http.post(proxy.url + path, json={**body, "stream": True}, stream=True,
                         headers={"Authorization": "Bearer sk-test"}) as response:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [(e.event, json.loads(e.data)) for e in sseclient.SSEClient(response).events()]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    return events


def test_non_streaming_text(proxy, fake, sdk):
    proxy.add_account("acc-A")
    response = sdk(proxy).responses.create(model=MODEL, input="Say hello", instructions="Be brief.")
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == DEFAULT_TEXT
    assert response.output[0].type == "message" and response.output[0].id.startswith("msg_")
    assert response.model == MODEL
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    (state,) = chat_calls(fake)
    assert current(state)["content"] == "Be brief.\n\nSay hello"
    assert current(state)["modelId"] == "claude-sonnet-4.6"


def test_streaming_event_sequence(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer("Hel", "lo", " there"))
    events = sse_events(proxy, {"model": MODEL, "input": "hi"})
    names = [name for name, _ in events]
    deltas = names.count("response.output_text.delta")  # frames that arrived together are joined
    assert 1 <= deltas <= 3
    assert names == TEXT_SEQUENCE + ["response.output_text.delta"] * deltas + TEXT_END + ["response.completed"]
    texts = [d["delta"] for n, d in events if n == "response.output_text.delta"]
    assert "".join(texts) == "Hello there" and all(texts)
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Hello there"
    assert final["usage"]["output_tokens"] > 0 and final["usage"]["input_tokens"] > 0


def test_streaming_with_the_sdk(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("Let me ", "think.").text("The answer is 4.").context_usage())
    with sdk(proxy).responses.stream(model=MODEL, input="2+2?", reasoning={"effort": "high"}) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in types and "response.output_text.delta" in types
    assert types.index("response.reasoning_summary_text.delta") < types.index("response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Let me think."
    assert final.output_text == "The answer is 4."
    assert current(chat_calls(fake)[-1])["content"].startswith("<thinking_mode>adaptive</thinking_mode>")


def test_function_call_round_trip(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(Script().text("Checking.").tool_use("tooluse_w1", "get_weather", '{"ci', 'ty": "Par', 'is"}')
               .context_usage())
    client = sdk(proxy)
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER], store=False)
    call = first.output[1]
    assert (call.type, call.call_id, call.name, json.loads(call.arguments)) == (
        "function_call", "tooluse_w1", "get_weather", {"city": "Paris"})
    assert call.id.startswith("fc_") and first.output_text == "Checking."
    fake.queue(text_answer("It is sunny."))
    second = client.responses.create(model=MODEL, tools=[WEATHER], store=False, input=[
        {"role": "user", "content": "Weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": "tooluse_w1", "output": "Sunny, 24C"}])
    assert second.output_text == "It is sunny."
    state = chat_calls(fake)[-1]
    assistant = state["history"][-1]["assistantResponseMessage"]
    assert assistant["content"] == "Checking."
    assert assistant["toolUses"] == [{"toolUseId": "tooluse_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    context = current(state)["userInputMessageContext"]
    assert context["toolResults"] == [{"toolUseId": "tooluse_w1", "status": "success",
                                       "content": [{"text": "Sunny, 24C"}]}]
    assert "additionalProperties" not in json.dumps(context["tools"])


def test_streamed_function_call_arguments(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_x", "get_weather", '{"city":', ' "Oslo"}').context_usage())
    events = sse_events(proxy, {"model": MODEL, "input": "Oslo?", "tools": [WEATHER]})
    names = [name for name, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    added, done = events[2][1]["item"], events[6][1]["item"]
    assert (added["type"], added["arguments"], added["call_id"], added["status"]) == (
        "function_call", "", "tooluse_x", "in_progress")
    assert json.loads(done["arguments"]) == {"city": "Oslo"} and done["status"] == "completed"


def test_previous_response_id_continues_the_conversation(proxy, fake, sdk):
    proxy.add_account("acc-A")
    client = sdk(proxy)
    fake.queue(text_answer("Nice to meet you, Ann."))
    first = client.responses.create(model=MODEL, input="My name is Ann.")
    fake.queue(text_answer("Your name is Ann."))
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ann." and second.previous_response_id == first.id
    state = chat_calls(fake)[-1]
    assert history_texts(state) == [("userInputMessage", "My name is Ann."),
                                    ("assistantResponseMessage", "Nice to meet you, Ann.")]
    assert current(state)["content"] == "What is my name?"
    fake.queue(text_answer("Third."))
    with client.responses.stream(model=MODEL, input="And again?", previous_response_id=second.id) as stream:
        third = stream.get_final_response()
    assert [text for _, text in history_texts(chat_calls(fake)[-1])] == [
        "My name is Ann.", "Nice to meet you, Ann.", "What is my name?", "Your name is Ann."]
    assert client.responses.retrieve(third.id).output_text == "Third."  # streamed answers are stored too


def test_store_false_is_not_retrievable(proxy, fake, sdk):
    proxy.add_account("acc-A")
    client = sdk(proxy)
    unstored = client.responses.create(model=MODEL, input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="again", previous_response_id=unstored.id)
    assert caught.value.status_code == 404
    assert caught.value.body["param"] == "previous_response_id"
    assert unstored.id in caught.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    assert len(chat_calls(fake)) == 1  # the failed continuation never reached upstream


def test_retrieve_a_stored_response(proxy, fake, sdk):
    proxy.add_account("acc-A")
    client = sdk(proxy)
    created = client.responses.create(model=MODEL, input="hi", metadata={"run": "1"})
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    missing = proxy.http.get(proxy.url + "/v1/responses/resp_doesnotexist")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    hostile = proxy.http.get(proxy.url + "/v1/responses/..%2F..%2Faccounts.json")
    assert hostile.status_code == 404


def test_responses_survive_a_restart(make_proxy, fake, sdk):
    first = make_proxy()
    first.add_account("acc-A")
    fake.queue(text_answer("Remember 42."))
    created = sdk(first).responses.create(model=MODEL, input="Remember a number.")
    first.stop()
    second = make_proxy()
    client = sdk(second)
    assert client.responses.retrieve(created.id).output_text == "Remember 42."
    fake.queue(text_answer("It was 42."))
    follow = client.responses.create(model=MODEL, input="Which number?", previous_response_id=created.id)
    assert follow.output_text == "It was 42."
    assert history_texts(chat_calls(fake)[-1])[-1] == ("assistantResponseMessage", "Remember 42.")
    stored = second.home / ".kiro-proxy" / "responses"
    assert oct(stored.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in stored.iterdir()} == {"0o600"}


def test_upstream_failure_after_the_first_byte_is_response_failed(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("Partial answer"))  # no end-of-answer event: the stream is cut
    events = sse_events(proxy, {"model": MODEL, "input": "hi"})
    names = [name for name, _ in events]
    assert names[:5] == TEXT_SEQUENCE + ["response.output_text.delta"]
    assert names[-1] == "response.failed" and "response.completed" not in names
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["error"]["message"]
    assert failed["output"][0]["status"] == "incomplete"


def test_max_output_tokens_gives_an_incomplete_response(proxy, fake, sdk):
    proxy.add_account("acc-A")
    long_answer = text_answer(*["word " * 20] * 5)
    fake.queue(long_answer, long_answer)
    response = sdk(proxy).responses.create(model=MODEL, input="Talk a lot.", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    events = sse_events(proxy, {"model": MODEL, "input": "Talk a lot.", "max_output_tokens": 16})
    assert events[-1][0] == "response.incomplete"


def test_without_the_v1_prefix(proxy, fake, sdk):
    proxy.add_account("acc-A")
    client = sdk(proxy, base="")
    created = client.responses.create(model=MODEL, input="hi")
    assert created.output_text == DEFAULT_TEXT
    assert client.responses.retrieve(created.id).id == created.id
    assert sse_events(proxy, {"model": MODEL, "input": "hi"}, path="/responses")[-1][0] == "response.completed"


def codex_body() -> Dict[str, Any]:
    """A request shaped like Codex CLI's: store false, developer messages, Codex's tool kinds."""
    return {
        "model": "gpt-5.1-codex", "stream": True, "store": False, "parallel_tool_calls": False,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "reasoning": {"effort": "medium", "summary": "auto"}, "text": {"verbosity": "low"}, "tool_choice": "auto",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Add a README."}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Check first."}],
             "encrypted_content": "gAAAA=="},
            {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}", "call_id": "call_1"},
            {"type": "function_call_output", "call_id": "call_1", "output": "src\n"},
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "Run a command.", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                            "required": ["command"], "additionalProperties": False}},
            {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
            {"type": "namespace", "name": "mcp__github__", "description": "GitHub", "tools": [
                {"type": "function", "name": "list_issues", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search", "external_web_access": False},
            {"type": "tool_search"},
        ],
    }


def test_codex_shaped_request_with_a_custom_tool_call(proxy, fake):
    proxy.add_account("acc-A")
    patch = "*** Begin Patch\n*** Add File: README.md\n+# Demo\n*** End Patch\n"
    fake.queue(Script().tool_use("tooluse_p", "apply_patch", json.dumps({"input": patch})).context_usage())
    events = sse_events(proxy, codex_body())
    names = [name for name, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
                     "response.output_item.done", "response.completed"]
    item = events[-2][1]["item"]
    assert (item["type"], item["call_id"], item["name"], item["input"]) == (
        "custom_tool_call", "tooluse_p", "apply_patch", patch)
    state = chat_calls(fake)[-1]
    tools = {t["toolSpecification"]["name"]: t["toolSpecification"]
             for t in current(state)["userInputMessageContext"]["tools"]}
    assert sorted(tools) == ["apply_patch", "list_issues", "shell"]
    assert "input" in tools["apply_patch"]["inputSchema"]["json"]["properties"]
    assert history_texts(state)[0][1].endswith("You are Codex.\n\nAdd a README.")  # after the thinking tags
    replayed = state["history"][-1]["assistantResponseMessage"]
    assert replayed["content"] == "<thinking>Check first.</thinking>"  # the reasoning item's summary
    assert replayed["toolUses"][0]["toolUseId"] == "call_1"
    assert current(state)["userInputMessageContext"]["toolResults"][0]["toolUseId"] == "call_1"
    # store false: nothing to retrieve afterwards
    response_id = events[0][1]["response"]["id"]
    assert proxy.http.get(proxy.url + f"/v1/responses/{response_id}").status_code == 404


def test_namespaced_function_call_keeps_its_namespace(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_g", "list_issues", "{}").context_usage())
    body = codex_body()
    body["stream"] = False
    response = sdk(proxy).responses.create(**body)
    (call,) = response.output
    assert (call.type, call.name, call.namespace, call.call_id) == (
        "function_call", "list_issues", "mcp__github__", "tooluse_g")


def test_bad_requests_get_openai_errors(proxy):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/responses", json={"model": MODEL, "input": 5})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("input:")
    assert error["param"] == "input"


# ----- JSON mode: the SDK's parse helpers read cleaned answers --------------------------------------


class Answer(pydantic.BaseModel):
    answer: int


def test_parse_helper_reads_a_fenced_answer(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(text_answer('```json\n{"answer": 4}\n```'))
    response = sdk(proxy).responses.parse(model=MODEL, input="2+2?", text_format=Answer)
    assert response.output_parsed == Answer(answer=4)
    assert response.output_text == '{"answer": 4}'
    assert '"Answer"' in current(chat_calls(fake)[-1])["content"]  # the schema went upstream in the prompt


def test_parse_helper_reads_a_prose_wrapped_answer(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(text_answer("The result:\n", '{"answer": 4}', "\nHope that helps."))
    assert sdk(proxy).responses.parse(model=MODEL, input="2+2?", text_format=Answer).output_parsed == Answer(answer=4)


def test_streaming_parse_helper_reads_a_fenced_answer(proxy, fake, sdk):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("Easy.").text("```json", '\n{"answer":', " 4}\n`", "``\n").context_usage())
    with sdk(proxy).responses.stream(model=MODEL, input="2+2?", text_format=Answer) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == '{"answer": 4}'
    assert final.output_parsed == Answer(answer=4)
    assert [item.type for item in final.output] == ["reasoning", "message"]


# ----- validation parity with OpenAI ---------------------------------------------------------------


@pytest.mark.parametrize("fields, param", [
    ({"tool_choice": 5}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"temperature": "hot"}, "temperature"),
    ({"stream": "false"}, "stream"),
])
def test_invalid_fields_are_400_naming_the_field(proxy, fake, fields, param):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/responses", json={"model": MODEL, "input": "hi", **fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert chat_calls(fake) == []


# ----- a follow-up without `model` -----------------------------------------------------------------


def test_a_follow_up_without_model_inherits_it(proxy, fake, sdk):
    proxy.add_account("acc-A")
    client = sdk(proxy)
    first = client.responses.create(model="gpt-4o-mini", input="My name is Ann.")
    follow = proxy.http.post(proxy.url + "/v1/responses",
                             json={"previous_response_id": first.id, "input": "What is my name?"})
    assert follow.status_code == 200 and follow.json()["model"] == "gpt-4o-mini"
    streamed = sse_events(proxy, {"previous_response_id": follow.json()["id"], "input": "Again?"})
    assert {data["response"]["model"] for _, data in streamed if "response" in data} == {"gpt-4o-mini"}
    assert client.responses.retrieve(follow.json()["id"]).model == "gpt-4o-mini"
    assert [current(state)["modelId"] for state in chat_calls(fake)] == ["claude-haiku-4.5"] * 3
