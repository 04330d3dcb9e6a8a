"""Tests of the fake Kiro upstream itself, driven with plain `requests` and the real decoder.

Expected values are written out here, never taken from the fake's own builders.
"""
from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from typing import Iterator, List, Optional

import pytest
import requests

from kiroproxy.kiro import errors as kiro_errors
from kiroproxy.kiro.eventstream import CrcError, Decoder, Frame
from tests.fakes import scripts
from tests.fakes.kiro import (
    COMPLETE,
    DEVICE_CODE_GRANT,
    DISCONNECTED,
    DROPPED,
    HOLD_TIMEOUT,
    HTTP_ERROR,
    STOPPED,
    FakeKiro,
)
from tests.fakes.scripts import Reply, Script, text_answer

TIMEOUT = 5
CHAT = "/generateAssistantResponse"


@pytest.fixture
def fake() -> Iterator[FakeKiro]:
    with FakeKiro() as server:
        yield server


@contextmanager
def chat(fake: FakeKiro, token: Optional[str] = "tok", body: Optional[dict] = None,
         headers: Optional[dict] = None) -> Iterator[requests.Response]:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(fake.url + CHAT, json=body or {"conversationState": {}},
                             headers={**sent, **(headers or {})}, stream=True, timeout=TIMEOUT)
    with response:
        yield response


def read_frames(response: requests.Response) -> List[Frame]:
    decoder = Decoder()
    frames = []
    for chunk in response.iter_content(chunk_size=None):
        frames += decoder.feed(chunk)
    assert decoder.pending == 0
    return frames


def summary(frames: List[Frame]) -> list:
    return [(f.message_type, f.event_type or f.exception_type, f.json()) for f in frames]


def text_of(frames: List[Frame]) -> str:
    return "".join(f.json()["content"] for f in frames if f.event_type == "assistantResponseEvent")


def test_default_answer(fake):
    with chat(fake) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        frames = read_frames(response)

    assert summary(frames) == [
        ("event", "assistantResponseEvent", {"content": "Hello"}),
        ("event", "assistantResponseEvent", {"content": " from fake Kiro"}),
        ("event", "contextUsageEvent", {"contextUsagePercentage": 1.5}),
    ]
    assert frames[0].headers[":content-type"] == "application/json"


def test_full_read_is_complete_and_not_a_disconnect(fake):
    with chat(fake) as response:
        read_frames(response)

    assert fake.wait_streams(1, TIMEOUT)
    assert [(s.outcome, s.frames_sent, s.token) for s in fake.streams] == [(COMPLETE, 3, "tok")]
    assert not any(s.outcome == DISCONNECTED for s in fake.streams)


def test_scripts_are_served_in_order_then_default(fake):
    fake.queue(text_answer("first"), text_answer("second"))

    answers = []
    for _ in range(3):
        with chat(fake) as response:
            answers.append(text_of(read_frames(response)))

    assert answers == ["first", "second", "Hello from fake Kiro"]


def test_per_token_queue_wins_over_shared_queue(fake):
    fake.queue(text_answer("for A"), token="acc-A")
    fake.queue(text_answer("shared"))

    answers = []
    for token in ("acc-B", "acc-A", "acc-A"):
        with chat(fake, token=token) as response:
            answers.append(text_of(read_frames(response)))

    assert answers == ["shared", "for A", "Hello from fake Kiro"]


def test_account_a_fails_while_account_b_succeeds(fake):
    fake.queue(scripts.throttled("7"), token="acc-A")
    fake.queue(text_answer("B is fine"), token="acc-B")

    with chat(fake, token="acc-A") as failed, chat(fake, token="acc-B") as ok:
        assert (failed.status_code, failed.headers["Retry-After"]) == (429, "7")
        assert text_of(read_frames(ok)) == "B is fine"


