"""The Gemini API end to end: the official google-genai SDK -> real server -> fake Kiro."""
from __future__ import annotations

import base64
import json

import pytest

from tests.fakes.scripts import Script, text_answer, throttled

pytest.importorskip("google.genai", reason="the official SDKs need Python 3.10 or newer")

from google import genai  # noqa: E402
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types  # noqa: E402

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAaJPXQAAAABJRU5ErkJggg==")
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather for a city",
    parameters=types.Schema(type=types.Type.OBJECT, required=["city"],
                            properties={"city": types.Schema(type=types.Type.STRING)}))])
MANUAL_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


def sdk(proxy, api_version: str = "v1beta", key: str = "gk-test", base_url: str = "") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=base_url or proxy.url, api_version=api_version, timeout=30_000,
        retry_options=types.HttpRetryOptions(attempts=1)))


def current(recorded) -> dict:
    return recorded.json["conversationState"]["currentMessage"]["userInputMessage"]


def last_sent(fake) -> dict:
    return fake.requests_to("/generateAssistantResponse")[-1].json["conversationState"]


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_text(proxy, fake, api_version):
    proxy.add_account("acc-A")
    client = sdk(proxy, api_version)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert response.text == "Hello from fake Kiro"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash" and response.response_id
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    sent = current(fake.requests_to("/generateAssistantResponse")[0])
    assert sent["content"] == "Say hello"
    assert sent["modelId"] == "claude-haiku-4.5"  # flash -> the role "fast"


def test_pro_names_use_the_default_model_and_aliases_win(make_proxy, fake):
    proxy = make_proxy(model_aliases={"gemini-2.5-flash": "claude-opus-4.5"})
    proxy.add_account("acc-A")
    client = sdk(proxy)
    client.models.generate_content(model="gemini-3.1-pro-preview", contents="a")
    client.models.generate_content(model="gemini-2.5-flash", contents="b")
    assert [current(r)["modelId"] for r in fake.requests_to("/generateAssistantResponse")] == [
        "claude-sonnet-4.5", "claude-opus-4.5"]


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_streaming_is_incremental(proxy, fake, api_version):
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("g").text(" second").context_usage())
    client = sdk(proxy, api_version)
    chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    assert next(chunks).text == "first"
    assert fake.wait_gate("g", 5)  # the rest does not exist upstream yet
    fake.release("g")
    rest = list(chunks)
    assert "".join(c.text or "" for c in rest) == " second"
    assert rest[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert rest[-1].usage_metadata.candidates_token_count > 0


def test_json_array_stream_without_alt_sse(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("g").text(" second").context_usage())
    response = proxy.http.post(proxy.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent", stream=True,
                               headers={"x-goog-api-key": "gk-test"},
                               json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    received = b""
    pieces = response.iter_content(chunk_size=None)
    while b"first" not in received:
        received += next(pieces)
    assert fake.wait_gate("g", 5)
    fake.release("g")
    received += b"".join(pieces)
    documents = json.loads(received)
    texts = [p["text"] for d in documents for p in d["candidates"][0]["content"]["parts"]]
    assert texts == ["first", " second"]
    assert documents[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_function_call_round_trip(proxy, fake, api_version):
    proxy.add_account("acc-A")
    fake.queue(Script().text("Checking.").tool_use("tooluse_w1", "get_weather", '{"ci', 'ty": "Par', 'is"}')
               .context_usage())
    client = sdk(proxy, api_version)
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=MANUAL_CALLS)
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])
    first = client.models.generate_content(model="gemini-2.5-flash", contents=[question], config=config)
    (call,) = first.function_calls
    assert (call.id, call.name, call.args) == ("tooluse_w1", "get_weather", {"city": "Paris"})
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    fake.queue(text_answer("It is sunny."))
    # from_function_response sends no id: the proxy pairs the answer with the call by name.
    answer = types.Content(role="user", parts=[
        types.Part.from_function_response(name="get_weather", response={"output": "Sunny, 24C"})])
    second = client.models.generate_content(model="gemini-2.5-flash", config=config,
                                            contents=[question, first.candidates[0].content, answer])
    assert second.text == "It is sunny."
    sent = last_sent(fake)
    assert sent["history"][-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    context = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert context["toolResults"] == [{"toolUseId": "tooluse_w1", "status": "success",
                                       "content": [{"text": "Sunny, 24C"}]}]
    spec = context["tools"][0]["toolSpecification"]
    assert spec["inputSchema"]["json"] == {"type": "object", "required": ["city"],
                                           "properties": {"city": {"type": "string"}}}


def test_streamed_function_call_arrives_whole(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().tool_use("tooluse_x", "get_weather", '{"city":', ' "Rome"}').context_usage())
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=MANUAL_CALLS)
    client = sdk(proxy)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Rome?",
                                                           config=config))
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.id, c.name, c.args) for c in calls] == [("tooluse_x", "get_weather", {"city": "Rome"})]


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_image_and_system_instruction_reach_upstream(proxy, fake, api_version):
    proxy.add_account("acc-A")
    client = sdk(proxy, api_version)
    client.models.generate_content(
        model="gemini-2.5-flash", config=types.GenerateContentConfig(system_instruction="You are a pirate."),
        contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "What is this?"])
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert sent["images"] == [{"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}]
    assert sent["content"] == "You are a pirate.\n\nWhat is this?"


def test_thinking_comes_back_as_thought_parts(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("Let me ", "think.").text("The answer is 4.").context_usage())
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True,
                                                                              thinking_budget=2048))
    client = sdk(proxy)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="2+2?", config=config)
    parts = response.candidates[0].content.parts
    assert [(p.thought, p.text) for p in parts] == [(True, "Let me think."), (None, "The answer is 4.")]
    assert response.text == "The answer is 4."
    assert response.usage_metadata.thoughts_token_count > 0
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert sent["content"].startswith("<thinking_mode>enabled</thinking_mode><max_thinking_length>2048")


