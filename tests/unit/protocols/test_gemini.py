"""Tests for protocols.gemini: golden parse and stream fixtures, render, JSON repair, errors, names.

Goldens live in tests/golden/gemini and change only with KIROPROXY_UPDATE_GOLDEN=1. Every stream
golden is also read back independently (SSE frames and the JSON array must carry the same
documents), validated with google-genai's own types, and replayed through the SDK offline.
"""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, Iterator, List, Optional

import pytest

from kiroproxy import chat, errors
from kiroproxy.kiro import errors as kiro_errors
from kiroproxy.protocols import gemini as proto
from kiroproxy.protocols import gemini_thoughts, gemini_tools
from tests.golden import Goldens, events_from_json, proxy_errors, to_json

pytest.importorskip("google.genai", reason="the official SDKs need Python 3.10 or newer")

import httpx2  # noqa: E402
from google import genai  # noqa: E402
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types  # noqa: E402

GOLDEN = Goldens("gemini")
PARSE_CASES = [
    "plain_text", "no_role", "snake_case", "multi_turn", "media", "function_ids_missing", "thought_signatures",
    "tools_openapi", "tool_config_any_one", "tool_config_any", "tool_config_validated", "thinking_dynamic",
    "thinking_budget", "thinking_level", "thinking_hidden", "json_schema_response", "json_mode_plain",
    "json_not_requested", "gemini_cli_router", "gemini_cli_tool_loop",
]
ENCODE_CASES = [
    "text_only", "thinking_signature", "signature_not_base64", "tool_calls", "heartbeat", "max_tokens",
    "stop_sequence", "refusal", "error_mid_stream", "thoughts_hidden", "thought_then_call", "thinking_only",
    "json_fences",
]
# Encoder options per case; the others show thoughts, as Gemini CLI asks (includeThoughts: true).
OPTIONS = {"thoughts_hidden": {}, "json_fences": {"json_mode": True}}
MODEL = "gemini-2.5-flash"
RESPONSE_ID = "GoldenResponseId01"
INPUT_TOKENS = 321
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAaJPXQAAAABJRU5ErkJggg=="


def body(*texts: str, **extra: Any) -> Dict[str, Any]:
    """A generateContent body: alternating user/model text contents plus top-level fields."""
    contents = [{"role": "user" if i % 2 == 0 else "model", "parts": [{"text": t}]}
                for i, t in enumerate(texts or ("hi",))]
    return {"contents": contents, **extra}


def parse(document: Any, **kw: Any) -> chat.ChatRequest:
    return proto.parse(document, model=kw.pop("model", MODEL), stream=kw.pop("stream", False), **kw)


def stream_of(items: List[Dict[str, Any]], **kw: Any) -> chat.Stream:
    return chat.Stream(events_from_json(items), model="claude-sonnet-4.5", input_tokens=INPUT_TOKENS, **kw)


def options(case: str) -> Dict[str, Any]:
    return OPTIONS.get(case, {"include_thoughts": True})


def encode_sse(items: List[Dict[str, Any]], **kw: Any) -> bytes:
    return b"".join(proto.encode_sse(stream_of(items), model=MODEL, response_id=RESPONSE_ID, **kw))


def encode_array(items: List[Dict[str, Any]], **kw: Any) -> bytes:
    return b"".join(proto.encode_json_array(stream_of(items), model=MODEL, response_id=RESPONSE_ID, **kw))


def sse_documents(raw: bytes) -> List[Optional[Dict[str, Any]]]:
    """Documents of an SSE body, None per keep-alive blank line. Asserts the framing: `data:` frames
    only (no event lines, no [DONE]); an error appears as a bare JSON line and then as a frame."""
    text = raw.decode("utf-8")
    out: List[Optional[Dict[str, Any]]] = []
    while text:
        if text.startswith("\n"):
            out.append(None)
            text = text[1:]
            continue
        frame, separator, text = text.partition("\n\n")
        assert separator and "\n" not in frame, frame
        if frame.startswith("data: "):
            out.append(json.loads(frame[len("data: "):]))
        else:
            bare = json.loads(frame)
            assert set(bare) == {"error"}
            frame, _, text = text.partition("\n\n")
            assert json.loads(frame[len("data: "):]) == bare and not text
            out.append(bare)
    return out