def test_concurrent_requests_take_their_own_token_queues(fake):
    tokens = [f"acc-{n}" for n in range(8)]
    for token in tokens:
        fake.queue(text_answer(f"answer for {token}"), token=token)
    answers = {}

    def ask(token: str) -> None:
        with chat(fake, token=token) as response:
            answers[token] = text_of(read_frames(response))

    threads = [threading.Thread(target=ask, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)

    assert answers == {t: f"answer for {t}" for t in tokens}


def test_error_status_with_body_and_headers(fake):
    fake.queue(scripts.http_error(429, "Too many", "USER_REQUEST_RATE_EXCEEDED",
                                  headers={"Retry-After": "3", "x-amzn-ErrorType": "ThrottlingException"}))

    with chat(fake) as response:
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["X-Amzn-Errortype"] == "ThrottlingException"
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"message": "Too many", "reason": "USER_REQUEST_RATE_EXCEEDED"}
    assert fake.wait_streams(1, TIMEOUT)
    assert fake.streams[0].outcome == HTTP_ERROR


@pytest.mark.parametrize("script,status,action", [
    (scripts.throttled("3"), 429, kiro_errors.ROTATE),
    (scripts.bearer_invalid(), 403, kiro_errors.REFRESH),
    (scripts.suspended(), 403, kiro_errors.SUSPEND),
    (scripts.monthly_limit(), 402, kiro_errors.EXHAUSTED),
    (scripts.server_error(), 500, kiro_errors.ROTATE),
    (scripts.improperly_formed(), 400, kiro_errors.FAIL),
], ids=["throttled", "bearer", "suspended", "monthly", "server", "improper"])
def test_canned_errors_mean_what_their_names_say(fake, script, status, action):
    fake.queue(script)

    with chat(fake) as response:
        failure = kiro_errors.classify(response.status_code, response.text, response.headers.get("Retry-After"))

    assert response.status_code == status
    assert failure.action == action


def test_improperly_formed_has_null_reason(fake):
    fake.queue(scripts.improperly_formed())

    with chat(fake) as response:
        assert response.json() == {"message": "Improperly formed request.", "reason": None}


def test_gate_holds_later_frames_until_release(fake):
    fake.queue(Script().text("one").gate().text("two").context_usage(2.0))

    with chat(fake) as response:
        chunks = response.iter_content(chunk_size=None)
        decoder = Decoder()
        first: List[Frame] = []
        while not first:
            first = decoder.feed(next(chunks))
        assert fake.wait_gate("gate", TIMEOUT)
        assert summary(first) == [("event", "assistantResponseEvent", {"content": "one"})]
        assert fake.streams == []

        fake.release("gate")
        rest = []
        for chunk in chunks:
            rest += decoder.feed(chunk)

    assert summary(rest) == [("event", "assistantResponseEvent", {"content": "two"}),
                             ("event", "contextUsageEvent", {"contextUsagePercentage": 2.0})]
    assert fake.wait_streams(1, TIMEOUT)
    assert fake.streams[0].outcome == COMPLETE


def test_wait_gate_is_false_when_no_stream_reached_it(fake):
    fake.queue(Script().text("a").gate("later"))

    assert not fake.wait_gate("later", timeout=0.01)


def test_client_closing_at_the_gate_is_a_disconnect(fake):
    fake.queue(Script().text("one").gate().text("never sent").context_usage())

    with chat(fake) as response:
        decoder = Decoder()
        chunks = response.iter_content(chunk_size=None)
        while not decoder.feed(next(chunks)):
            pass
        assert fake.wait_gate("gate", TIMEOUT)

    assert fake.wait_disconnect(TIMEOUT)
    assert [(s.outcome, s.frames_sent) for s in fake.streams] == [(DISCONNECTED, 1)]


def test_client_closing_after_release_is_a_disconnect(fake):
    fake.queue(Script().text("one").gate().text("two").context_usage())

    with chat(fake) as response:
        next(response.iter_content(chunk_size=None))
        assert fake.wait_gate("gate", TIMEOUT)
    # The socket is closed before the gate opens: the fake must not write the rest.
    fake.release("gate")

    assert fake.wait_disconnect(TIMEOUT)
    assert fake.streams[0].frames_sent == 1