THINKING = types.ThinkingConfig(include_thoughts=True, thinking_budget=2048)


def reasoned_call() -> Script:
    """Native reasoning with a signature, then a function call (the order Kiro streams them in)."""
    return (Script().reasoning("Let me look.").reasoning(signature="EqQBCkYIBxgCKkDsig==")
            .tool_use("tooluse_r1", "get_weather", '{"city": "Oslo"}').context_usage())


def answer_parts(client, streaming: bool, contents, config) -> list:
    if not streaming:
        return client.models.generate_content(model="gemini-2.5-flash", contents=contents,
                                              config=config).candidates[0].content.parts
    chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=config)
    return [p for chunk in chunks for p in chunk.candidates[0].content.parts or []]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_the_thought_signature_rides_on_the_function_call(proxy, fake, streaming):
    proxy.add_account("acc-A")
    fake.queue(reasoned_call())
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=MANUAL_CALLS,
                                         thinking_config=THINKING)
    client = sdk(proxy)
    parts = answer_parts(client, streaming, "Weather in Oslo?", config)
    assert [(p.thought, p.text) for p in parts if p.thought] == [(True, "Let me look.")]
    (call,) = [p for p in parts if p.function_call]
    assert call.function_call.name == "get_weather" and call.thought_signature
    assert [p for p in parts if p.thought_signature] == [call]  # Gemini CLI drops thought parts, not calls


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("keeps_thoughts", [False, True], ids=["like-gemini-cli", "like-the-sdk"])
def test_the_replayed_turn_keeps_its_reasoning(proxy, fake, streaming, keeps_thoughts):
    proxy.add_account("acc-A")
    fake.queue(reasoned_call())
    client = sdk(proxy)
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=MANUAL_CALLS,
                                         thinking_config=THINKING)
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Oslo?")])
    parts = answer_parts(client, streaming, [question], config)
    if not keeps_thoughts:  # Gemini CLI sends its history back without the thought parts
        parts = [p for p in parts if not p.thought]
    answer = types.Content(role="user", parts=[
        types.Part.from_function_response(name="get_weather", response={"output": "Cold"})])
    fake.queue(text_answer("It is cold."))
    client.models.generate_content(model="gemini-2.5-flash", config=config,
                                   contents=[question, types.Content(role="model", parts=parts), answer])
    replayed = last_sent(fake)["history"][-1]["assistantResponseMessage"]
    assert replayed["content"] == "<thinking>Let me look.</thinking>"
    assert [u["toolUseId"] for u in replayed["toolUses"]] == ["tooluse_r1"]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
def test_thoughts_are_returned_only_with_include_thoughts(proxy, fake, streaming):
    proxy.add_account("acc-A")
    fake.queue(Script().thinking("secret ", "plan").text("The ", "answer.").context_usage())
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=2048))
    client = sdk(proxy)
    parts = answer_parts(client, streaming, "2+2?", config)
    assert not [p for p in parts if p.thought]
    assert "".join(p.text for p in parts) == "The answer."
    assert parts[0].thought_signature and not [p for p in parts[1:] if p.thought_signature]  # for the next turn
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert sent["content"].startswith("<thinking_mode>enabled</thinking_mode>")  # it did think
    fake.queue(Script().thinking("secret ", "plan").text("ok").context_usage())
    raw = proxy.http.post(proxy.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                          headers={"x-goog-api-key": "gk-test"}, json={
                              "contents": [{"parts": [{"text": "2+2?"}]}],
                              "generationConfig": {"thinkingConfig": {"thinkingBudget": 2048}}})
    assert "secret" not in raw.text and '"thought"' not in raw.text