def merged_parts(documents: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The stream's parts joined the way Gemini CLI joins them: a text continues the text before it
    when both are thoughts or both are not, unless it carries a signature of its own."""
    parts: List[Dict[str, Any]] = []
    for document in documents:
        for part in document["candidates"][0]["content"]["parts"]:
            last = parts[-1] if parts else None
            same_kind = last is not None and "text" in last and "text" in part and \
                bool(last.get("thought")) == bool(part.get("thought")) and "thoughtSignature" not in part
            if same_kind:
                parts[-1] = {**last, "text": last["text"] + part["text"]}
            else:
                parts.append(dict(part))
    return parts


# ----- parse goldens ---------------------------------------------------------------------------


def test_every_golden_file_belongs_to_a_case():
    assert GOLDEN.cases() == set(PARSE_CASES) | set(ENCODE_CASES)


@pytest.mark.parametrize("case", PARSE_CASES)
def test_parse_golden(case):
    document = GOLDEN.request(case)
    actual = to_json(parse(document, stream=case.startswith("gemini_cli_tool"))).encode("utf-8")
    assert actual.decode("utf-8") == GOLDEN.stored(f"{case}.chat.json", actual).decode("utf-8")


def test_snake_case_means_the_same_as_camel_case():
    camel = {"systemInstruction": {"parts": [{"text": "S"}]},
             "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}],
             "generationConfig": {"maxOutputTokens": 9, "stopSequences": ["X"],
                                  "thinkingConfig": {"thinkingBudget": 2000},
                                  "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}},
             "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
             "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}]}
    snake = {"system_instruction": {"parts": [{"text": "S"}]},
             "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}],
             "generation_config": {"max_output_tokens": 9, "stop_sequences": ["X"],
                                   "thinking_config": {"thinking_budget": 2000},
                                   "response_mime_type": "application/json",
                                   "response_json_schema": {"type": "object"}},
             "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}},
             "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": {"type": "object"}}]}]}
    expected = chat.ChatRequest(
        model=MODEL, messages=(chat.Message("user", (chat.Image("image/png", PNG),)),), system="S",
        tools=(chat.Tool("f", "", {"type": "object"}),), tool_choice=chat.ToolChoice("tool", "f"), max_tokens=9,
        stop=("X",), thinking=chat.ThinkingConfig("enabled", budget=2000),
        response_format=chat.ResponseFormat(schema={"type": "object"}))
    assert parse(camel) == expected
    assert parse(snake) == expected


def test_function_responses_without_ids_pair_with_their_calls():
    request = parse(GOLDEN.request("function_ids_missing"))
    calls = [p for p in request.messages[1].parts if isinstance(p, chat.ToolUse)]
    results = [p for p in request.messages[2].parts if isinstance(p, chat.ToolResult)]
    by_call = {call.id: call.input for call in calls}
    assert len(set(by_call)) == 3
    # get_time first, then the two get_weather answers in call order, then one that answers nothing.
    assert [by_call.get(r.tool_use_id) for r in results] == [{}, {"city": "Paris"}, {"city": "Rome"}, None]
    assert [r.is_error for r in results] == [False, False, True, False]
    assert [r.text for r in results] == ["12:00", '{"temp":24}', "no data for Rome", "?"]


def test_generated_call_ids_are_stable_across_turns():
    first = body("q", tools=[{"functionDeclarations": [{"name": "f"}]}])
    first["contents"].append({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]})
    first["contents"].append({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]})
    later = json.loads(json.dumps(first))
    later["contents"] += [{"role": "model", "parts": [{"text": "ok"}]}, {"role": "user", "parts": [{"text": "again"}]}]
    ids = [[p.tool_use_id if isinstance(p, chat.ToolResult) else p.id for m in parse(d).messages for p in m.parts
            if isinstance(p, (chat.ToolUse, chat.ToolResult))] for d in (first, later)]
    assert ids[0] == ids[1] and ids[0][0] == ids[0][1]


def test_a_response_does_not_pair_with_a_call_from_an_earlier_model_turn():
    document = body("q", tools=[{"functionDeclarations": [{"name": "f"}]}])
    document["contents"] += [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"n": 1}}}]},
        {"role": "user", "parts": [{"text": "never mind"}]},
        {"role": "model", "parts": [{"text": "ok"}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "late"}}}]}]
    messages = parse(document).messages
    (call,) = [p for p in messages[1].parts if isinstance(p, chat.ToolUse)]
    (result,) = [p for p in messages[-1].parts if isinstance(p, chat.ToolResult)]
    assert result.tool_use_id != call.id


@pytest.mark.parametrize("config, expected", [
    ({"thinkingBudget": 0, "includeThoughts": True}, None),
    ({"thinkingBudget": -1}, chat.ThinkingConfig("adaptive")),
    ({"includeThoughts": True}, chat.ThinkingConfig("adaptive")),
    ({"includeThoughts": False}, None),
    ({"thinkingBudget": 1024}, chat.ThinkingConfig("enabled", budget=1024)),
    ({"thinkingLevel": "HIGH", "includeThoughts": True}, chat.ThinkingConfig("adaptive", effort="high")),
    ({"thinkingLevel": "minimal"}, chat.ThinkingConfig("adaptive", effort="minimal")),
    ({"thinkingLevel": "THINKING_LEVEL_UNSPECIFIED", "thinkingBudget": 500},
     chat.ThinkingConfig("enabled", budget=500)),
    ({}, None),
])
def test_thinking_config(config, expected):
    assert parse(body(generationConfig={"thinkingConfig": config})).thinking == expected


@pytest.mark.parametrize("calling, expected", [
    ({"mode": "AUTO"}, chat.ToolChoice()),
    ({"mode": "auto", "allowedFunctionNames": ["a"]}, chat.ToolChoice()),
    ({"mode": "VALIDATED"}, chat.ToolChoice()),
    ({"mode": "NONE"}, chat.ToolChoice("none")),
    ({"mode": "ANY"}, chat.ToolChoice("required")),
    ({"mode": "ANY", "allowedFunctionNames": ["b"]}, chat.ToolChoice("tool", "b")),
    ({"mode": "ANY", "allowedFunctionNames": ["a", "b"]}, chat.ToolChoice("required")),
    ({}, chat.ToolChoice()),
])
def test_function_calling_modes(calling, expected):
    document = body(tools=[{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
                    toolConfig={"functionCallingConfig": calling})
    assert parse(document).tool_choice == expected


def test_openapi_schema_becomes_json_schema():
    legacy = {"type": "OBJECT", "nullable": True, "propertyOrdering": ["a"], "required": ["a"], "properties": {
        "a": {"type": "STRING", "format": "date-time", "enum": ["x", "y"], "nullable": True},
        "type": {"type": "ARRAY", "max_items": 2, "items": {"type": "INTEGER"}},
        "nullable": {"any_of": [{"type": "NUMBER"}, {"type": "BOOLEAN"}], "nullable": True}}}
    assert gemini_tools.json_schema(legacy) == {
        "type": ["object", "null"], "required": ["a"], "properties": {
            "a": {"type": ["string", "null"], "format": "date-time", "enum": ["x", "y", None]},
            "type": {"type": "array", "maxItems": 2, "items": {"type": "integer"}},
            "nullable": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]}}}


def test_plain_json_schema_is_kept_except_upper_case_types():
    plain = {"type": "OBJECT", "additionalProperties": False, "$defs": {"x": {"type": "STRING"}},
             "properties": {"k": {"type": ["INTEGER", "null"], "enum": ["OBJECT"], "default": {"type": "OBJECT"}}}}
    tool = parse(body(tools=[{"functionDeclarations": [{"name": "t", "parametersJsonSchema": plain}]}])).tools[0]
    assert tool.schema == {"type": "object", "additionalProperties": False, "$defs": {"x": {"type": "string"}},
                           "properties": {"k": {"type": ["integer", "null"], "enum": ["OBJECT"],
                                                "default": {"type": "OBJECT"}}}}


@pytest.mark.parametrize("config, schema", [
    ({"responseMimeType": "application/json", "responseJsonSchema": {"type": "OBJECT"}}, {"type": "object"}),
    ({"responseMimeType": "application/json", "responseSchema": {"type": "STRING", "nullable": True}},
     {"type": ["string", "null"]}),
    ({"responseSchema": {"type": "INTEGER"}}, {"type": "integer"}),
    ({"responseMimeType": "APPLICATION/JSON"}, None),
])
def test_json_mode(config, schema):
    assert parse(body(generationConfig=config)).response_format == chat.ResponseFormat(schema=schema)


@pytest.mark.parametrize("config", [{}, {"responseMimeType": "text/plain"},
                                    {"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING"}}])
def test_no_json_mode(config):
    assert parse(body(generationConfig=config)).response_format is None


def test_stream_flag_and_model_prefix():
    request = proto.parse(body(), model="models/gemini-3.8-flash", stream=True)
    assert (request.model, request.stream) == ("gemini-3.8-flash", True)


def test_count_accepts_contents_or_a_generate_content_request():
    inner = body("count me", systemInstruction={"parts": [{"text": "sys"}]},
                 generationConfig={"maxOutputTokens": 5})
    wrapped = proto.parse_count({"generateContentRequest": {"model": "models/other", **inner}}, model=MODEL)
    plain = proto.parse_count(inner, model=MODEL)
    assert wrapped == plain
    assert (plain.system, plain.stream, plain.messages[0].text) == ("sys", False, "count me")
    assert proto.parse_count({"contents": []}, model=MODEL).messages == ()
    assert proto.parse_count({}, model=MODEL).messages == ()


REJECTIONS = [
    ([], "the request body"),
    ({}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": {"parts": [{"text": "x"}]}}, "contents"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents"),
    ({"contents": ["hi"]}, "contents.0"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "contents.0.role"),
    ({"contents": [{"parts": "hi"}]}, "contents.0.parts"),
    ({"contents": [{"parts": ["hi"]}]}, "contents.0.parts.0"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png"}}]}]}, "contents.0.parts.0.inlineData.data"),
    ({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]}, "contents.0.parts.0.functionCall"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
     "contents.0.parts.0.functionCall.name"),
    ({"contents": [{"role": "model", "parts": [{"functionResponse": {"name": "f"}}]}]},
     "contents.0.parts.0.functionResponse"),
    ({"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]}, "contents.0.parts.0.functionResponse.name"),
    (body(systemInstruction=5), "systemInstruction"),
    (body(tools="f"), "tools"),
    (body(tools=["f"]), "tools.0"),
    (body(tools=[{"functionDeclarations": {"name": "f"}}]), "tools.0.functionDeclarations"),
    (body(tools=[{"functionDeclarations": [{"description": "no name"}]}]), "tools.0.functionDeclarations.0.name"),
    (body(tools=[{"functionDeclarations": ["f"]}]), "tools.0.functionDeclarations.0"),
    (body(tools=[{"functionDeclarations": [{"name": "f", "parameters": "x"}]}]),
     "tools.0.functionDeclarations.0.parameters"),
    (body(tools=[{"functionDeclarations": [{"name": "f", "parametersJsonSchema": []}]}]),
     "tools.0.functionDeclarations.0.parametersJsonSchema"),
    (body(toolConfig={"functionCallingConfig": {"mode": "SOMETIMES"}}), "toolConfig.functionCallingConfig.mode"),
    (body(generationConfig=[]), "generationConfig"),
    (body(generationConfig={"maxOutputTokens": 0}), "generationConfig.maxOutputTokens"),
    (body(generationConfig={"maxOutputTokens": "9"}), "generationConfig.maxOutputTokens"),
    (body(generationConfig={"temperature": "hot"}), "generationConfig.temperature"),
    (body(generationConfig={"stopSequences": "END"}), "generationConfig.stopSequences"),
    (body(generationConfig={"candidateCount": 2}), "generationConfig.candidateCount"),
    (body(cachedContent="cachedContents/abc"), "cachedContent"),
]


@pytest.mark.parametrize("document, where", REJECTIONS, ids=[f"{i}-{r[1]}" for i, r in enumerate(REJECTIONS)])
def test_parse_rejects_naming_the_field(document, where):
    with pytest.raises(errors.BadRequest) as info:
        parse(document)
    assert str(info.value).startswith(where + (" " if where == "the request body" else ":")), str(info.value)
    status, error, _ = proto.error_body(info.value)
    assert (status, error["error"]["status"]) == (400, "INVALID_ARGUMENT")


# ----- stream goldens --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_sse_golden(case):
    actual = encode_sse(GOLDEN.events(case), **options(case))
    assert actual == GOLDEN.stored(f"{case}.sse", actual)
    assert b"event:" not in actual and b"[DONE]" not in actual


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_json_array_golden(case):
    actual = encode_array(GOLDEN.events(case), **options(case))
    assert actual == GOLDEN.stored(f"{case}.json-array", actual)
    assert actual.startswith(b"[") and actual.endswith(b"]")


@pytest.mark.parametrize("case", ENCODE_CASES)
def test_both_stream_shapes_carry_the_same_documents(case):
    from_sse = [d for d in sse_documents(encode_sse(GOLDEN.events(case), **options(case))) if d is not None]
    assert json.loads(encode_array(GOLDEN.events(case), **options(case))) == from_sse


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_every_chunk_validates_and_only_the_last_finishes(case):
    documents = [d for d in sse_documents(encode_sse(GOLDEN.events(case), **options(case))) if d is not None]
    for document in documents:
        parsed = types.GenerateContentResponse.model_validate(document)
        assert (parsed.model_version, parsed.response_id) == (MODEL, RESPONSE_ID)
    finished = ["finishReason" in d["candidates"][0] for d in documents]
    assert finished == [False] * (len(documents) - 1) + [True]
    assert ["usageMetadata" in d for d in documents] == finished


@pytest.mark.parametrize("case", [c for c in ENCODE_CASES if c != "error_mid_stream"])
def test_stream_replays_to_the_non_streaming_render(case):
    documents = [d for d in sse_documents(encode_sse(GOLDEN.events(case), **options(case))) if d is not None]
    rendered = proto.render(chat.collect(stream_of(GOLDEN.events(case))), model=MODEL, response_id=RESPONSE_ID,
                            **options(case))
    candidate = rendered["candidates"][0]
    assert merged_parts(documents) == candidate["content"]["parts"]
    assert documents[-1]["candidates"][0]["finishReason"] == candidate["finishReason"]
    assert documents[-1]["usageMetadata"] == rendered["usageMetadata"]


def test_tool_calls_arrive_whole_one_per_chunk():
    documents = [d for d in sse_documents(encode_sse(GOLDEN.events("tool_calls"))) if d is not None]
    assert [d["candidates"][0]["content"]["parts"] for d in documents[:-1]] == [
        [{"text": "Reading both."}],
        [{"functionCall": {"id": "toolu_01A", "name": "read_file", "args": {"file_path": "/a.py"}}}],
        [{"functionCall": {"id": "toolu_01B", "name": "grep_search", "args": {"pattern": 'fo"o'}}}]]
    final = documents[-1]
    assert final["candidates"][0]["finishReason"] == "STOP"
    assert final["usageMetadata"] == {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": 30,
                                      "totalTokenCount": INPUT_TOKENS + 30, "thoughtsTokenCount": 0,
                                      "cachedContentTokenCount": 100}


def test_chunks_leave_before_the_next_event_is_read():
    pulled: List[chat.Event] = []

    def source() -> Iterator[chat.Event]:
        for event in events_from_json(GOLDEN.events("tool_calls")):
            pulled.append(event)
            yield event

    chunks = proto.encode_sse(chat.Stream(source(), model=MODEL), model=MODEL, response_id=RESPONSE_ID)
    assert b"Reading both." in next(chunks) and pulled[-1] == chat.TextDelta("Reading both.")
    assert b"toolu_01A" in next(chunks)
    # The client may run the tool at once, so the call must not wait for the next event.
    assert pulled[-1] == chat.ToolCallEnd("toolu_01A", {"file_path": "/a.py"})
    chunks.close()


def test_heartbeats_are_blank_lines_in_both_shapes():
    sse = sse_documents(encode_sse(GOLDEN.events("heartbeat")))
    assert [d if d is None else d["candidates"][0]["content"]["parts"] for d in sse[:-1]] == [
        None, [{"text": "a"}], None, None, [{"text": "b"}]]
    array = encode_array(GOLDEN.events("heartbeat"))
    assert array.count(b"\n") == 3 + 2  # three keep-alives, two separators
    assert array.startswith(b"[\n{")


@pytest.mark.parametrize("case, finish, counts", [
    ("max_tokens", "MAX_TOKENS", (INPUT_TOKENS, 16, 0)),
    ("stop_sequence", "STOP", (INPUT_TOKENS, 6, 0)),
    ("refusal", "SAFETY", (INPUT_TOKENS, 0, 0)),
    ("thinking_signature", "STOP", (400, 5, 15)),
])
def test_finish_reasons_and_usage(case, finish, counts):
    final = [d for d in sse_documents(encode_sse(GOLDEN.events(case), **options(case))) if d is not None][-1]
    usage = final["usageMetadata"]
    assert final["candidates"][0]["finishReason"] == finish
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["thoughtsTokenCount"]) == counts
    assert usage["totalTokenCount"] == sum(counts)


@pytest.mark.parametrize("encode", [proto.encode_sse, proto.encode_json_array])
def test_stream_error_is_the_last_document_and_the_stream_is_closed(encode):
    closed: List[bool] = []
    stream = stream_of(GOLDEN.events("error_mid_stream"), on_close=lambda: closed.append(True))
    raw = b"".join(encode(stream, model=MODEL, response_id=RESPONSE_ID))
    documents = sse_documents(raw) if encode is proto.encode_sse else json.loads(raw)
    assert documents[0]["candidates"][0]["content"]["parts"] == [{"text": "Partial"}]
    assert documents[-1] == {"error": {"code": 503, "message": "the upstream stream ended early",
                                       "status": "UNAVAILABLE"}}
    assert len(documents) == 2 and closed == [True]


@pytest.mark.parametrize("encode", [proto.encode_sse, proto.encode_json_array])
@pytest.mark.parametrize("chunks_read", [1, 2])
def test_a_client_that_stops_reading_closes_the_stream(encode, chunks_read):
    closed: List[bool] = []
    stream = stream_of(GOLDEN.events("text_only"), on_close=lambda: closed.append(True))
    chunks = encode(stream, model=MODEL, response_id=RESPONSE_ID)
    for _ in range(chunks_read):
        next(chunks)
    chunks.close()
    assert closed == [True] and stream.closed


# ----- the official SDK reads what we write ------------------------------------------------------


def sdk_chunks(raw: bytes) -> List[types.GenerateContentResponse]:
    """What google-genai's generate_content_stream yields for `raw` as the SSE body (offline)."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params.get("alt") == "sse"
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = genai.Client(api_key="gk-test", http_options=types.HttpOptions(
            base_url="http://sdk.invalid", httpx_client=http))
        return list(client.models.generate_content_stream(model=MODEL, contents="hi"))


def test_sdk_reads_the_tool_call_stream():
    chunks = sdk_chunks(encode_sse(GOLDEN.events("tool_calls")))
    calls = [c.function_calls[0] for c in chunks if c.function_calls]
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("toolu_01A", "read_file", {"file_path": "/a.py"}), ("toolu_01B", "grep_search", {"pattern": 'fo"o'})]
    assert chunks[0].text == "Reading both."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.cached_content_token_count == 100


