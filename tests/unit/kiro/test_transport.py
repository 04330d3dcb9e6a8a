"""Endpoint selection, request headers, and the client's host fallback (with `responses`)."""
from __future__ import annotations

import gc
import re
import threading
import uuid
import weakref

import responses

from kiroproxy import chat
from kiroproxy.accounts.credentials import from_token_file
from kiroproxy.kiro import eventstream
from kiroproxy.kiro.client import KiroClient
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from tests import factories

ARN = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF"


def creds(**kw):
    return from_token_file(factories.token_file("acc-T", **kw))


def test_chat_hosts_newest_first_with_legacy_fallback():
    social = creds(profileArn=ARN)
    assert Endpoints().chat_hosts(social) == ["https://runtime.eu-central-1.kiro.dev",
                                              "https://q.eu-central-1.amazonaws.com"]


def test_builder_id_without_profile_uses_the_legacy_host_only():
    builder = creds(auth_method="IdC", provider="BuilderId")
    assert builder.profile_arn is None
    assert Endpoints().chat_hosts(builder) == ["https://q.us-east-1.amazonaws.com"]
    assert Endpoints().management_host(builder) == "https://q.us-east-1.amazonaws.com"


def test_override_replaces_every_kiro_host():
    endpoints = Endpoints(api_url="http://127.0.0.1:9/", auth_url="http://127.0.0.1:8", oidc_url="http://x")
    account = creds(profileArn=ARN)
    assert endpoints.chat_hosts(account) == ["http://127.0.0.1:9"]
    assert endpoints.management_host(account) == "http://127.0.0.1:9"
    assert endpoints.social_auth() == "http://127.0.0.1:8"
    assert endpoints.oidc("eu-west-1") == "http://x"
    assert Endpoints().social_auth("us-east-1") == "https://prod.us-east-1.auth.desktop.kiro.dev"
    assert Endpoints().oidc("eu-west-1") == "https://oidc.eu-west-1.amazonaws.com"


def test_chat_headers_follow_the_reference():
    account = creds()
    headers = ClientIdentity(kiro_version="0.11.63").chat_headers(account)
    assert headers["Authorization"] == "Bearer acc-T"
    assert headers["x-amzn-codewhisperer-optout"] == "true"
    assert headers["x-amzn-kiro-agent-mode"] == "vibe"
    assert headers["x-amz-user-agent"] == f"aws-sdk-js/1.0.34 KiroIDE-0.11.63-{account.machine_id}"
    assert re.fullmatch(r"[0-9a-f]{64}", account.machine_id)
    assert "api/codewhispererstreaming#1.0.34" in headers["user-agent"]
    assert uuid.UUID(headers["amz-sdk-invocation-id"]).version == 4
    assert headers["amz-sdk-request"] == "attempt=1; max=3"
    assert headers["Connection"] == "close"
    quota = ClientIdentity().chat_headers(account, streaming=False, api="codewhispererruntime")
    assert "api/codewhispererruntime#1.0.0" in quota["user-agent"]
    assert quota["amz-sdk-request"] == "attempt=1; max=1"
    assert "Connection" not in quota


def test_machine_id_is_stable_across_token_rotation():
    account = creds()
    rotated = account.with_tokens("new-access", factories.refresh_token("rotated"), 0.0)
    headers = ClientIdentity().chat_headers(rotated)
    assert account.machine_id in headers["x-amz-user-agent"]


def answer(text: str) -> bytes:
    return (eventstream.event("assistantResponseEvent", {"content": text})
            + eventstream.event("contextUsageEvent", {"contextUsagePercentage": 1.0}))


@responses.activate
def test_client_falls_back_to_the_legacy_host_when_the_profile_is_rejected():
    responses.post("https://runtime.us-east-1.kiro.dev/generateAssistantResponse", status=400,
                   json={"message": "profileArn is required for this request.", "reason": None})
    responses.post("https://q.us-east-1.amazonaws.com/generateAssistantResponse", status=200,
                   body=answer("legacy host"), content_type="application/vnd.amazon.eventstream")
    sessions = Sessions()
    client = KiroClient(Endpoints(), sessions, ClientIdentity())
    stream = client.open(creds(), factories.request("hi"), model_id="claude-sonnet-4.5", conversation_id="c-1")
    try:
        text = "".join(e.text for e in stream if isinstance(e, chat.TextDelta))
    finally:
        stream.close()
    assert text == "legacy host"
    hosts = [call.request.url for call in responses.calls]
    assert hosts == ["https://runtime.us-east-1.kiro.dev/generateAssistantResponse",
                     "https://q.us-east-1.amazonaws.com/generateAssistantResponse"]
    sessions.close()


def test_a_finished_threads_session_is_not_kept_and_live_ones_are_closed():
    sessions = Sessions()
    made = []
    worker = threading.Thread(target=lambda: made.append(weakref.ref(sessions.get())))
    worker.start()
    worker.join()
    gc.collect()
    assert made[0]() is None  # a short-lived thread (model sync, a sign-in) leaves no session behind
    mine = sessions.get()
    assert sessions.get() is mine  # one per thread
    closed = []
    mine.close = lambda: closed.append(True)
    sessions.close()
    assert closed == [True]