def test_json_mode_stream_loses_its_fences(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer("```json\n", '{"score": ', "7}\n``", "`\n"))
    config = types.GenerateContentConfig(response_mime_type="application/json",
                                         response_json_schema={"type": "object"})
    client = sdk(proxy)
    chunks = list(client.models.generate_content_stream(model="gemini-3.5-flash-lite", contents="Rate it",
                                                        config=config))
    assert "".join(c.text or "" for c in chunks) == '{"score": 7}'
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_allowed_function_names_limit_the_offered_functions(proxy, fake):
    proxy.add_account("acc-A")
    declarations = [types.FunctionDeclaration(name=name, description=f"Tool {name}") for name in "abc"]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=declarations)], automatic_function_calling=MANUAL_CALLS,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["a", "b"])))
    client = sdk(proxy)
    client.models.generate_content(model="gemini-2.5-flash", contents="go", config=config)
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert [t["toolSpecification"]["name"] for t in sent["userInputMessageContext"]["tools"]] == ["a", "b"]
    assert "You must call at least one of the available tools" in sent["content"]


def test_json_mode_answer_is_clean_json(proxy, fake):
    proxy.add_account("acc-A")
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    fake.queue(text_answer('Sure:\n```json\n{"score": ', '7}\n```'))
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    client = sdk(proxy)
    response = client.models.generate_content(model="gemini-3.5-flash-lite", contents="Rate it", config=config)
    assert response.text == '{"score": 7}'
    assert response.parsed == {"score": 7}
    sent = current(fake.requests_to("/generateAssistantResponse")[-1])
    assert "Reply with a single valid JSON value" in sent["content"]
    assert json.dumps(schema, separators=(",", ":")) in sent["content"]


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_count_tokens(proxy, api_version):
    client = sdk(proxy, api_version)
    short = client.models.count_tokens(model="gemini-2.5-flash", contents="Hello there, how are you?")
    longer = client.models.count_tokens(model="gemini-2.5-flash",
                                        contents="Hello there, how are you? " + "More words here. " * 20)
    assert 3 <= short.total_tokens < 40
    assert longer.total_tokens > short.total_tokens + 40
    wrapped = proxy.http.post(proxy.url + f"/{api_version}/models/gemini-2.5-flash:countTokens",
                              headers={"x-goog-api-key": "gk-test"}, json={"generateContentRequest": {
                                  "model": "models/gemini-2.5-flash",
                                  "contents": [{"role": "user", "parts": [{"text": "Hello there, how are you?"}]}],
                                  "systemInstruction": {"parts": [{"text": "You are terse and exact."}]}}})
    assert wrapped.status_code == 200
    assert wrapped.json()["totalTokens"] > short.total_tokens
    assert wrapped.json()["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": wrapped.json()["totalTokens"]}]


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_model_list_and_get(proxy, api_version):
    client = sdk(proxy, api_version)
    names = [m.name for m in client.models.list()]
    assert "models/claude-sonnet-4.5" in names and "models/claude-haiku-4.5" in names
    one = client.models.get(model="claude-sonnet-4.5")
    assert (one.name, one.input_token_limit) == ("models/claude-sonnet-4.5", 200_000)
    assert "generateContent" in one.supported_actions
    resolved = client.models.get(model="gemini-2.5-flash")
    assert resolved.name == "models/gemini-2.5-flash" and "claude-haiku-4.5" in resolved.description


def test_model_list_pages(proxy):
    first = proxy.http.get(proxy.url + "/v1beta/models?pageSize=2", headers={"x-goog-api-key": "k"}).json()
    second = proxy.http.get(proxy.url + f"/v1beta/models?pageSize=2&pageToken={first['nextPageToken']}",
                            headers={"x-goog-api-key": "k"}).json()
    assert len(first["models"]) == 2 and len(second["models"]) == 2
    assert not {m["name"] for m in first["models"]} & {m["name"] for m in second["models"]}


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_every_account_throttled_gives_resource_exhausted(proxy, fake, api_version):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(throttled("30"), token="acc-A")
    fake.queue(throttled("30"), token="acc-B")
    client = sdk(proxy, api_version)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.details["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"


def test_failure_after_the_first_byte_raises_in_the_sdk(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("partial answer").gate("g"))  # then ends without contextUsageEvent: cut upstream
    client = sdk(proxy)
    chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    assert next(chunks).text == "partial answer"
    assert fake.wait_gate("g", 5)
    fake.release("g")
    with pytest.raises(genai_errors.ServerError) as caught:
        list(chunks)
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")


def test_client_keys_the_gemini_ways(make_proxy, fake):
    proxy = make_proxy(api_keys=["gk-good"])
    proxy.add_account("acc-A")
    client = sdk(proxy, key="gk-bad")
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    good = sdk(proxy, key="gk-good")
    assert good.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    path = proxy.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    document = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert proxy.http.post(path + "?key=gk-good", json=document).status_code == 200
    assert proxy.http.post(path + "?key=gk-bad", json=document).status_code == 401
    assert proxy.http.post(path, json=document, headers={"Authorization": "Bearer gk-good"}).status_code == 200
    assert proxy.http.post(path, json=document).json()["error"]["status"] == "UNAUTHENTICATED"
    listing = proxy.http.get(proxy.url + "/v1beta/models?key=gk-bad")
    assert (listing.status_code, listing.json()["error"]["status"]) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize("path", ["//v1beta/models/gemini-2.5-flash:generateContent",
                                  "/v1/v1beta/models/gemini-2.5-flash:generateContent",
                                  "/models/gemini-2.5-flash:generateContent",
                                  "/v1beta/models/gemini-2.5-flash%3AgenerateContent"])
def test_paths_clients_produce(proxy, path):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + path, headers={"x-goog-api-key": "gk-test"},
                               json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "Hello from fake Kiro"}]