def test_sdk_reads_thoughts_and_the_signature_on_the_answer():
    chunks = sdk_chunks(encode_sse(GOLDEN.events("thinking_signature"), include_thoughts=True) + encode_sse(
        GOLDEN.events("signature_not_base64"), include_thoughts=True))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    assert "".join(p.text for p in parts if p.thought) == "Let me think.hmm"
    signed = [p for p in parts if p.thought_signature]
    assert [(p.thought, p.text) for p in signed] == [(None, "It is 4."), (None, "Done.")]
    # The SDK holds the signature as bytes; sent back, they carry the reasoning and Kiro's signature.
    carried = [gemini_thoughts.thought_in(base64.urlsafe_b64encode(p.thought_signature).decode()) for p in signed]
    assert carried == [chat.Thinking("Let me think.", "EqQBCkYIBxgCKkDsig=="),
                       chat.Thinking("hmm", "sig with spaces & symbols!")]


def test_sdk_reads_past_keepalives():
    assert "".join(c.text or "" for c in sdk_chunks(encode_sse(GOLDEN.events("heartbeat")))) == "ab"


def test_sse_comments_would_break_the_sdk():
    """Why keep-alives are blank lines: google-genai parses a `: comment` line as JSON."""
    with pytest.raises(genai_errors.UnknownApiResponseError):
        sdk_chunks(b": keepalive\n\n" + encode_sse(GOLDEN.events("text_only")))