def test_unreleased_gate_cuts_the_stream_after_hold_timeout():
    with FakeKiro(hold_timeout=0.05) as fake:
        fake.queue(Script().text("one").gate().text("two"))
        with chat(fake) as response, pytest.raises(requests.exceptions.ChunkedEncodingError):
            read_frames(response)
        assert fake.wait_streams(1, TIMEOUT)
        assert fake.streams[0].outcome == HOLD_TIMEOUT


def test_stop_releases_held_streams():
    fake = FakeKiro().start()
    fake.queue(Script().text("one").gate().text("two"))
    try:
        with chat(fake) as response:
            chunks = response.iter_content(chunk_size=None)
            next(chunks)
            assert fake.wait_gate("gate", TIMEOUT)
            fake.stop()
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                list(chunks)
    finally:
        fake.stop()
    assert fake.wait_streams(1, TIMEOUT)
    assert fake.streams[0].outcome == STOPPED


def test_slow_first_byte_sends_nothing_and_notices_the_client_giving_up(fake):
    fake.queue(Script().slow_first_byte(30).text("late").context_usage())

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(fake.url + CHAT, json={}, timeout=(TIMEOUT, 0.05))

    assert fake.wait_disconnect(TIMEOUT)
    assert [(s.outcome, s.frames_sent) for s in fake.streams] == [(DISCONNECTED, 0)]


def test_slow_first_byte_answers_once_released(fake):
    fake.queue(Script().slow_first_byte(30, name="go").text("late").context_usage())
    answers = []

    def ask() -> None:
        with chat(fake) as response:
            answers.append(text_of(read_frames(response)))

    thread = threading.Thread(target=ask)
    thread.start()
    assert fake.wait_requests(1, CHAT, TIMEOUT)
    fake.release("go")
    thread.join(TIMEOUT)

    assert answers == ["late"]


def test_slow_first_byte_proceeds_after_its_delay(fake):
    fake.queue(Script().slow_first_byte(0.01).text("eventually"))

    with chat(fake) as response:
        assert text_of(read_frames(response)) == "eventually"