def test_sdk_with_a_version_in_its_base_url(proxy):
    proxy.add_account("acc-A")
    client = sdk(proxy, base_url=proxy.url + "/v1")
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text == "Hello from fake Kiro"


@pytest.mark.parametrize("path, document, status, canonical, fragment", [
    ("gemini-2.5-flash:generateContent", {"contents": []}, 400, "INVALID_ARGUMENT", "contents"),
    ("gemini-2.5-flash:generateContent", {"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, 400,
     "INVALID_ARGUMENT", "contents.0.role"),
    ("gemini-2.5-flash:generateContent", {"contents": [{"role": ["user"], "parts": [{"text": "x"}]}]}, 400,
     "INVALID_ARGUMENT", "contents.0.role"),
    ("gemini-2.5-flash:countTokens", {"contents": [{"role": {"r": 1}, "parts": [{"text": "x"}]}]}, 400,
     "INVALID_ARGUMENT", "contents.0.role"),
    ("gemini-2.5-flash:generateContent", {"contents": [{"parts": [
        {"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": "!!!notbase64"}}]}]}, 400,
     "INVALID_ARGUMENT", "contents.0.parts.1.inlineData.data: the image data is not valid base64"),
    ("llama-3-70b:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, 404, "NOT_FOUND", "claude-sonnet-4.5"),
    ("gemini-2.5-flash:embedContent", {"content": {"parts": [{"text": "x"}]}}, 404, "NOT_FOUND", "embedContent"),
])
def test_errors_in_gemini_shape(proxy, path, document, status, canonical, fragment):
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1beta/models/" + path, json=document,
                               headers={"x-goog-api-key": "gk-test"})
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, canonical)
    assert fragment in error["message"]


def test_fake_routes_answer_matching_requests_before_the_queue(proxy, fake):
    """The route hook the Gemini CLI test relies on, checked without the CLI."""
    proxy.add_account("acc-A")
    fake.route(lambda recorded: b"complexity_score" in recorded.body, text_answer('{"complexity_score": 1}'))
    fake.queue(text_answer("main answer"))
    client = sdk(proxy)
    routed = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema={
        "type": "object", "properties": {"complexity_score": {"type": "integer"}}})
    for _ in range(2):
        assert client.models.generate_content(model="gemini-2.5-flash", contents="rate", config=routed).parsed == {
            "complexity_score": 1}
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text == "main answer"


@pytest.mark.parametrize("path", ["/v1beta/models/gemini-2.5-flash:generateContent",
                                  "/v1/models/gemini-2.5-flash:streamGenerateContent",
                                  "/v1beta/models/models/gemini-2.5-flash:countTokens"])
def test_get_on_a_method_is_405_in_gemini_shape(proxy, path):
    response = proxy.http.get(proxy.url + path, headers={"x-goog-api-key": "gk-test"})
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    error = response.json()["error"]
    assert error["code"] == 405 and "POST" in error["message"]
    model = proxy.http.get(proxy.url + "/v1beta/models/gemini-2.5-flash", headers={"x-goog-api-key": "gk-test"})
    assert (model.status_code, model.json()["name"]) == (200, "models/gemini-2.5-flash")


def test_image_base64_is_checked_and_sent_upstream_in_standard_form(proxy, fake):
    proxy.add_account("acc-A")
    standard = base64.b64encode(PNG).decode()
    urlsafe = base64.urlsafe_b64encode(PNG).decode().rstrip("=")
    response = proxy.http.post(proxy.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                               headers={"x-goog-api-key": "gk-test"}, json={"contents": [{"parts": [
                                   {"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": urlsafe}}]}]})
    assert response.status_code == 200, response.text
    assert current(fake.requests_to("/generateAssistantResponse")[-1])["images"] == [
        {"format": "png", "source": {"bytes": standard}}]