def test_sdk_raises_the_stream_error():
    with pytest.raises(genai_errors.ServerError) as info:
        sdk_chunks(encode_sse(GOLDEN.events("error_mid_stream")))
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    assert info.value.message == "the upstream stream ended early"


# ----- render ----------------------------------------------------------------------------------


def test_render_a_full_reply():
    reply = chat.Reply(model="ignored", finish="tool_use",
                       usage=chat.Usage(input_tokens=12, output_tokens=9, reasoning_tokens=4),
                       parts=[chat.Thinking("hmm", "EqQBCkYIBxgCKkDsig=="), chat.Thinking("more"), chat.Text(""),
                              chat.Text("Hi"), chat.ToolUse("call_1", "read_file", {"file_path": "/x"})])
    document = proto.render(reply, model="gemini-3.8-flash", response_id="r1", include_thoughts=True)
    signature = document["candidates"][0]["content"]["parts"][2].pop("thoughtSignature")
    assert gemini_thoughts.thought_in(signature) == chat.Thinking("hmm\n\nmore", "EqQBCkYIBxgCKkDsig==")
    assert document == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hmm", "thought": True}, {"text": "more", "thought": True}, {"text": "Hi"},
            {"functionCall": {"id": "call_1", "name": "read_file", "args": {"file_path": "/x"}}}]},
            "index": 0, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 21,
                          "thoughtsTokenCount": 4},
        "modelVersion": "gemini-3.8-flash", "responseId": "r1"}
    parsed = types.GenerateContentResponse.model_validate(document)
    assert parsed.function_calls[0].args == {"file_path": "/x"} and parsed.text == "Hi"