def test_tool_calls_reasoning_and_usage_events(fake):
    fake.queue(Script()
               .reasoning("hmm").reasoning(signature="sig")
               .tool_use("t1", "get_weather", '{"city":', '"Paris"}')
               .tool_use("t2", "noop", separate_stop=True)
               .tool_use("t3", "whole", {"a": 1})
               .metering(0.5).metadata(uncached_input=7, output=3, cache_read=2, stop_reason="end_turn")
               .context_usage(42.0))

    with chat(fake) as response:
        frames = read_frames(response)

    assert [(f.event_type, f.json()) for f in frames] == [
        ("reasoningContentEvent", {"text": "hmm"}),
        ("reasoningContentEvent", {"signature": "sig"}),
        ("toolUseEvent", {"toolUseId": "t1", "name": "get_weather", "input": '{"city":'}),
        ("toolUseEvent", {"toolUseId": "t1", "name": "get_weather", "input": '"Paris"}', "stop": True}),
        ("toolUseEvent", {"toolUseId": "t2", "name": "noop", "stop": True}),
        ("toolUseEvent", {"toolUseId": "t3", "name": "whole", "input": {"a": 1}, "stop": True}),
        ("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.5}),
        ("metadataEvent", {"tokenUsage": {"uncachedInputTokens": 7, "outputTokens": 3, "totalTokens": 12,
                                          "cacheReadInputTokens": 2, "cacheWriteInputTokens": 0},
                           "stopReason": "end_turn"}),
        ("contextUsageEvent", {"contextUsagePercentage": 42.0}),
    ]


def test_thinking_tags_wrap_the_chunks():
    frames = Decoder().feed(b"".join(Script().thinking("a", "b").text("answer").frames))

    assert text_of(frames) == "<thinking>\nab\n</thinking>\n\nanswer"
    assert len(frames) == 3


def test_builder_returns_new_scripts():
    base = Script().text("shared")
    longer = base.context_usage()

    assert len(base.steps) == 1
    assert len(longer.steps) == 2


def test_raw_frames_and_exception_mid_stream(fake):
    custom = bytes.fromhex("000000100000000005c248eb7d98c8ff")  # the empty 16-byte frame
    fake.queue(Script().text("partial").raw(custom).exception("ThrottlingException", "slow down"))

    with chat(fake) as response:
        frames = read_frames(response)

    assert summary(frames) == [
        ("event", "assistantResponseEvent", {"content": "partial"}),
        ("event", "", {}),
        ("exception", "ThrottlingException", {"message": "slow down"}),
    ]


def test_exception_as_first_frame(fake):
    fake.queue(Script().exception())

    with chat(fake) as response:
        assert response.status_code == 200
        assert summary(read_frames(response)) == [("exception", "ThrottlingException",
                                                   {"message": "Rate exceeded"})]


def test_truncated_answer_lacks_context_usage(fake):
    fake.queue(Script().text("cut short"))

    with chat(fake) as response:
        assert summary(read_frames(response)) == [("event", "assistantResponseEvent", {"content": "cut short"})]


def test_cut_mid_frame_leaves_a_partial_frame(fake):
    fake.queue(Script().text("ok").cut_mid_frame())
    decoder = Decoder()

    with chat(fake) as response:
        frames = [f for chunk in response.iter_content(chunk_size=None) for f in decoder.feed(chunk)]

    assert text_of(frames) == "ok"
    assert decoder.pending > 16


def test_bad_crc_frame_fails_the_decoder(fake):
    fake.queue(Script().text("ok").bad_crc().context_usage())

    with chat(fake) as response, pytest.raises(CrcError):
        read_frames(response)


def test_drop_breaks_the_body(fake):
    fake.queue(Script().text("ok").drop())

    with chat(fake) as response, pytest.raises(requests.exceptions.ChunkedEncodingError):
        read_frames(response)
    assert fake.wait_streams(1, TIMEOUT)
    assert [(s.outcome, s.frames_sent) for s in fake.streams] == [(DROPPED, 1)]


def test_requests_are_recorded(fake):
    with chat(fake, token="secret-token", body={"conversationState": {"conversationId": "c1"}},
              headers={"X-Amzn-Kiro-Agent-Mode": "vibe"}) as response:
        read_frames(response)
    requests.get(fake.url + "/ListAvailableModels?origin=AI_EDITOR&maxResults=50", timeout=TIMEOUT).close()

    chat_call, models_call = fake.requests
    assert (chat_call.method, chat_call.path, chat_call.token) == ("POST", CHAT, "secret-token")
    assert chat_call.json == {"conversationState": {"conversationId": "c1"}}
    assert json.loads(chat_call.body) == chat_call.json
    assert chat_call.headers["x-amzn-kiro-agent-mode"] == "vibe"
    assert chat_call.headers["X-AMZN-KIRO-AGENT-MODE"] == "vibe"
    assert (models_call.method, models_call.query, models_call.token) == (
        "GET", {"origin": "AI_EDITOR", "maxResults": "50"}, None)
    assert fake.requests_to("/ListAvailableModels") == [models_call]


def test_chunked_request_body_is_read(fake):
    body = iter([b'{"conversation', b'State":{}}'])
    with requests.post(fake.url + CHAT, data=body, timeout=TIMEOUT) as response:
        read_frames(response)

    assert fake.requests[0].json == {"conversationState": {}}


def test_rpc_style_chat_and_models(fake):
    with requests.post(fake.url + "/", json={"conversationState": {}}, timeout=TIMEOUT,
                       headers={"x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"},
                       ) as response:
        assert text_of(read_frames(response)) == "Hello from fake Kiro"
    with requests.post(fake.url + "/", json={"origin": "AI_EDITOR", "maxResults": 2}, timeout=TIMEOUT,
                       headers={"x-amz-target": "AmazonCodeWhispererService.ListAvailableModels"}) as response:
        assert [m["modelId"] for m in response.json()["models"]] == ["auto", "claude-sonnet-4"]


def test_refresh_default_issues_fresh_access_tokens(fake):
    answers = [requests.post(fake.url + "/refreshToken", json={"refreshToken": "rt-1"}, timeout=TIMEOUT)
               for _ in range(2)]

    first, second = (a.json() for a in answers)
    assert [a.status_code for a in answers] == [200, 200]
    assert re.fullmatch(r"fake-access-\d+", first["accessToken"])
    assert first["accessToken"] != second["accessToken"]
    assert (first["refreshToken"], first["expiresIn"]) == ("rt-1", 3600)
    assert first["profileArn"] == "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
    assert fake.refresh_count == 2
    assert fake.refresh_tokens_seen == ["rt-1", "rt-1"]


def test_refresh_rotates_when_told(fake):
    fake.rotate_refresh = True

    answer = requests.post(fake.url + "/refreshToken", json={"refreshToken": "rt-1"}, timeout=TIMEOUT).json()

    assert answer["refreshToken"] not in ("rt-1", "", None)


def test_refresh_scripted_failure_per_refresh_token(fake):
    fake.queue_refresh(Reply(400, {"error": "invalid_grant"}), refresh_token="rt-dead")
    fake.queue_refresh(Reply(500))

    dead = requests.post(fake.url + "/refreshToken", json={"refreshToken": "rt-dead"}, timeout=TIMEOUT)
    shared = requests.post(fake.url + "/refreshToken", json={"refreshToken": "rt-ok"}, timeout=TIMEOUT)
    fine = requests.post(fake.url + "/refreshToken", json={"refreshToken": "rt-ok"}, timeout=TIMEOUT)

    assert (dead.status_code, dead.json()) == (400, {"error": "invalid_grant"})
    assert shared.status_code == 500
    assert fine.status_code == 200
    assert fake.refresh_tokens_seen == ["rt-dead", "rt-ok", "rt-ok"]


def test_oidc_refresh_default_and_scripted(fake):
    grant = {"clientId": "cid", "clientSecret": "cs", "grantType": "refresh_token", "refreshToken": "rt-idc"}
    fake.queue_token(Reply(400, {"error": "invalid_grant"}), refresh_token="rt-idc")

    failed = requests.post(fake.url + "/token", json=grant, timeout=TIMEOUT)
    ok = requests.post(fake.url + "/token", json=grant, timeout=TIMEOUT)

    assert (failed.status_code, failed.json()) == (400, {"error": "invalid_grant"})
    body = ok.json()
    assert (ok.status_code, body["refreshToken"], body["expiresIn"], body["tokenType"]) == (
        200, "rt-idc", 3600, "Bearer")
    assert body["accessToken"].startswith("fake-access-")
    assert "profileArn" not in body
    assert fake.refresh_tokens_seen == ["rt-idc", "rt-idc"]


def test_device_code_grant_hook(fake):
    fake.queue_token(Reply(400, {"error": "authorization_pending"}), grant=DEVICE_CODE_GRANT)
    poll = {"clientId": "cid", "clientSecret": "cs", "grantType": DEVICE_CODE_GRANT, "deviceCode": "dc"}

    pending = requests.post(fake.url + "/token", json=poll, timeout=TIMEOUT)
    done = requests.post(fake.url + "/token", json=poll, timeout=TIMEOUT)
    unknown = requests.post(fake.url + "/token", json={"grantType": "password"}, timeout=TIMEOUT)

    assert (pending.status_code, pending.json()) == (400, {"error": "authorization_pending"})
    assert done.status_code == 200
    assert done.json()["accessToken"].startswith("fake-access-")
    assert unknown.status_code == 400
    assert fake.refresh_count == 0


def test_models_default_catalogue(fake):
    answer = requests.get(fake.url + "/ListAvailableModels", timeout=TIMEOUT).json()

    assert answer["defaultModel"] == {"modelId": "auto"}
    assert [m["modelId"] for m in answer["models"]] == [
        "auto", "claude-sonnet-4", "claude-sonnet-4.5", "claude-haiku-4.5", "claude-opus-4.5",
        "claude-sonnet-4.6", "claude-opus-4.6"]
    assert all(m["tokenLimits"]["maxInputTokens"] >= 200000 for m in answer["models"])
    assert "nextToken" not in answer


def test_models_paging(fake):
    fake.models_page_size = 3
    pages = []
    params = {"origin": "AI_EDITOR"}
    while True:
        page = requests.get(fake.url + "/ListAvailableModels", params=params, timeout=TIMEOUT).json()
        pages.append([m["modelId"] for m in page["models"]])
        if "nextToken" not in page:
            break
        params["nextToken"] = page["nextToken"]

    assert pages == [["auto", "claude-sonnet-4", "claude-sonnet-4.5"],
                     ["claude-haiku-4.5", "claude-opus-4.5", "claude-sonnet-4.6"],
                     ["claude-opus-4.6"]]


def test_models_custom_catalogue_and_scripted_error(fake):
    fake.models = [{"modelId": "only-one"}]
    fake.queue_models(Reply(400, {"message": "Invalid profileArn", "reason": None}))

    failed = requests.get(fake.url + "/ListAvailableModels", timeout=TIMEOUT)
    ok = requests.get(fake.url + "/ListAvailableModels", timeout=TIMEOUT)

    assert (failed.status_code, failed.json()["message"]) == (400, "Invalid profileArn")
    assert ok.json()["models"] == [{"modelId": "only-one"}]


def test_usage_default_and_scripted_error(fake):
    fake.queue_usage(Reply(403, {"message": "User is not authorized to make this call."}), token="acc-A")

    failed = requests.get(fake.url + "/getUsageLimits", headers={"Authorization": "Bearer acc-A"},
                          timeout=TIMEOUT)
    ok = requests.get(fake.url + "/getUsageLimits", headers={"Authorization": "Bearer acc-A"},
                      timeout=TIMEOUT)

    assert failed.status_code == 403
    usage = ok.json()
    assert usage["daysUntilReset"] == 12
    breakdown = usage["usageBreakdownList"][0]
    assert (breakdown["usageLimitWithPrecision"], breakdown["currentUsageWithPrecision"]) == (50.0, 12.5)
    assert breakdown["freeTrialInfo"]["freeTrialStatus"] == "ACTIVE"


def test_unknown_path_is_404_json_unless_scripted(fake):
    fake.queue_json("POST", "/client/register", Reply(200, {"clientId": "cid", "clientSecret": "cs"}))

    missing = requests.get(fake.url + "/nope", timeout=TIMEOUT)
    registered = requests.post(fake.url + "/client/register", json={}, timeout=TIMEOUT)
    again = requests.post(fake.url + "/client/register", json={}, timeout=TIMEOUT)

    assert missing.status_code == 404
    assert "/nope" in missing.json()["message"]
    assert registered.json() == {"clientId": "cid", "clientSecret": "cs"}
    assert again.status_code == 404


def test_keep_alive_session_serves_several_requests(fake):
    with requests.Session() as session:
        for _ in range(3):
            with session.post(fake.url + CHAT, json={}, stream=True, timeout=TIMEOUT) as response:
                assert text_of(read_frames(response)) == "Hello from fake Kiro"

    assert fake.wait_streams(3, TIMEOUT)
    assert [s.outcome for s in fake.streams] == [COMPLETE] * 3


def test_url_requires_start():
    with pytest.raises(RuntimeError):
        _ = FakeKiro().url


def test_connections_opened_counts_tcp_connections_not_requests(fake):
    with requests.Session() as session:  # keep-alive: the JSON endpoints reuse one connection
        for _ in range(3):
            assert session.get(fake.url + "/getUsageLimits", timeout=TIMEOUT).status_code == 200
    assert fake.connections_opened == 1

    with chat(fake) as response:
        read_frames(response)
    assert fake.wait_connections(2, TIMEOUT)
    assert fake.connections_opened == 2


def test_paced_script_streams_every_frame(fake):
    fake.queue(text_answer("a", "b", "c").paced(0.001))

    with chat(fake) as response:
        frames = read_frames(response)

    assert text_of(frames) == "abc"
    assert [f.event_type for f in frames][-1] == "contextUsageEvent"