def test_render_hides_thoughts_unless_asked_but_signs_the_part_after_them():
    reply = chat.Reply(model=MODEL, parts=[chat.Thinking("secret plan", "sig-1"), chat.ToolUse("c1", "f", {}),
                                           chat.Text("after")])
    parts = proto.render(reply, model=MODEL)["candidates"][0]["content"]["parts"]
    signature = parts[0].pop("thoughtSignature")
    assert parts == [{"functionCall": {"id": "c1", "name": "f", "args": {}}}, {"text": "after"}]
    assert gemini_thoughts.thought_in(signature) == chat.Thinking("secret plan", "sig-1")
    shown = proto.render(reply, model=MODEL, include_thoughts=True)["candidates"][0]["content"]["parts"]
    assert shown[0] == {"text": "secret plan", "thought": True} and "thoughtSignature" in shown[1]


@pytest.mark.parametrize("finish, expected", [
    ("end_turn", "STOP"), ("tool_use", "STOP"), ("stop_sequence", "STOP"), ("max_tokens", "MAX_TOKENS"),
    ("refusal", "SAFETY"), ("something_new", "OTHER")])
def test_render_finish_reasons(finish, expected):
    document = proto.render(chat.Reply(model=MODEL, finish=finish), model=MODEL)
    assert document["candidates"][0]["finishReason"] == expected
    assert len(document["responseId"]) >= 16 and document["responseId"] != proto.render(
        chat.Reply(model=MODEL), model=MODEL)["responseId"]
    types.GenerateContentResponse.model_validate(document)


FENCED = 'Here you go:\n```json\n{"complexity_reasoning": "easy", "complexity_score": 5}\n```\nAnything else?'


@pytest.mark.parametrize("text, expected", [
    (FENCED, '{"complexity_reasoning": "easy", "complexity_score": 5}'),
    ('```\n[1, 2]\n```', "[1, 2]"),
    ('Sure! {"a": {"b": "}"}} is the answer.', '{"a": {"b": "}"}}'),
    ('Result: [ {"x": 1} ] done', '[ {"x": 1} ]'),
    ('Not {valid then {"ok": true}', '{"ok": true}'),
    ('```json\n{"broken": \n```\nbut here: {"fine": 1}', '{"fine": 1}'),
])
def test_json_mode_cuts_the_json_out_of_prose(text, expected):
    reply = chat.Reply(model=MODEL, parts=[chat.Thinking("t"), chat.Text(text)])
    parts = proto.render(reply, model=MODEL, json_mode=True, include_thoughts=True)["candidates"][0]["content"]["parts"]
    assert [p.get("text") for p in parts] == ["t", expected] and "thoughtSignature" in parts[1]
    assert json.loads(parts[1]["text"]) == json.loads(expected)


@pytest.mark.parametrize("text", ['{"already": "json"}', "  [1]\n", '"a string"', "42", "no json at all",
                                  "only {broken"])
def test_json_mode_leaves_valid_json_and_json_free_text_alone(text):
    reply = chat.Reply(model=MODEL, parts=[chat.Text(text)])
    assert proto.render(reply, model=MODEL, json_mode=True)["candidates"][0]["content"]["parts"] == [{"text": text}]


def test_json_mode_joins_split_text_around_a_call_and_keeps_the_call():
    reply = chat.Reply(model=MODEL, parts=[chat.Text('```json\n{"a"'), chat.ToolUse("c1", "f", {}),
                                           chat.Text(': 1}\n```')])
    parts = proto.render(reply, model=MODEL, json_mode=True)["candidates"][0]["content"]["parts"]
    assert parts == [{"text": '{"a": 1}'}, {"functionCall": {"id": "c1", "name": "f", "args": {}}}]


def test_without_json_mode_fenced_text_is_untouched():
    reply = chat.Reply(model=MODEL, parts=[chat.Text(FENCED)])
    assert proto.render(reply, model=MODEL)["candidates"][0]["content"]["parts"] == [{"text": FENCED}]


# ----- model names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, role", [
    ("gemini-3.5-flash-lite", "fast"), ("gemini-3.8-flash", "fast"), ("gemini-2.0-flash-lite-001", "fast"),
    ("gemini-1.5-flash-8b", "fast"), ("models/gemini-2.5-flash", "fast"), ("gemini-3.1-pro-preview", "default"),
    ("gemini-2.5-pro", "default"), ("gemini-exp-1206", "default"), ("gemini-flashy-9", "default"),
    ("gemma-3-27b", None), ("claude-sonnet-4.5", None), ("gpt-4o", None), ("flash", None), ("gemini", None)])
def test_model_rule(name, role):
    assert proto.model_rule(name) == role


# ----- errors ----------------------------------------------------------------------------------

ERROR_TABLE = {
    errors.ProxyError: (500, "INTERNAL"),
    errors.BadRequest: (400, "INVALID_ARGUMENT"),
    errors.Unauthorized: (401, "UNAUTHENTICATED"),
    errors.Forbidden: (403, "PERMISSION_DENIED"),
    errors.NotFound: (404, "NOT_FOUND"),
    errors.ModelNotFound: (404, "NOT_FOUND"),
    errors.TooLarge: (400, "INVALID_ARGUMENT"),
    errors.RateLimited: (429, "RESOURCE_EXHAUSTED"),
    errors.QuotaExhausted: (429, "RESOURCE_EXHAUSTED"),
    errors.Overloaded: (503, "UNAVAILABLE"),
    errors.Unavailable: (503, "UNAVAILABLE"),
    errors.ShuttingDown: (503, "UNAVAILABLE"),
    errors.UpstreamError: (503, "UNAVAILABLE"),
    errors.UpstreamTimeout: (504, "DEADLINE_EXCEEDED"),
    errors.Truncated: (503, "UNAVAILABLE"),
}


def test_error_table_covers_every_proxy_error():
    assert proxy_errors() == set(ERROR_TABLE)


@pytest.mark.parametrize("cls", list(ERROR_TABLE), ids=lambda cls: cls.__name__)
def test_error_body(cls):
    status, document, headers = proto.error_body(cls("it went wrong"))
    assert (status, document["error"]["status"]) == ERROR_TABLE[cls]
    assert document == {"error": {"code": status, "message": "it went wrong", "status": ERROR_TABLE[cls][1]}}
    assert headers == {}
    sdk_error = genai_errors.APIError(status, document)
    assert (sdk_error.code, sdk_error.status, sdk_error.message) == (status, ERROR_TABLE[cls][1], "it went wrong")


@pytest.mark.parametrize("status, expected", [(405, (405, "INVALID_ARGUMENT")), (413, (413, "INVALID_ARGUMENT")),
                                              (409, (409, "ABORTED")), (507, (507, "INTERNAL"))])
def test_other_statuses_keep_their_code(status, expected):
    code, document, _ = proto.error_body(errors.ProxyError("x", status=status, kind="other"))
    assert (code, document["error"]["status"]) == expected


@pytest.mark.parametrize("retry_after, seconds", [(7.4, 7), (0.2, 1), (30, 30)])
def test_rate_limit_sends_retry_after_and_retry_info(retry_after, seconds):
    status, document, headers = proto.error_body(errors.RateLimited("slow down", retry_after=retry_after))
    assert (status, headers) == (429, {"retry-after": str(seconds)})
    assert document["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                             "retryDelay": f"{seconds}s"}]


@pytest.mark.parametrize("status, upstream_body, expected", [
    (500, "", (503, "UNAVAILABLE")),
    (429, "{}", (429, "RESOURCE_EXHAUSTED")),
    (402, '{"reason": "MONTHLY_REQUEST_COUNT"}', (429, "RESOURCE_EXHAUSTED")),
    (400, '{"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}', (400, "INVALID_ARGUMENT")),
    (403, '{"message": "The bearer token included in the request is invalid."}', (503, "UNAVAILABLE")),
    (400, '{"message": "Improperly formed request."}', (400, "INVALID_ARGUMENT")),
    (503, '{"reason": "INSUFFICIENT_MODEL_CAPACITY"}', (503, "UNAVAILABLE")),
])
def test_upstream_failures_render_as_gemini_errors(status, upstream_body, expected):
    code, document, _ = proto.error_body(kiro_errors.classify(status, upstream_body))
    assert (code, document["error"]["status"]) == expected
