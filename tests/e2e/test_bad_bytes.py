"""Bytes that are not UTF-8 (the encoded surrogate ED A0 80 above all) and bodies that are not what
a client API takes: answered with a 4xx in the caller's shape, and never able to break what the
admin API shows afterwards, not even after a restart."""
from __future__ import annotations

import gzip
import json

import pytest

from tests.fakes.scripts import text_answer

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
OPENAI = {"Authorization": "Bearer k", "content-type": "application/json"}
GEMINI = {"x-goog-api-key": "k", "content-type": "application/json"}
SURROGATE = b"\xed\xa0\x80"  # U+D800 "encoded" as UTF-8: not valid UTF-8

ADMIN_VIEWS = ("/flows", "/logs", "/logs?format=text", "/stats", "/stats/detailed", "/flows/stats",
               "/status", "/flows/export")


def admin_views_answer(proxy) -> None:
    assert proxy.services.flows.flush(10)
    for path in ADMIN_VIEWS:
        method = "POST" if path == "/flows/export" else "GET"
        response = proxy.admin(method, path, json={} if method == "POST" else None)
        assert response.status_code == 200, (path, response.text)
    for flow in proxy.admin("GET", "/flows").json()["flows"]:
        response = proxy.admin("GET", f"/flows/{flow['id']}")
        assert response.status_code == 200, response.text


def test_the_issue_curl_surrogate_bytes_in_the_model_then_admin_views_and_restart(make_proxy, fake):
    proxy = make_proxy()
    proxy.add_account("acc-A")
    raw = b'{"model":"x' + SURROGATE + b'","max_tokens":1,"messages":[{"role":"user","content":"x"}]}'
    response = proxy.http.post(proxy.url + "/v1/messages", data=raw, headers=ANTHROPIC, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "UTF-8" in response.json()["error"]["message"]
    admin_views_answer(proxy)
    (flow,) = proxy.admin("GET", "/flows").json()["flows"]
    assert flow["status"] == 400
    proxy.stop()
    again = make_proxy()
    admin_views_answer(again)
    assert len(again.admin("GET", "/flows").json()["flows"]) == 1


@pytest.mark.parametrize("where", ["model", "prompt", "system", "key"])
@pytest.mark.parametrize("path,headers,template", [
    ("/v1/messages", ANTHROPIC,
     b'{"model":"M","max_tokens":5,"system":"S","metadata":{"K":1},"messages":[{"role":"user","content":"P"}]}'),
    ("/v1/messages/count_tokens", ANTHROPIC,
     b'{"model":"M","system":"S","metadata":{"K":1},"messages":[{"role":"user","content":"P"}]}'),
    ("/v1/chat/completions", OPENAI,
     b'{"model":"M","user":"S","metadata":{"K":"1"},"messages":[{"role":"user","content":"P"}]}'),
    ("/v1/responses", OPENAI, b'{"model":"M","instructions":"S","metadata":{"K":"1"},"input":"P"}'),
    ("/v1beta/models/gemini-2.5-pro:generateContent", GEMINI,
     b'{"systemInstruction":{"parts":[{"text":"S"}]},"labels":{"K":"1"},"contents":[{"role":"user",'
     b'"parts":[{"text":"P"}]}]}'),
    ("/v1beta/models/gemini-2.5-pro:countTokens", GEMINI,
     b'{"contents":[{"role":"user","parts":[{"text":"P"}],"K":1}],"S":1}'),
], ids=["messages", "count_tokens", "chat", "responses", "gemini", "gemini_count"])
def test_surrogate_bytes_anywhere_in_a_body_are_a_400(proxy, fake, path, headers, template, where):
    proxy.add_account("acc-A")
    fake.queue(text_answer("fine"))
    marker = {"model": b'"M"', "prompt": b'"P"', "system": b'"S"', "key": b'"K"'}[where]
    if marker not in template:
        pytest.skip("this endpoint has no such field")
    real_model = b'"claude-sonnet-4-6"' if "messages" in path else b'"gpt-4o"'
    raw = template.replace(b'"M"', real_model) if where != "model" else template
    raw = raw.replace(marker, marker[:-1] + SURROGATE + b'"')
    response = proxy.http.post(proxy.url + path, data=raw, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "UTF-8" in error["message"]
    if "/v1beta/" in path:
        assert error["status"] == "INVALID_ARGUMENT"
    admin_views_answer(proxy)


@pytest.mark.parametrize("path,headers", [
    ("/v1/messages", ANTHROPIC), ("/v1/messages/count_tokens", ANTHROPIC), ("/v1/chat/completions", OPENAI),
    ("/v1/responses", OPENAI), ("/v1beta/models/gemini-2.5-pro:generateContent", GEMINI),
    ("/v1beta/models/gemini-2.5-pro:streamGenerateContent", GEMINI),
    ("/v1beta/models/gemini-2.5-pro:countTokens", GEMINI)])
@pytest.mark.parametrize("raw", [b'"\\ud83d\\ude00"', b"[1,2]", b"3", b"null", b"true", b'{"a":NaN}',
                                 b'{"model":1e400}', b'{"model":Infinity}', b'{"model":"x",', b"\xff\xfe{",
                                 b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000],
                         ids=["string", "array", "number", "null", "true", "nan", "huge", "infinity", "cut",
                              "bom-junk", "deep-array", "deep-object"])
def test_bodies_that_are_not_an_object_are_a_400(proxy, path, headers, raw):
    response = proxy.http.post(proxy.url + path, data=raw, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    body = response.json()
    assert "error" in body and body["error"]["message"]
    admin_views_answer(proxy)


@pytest.mark.parametrize("raw", [b'"x"', b"[]", b'{"a":' * 3000 + b"1" + b"}" * 3000,
                                 b"[" * 5000 + b"]" * 5000, b'{"name":"a' + SURROGATE + b'"}', b'{"enabled":NaN}',
                                 b'{"x":1e999}'],
                         ids=["string", "array", "deep-object", "deep-array", "surrogate", "nan", "huge"])
@pytest.mark.parametrize("method,path", [("POST", "/accounts"), ("POST", "/config/import"),
                                         ("POST", "/flows/export"), ("POST", "/token/add-from-scan")])
def test_admin_bodies_that_are_not_an_object_are_a_400(proxy, method, path, raw):
    response = proxy.admin(method, path, data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


def test_damaged_records_on_disk_are_skipped_and_every_view_still_answers(make_proxy, fake):
    """Records that no version of ours writes (edited by hand, a disk error, an older layout):
    each view skips or empties what it cannot use, logged, instead of answering 500."""
    proxy = make_proxy()
    proxy.add_account("acc-A")
    fake.queue(text_answer("fine"))
    response = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC, timeout=30, json={
        "model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert proxy.services.flows.flush(10)
    proxy.stop()
    home = proxy.home / ".kiro-proxy"
    (log,) = (home / "flows" / "index").glob("seg-*.jsonl")
    good = log.read_bytes()
    strange = {"id": "f" * 32, "protocol": 7, "state": None, "received_at": "yesterday", "error": "boom",
               "attempts": [1, {"account_id": "x"}], "tags": "t", "input_tokens": 1e300, "model": ["m"]}
    log.write_bytes(good + b'{"add":' + json.dumps(strange).encode() + b'}\n{"add":{"id":"../../x"}}\n'
                    + b'{"add":{"id":"' + b"e" * 32 + b'","snippet":"x\xed\xa0\x80","note":"\\ud800"}}\n' + good)
    (folder,) = (home / "flows" / "bodies").iterdir()
    for flow_id in ("f" * 32, "e" * 32):
        body = json.dumps({"flow": {"id": flow_id}, "request": {"body": 5}}).encode()
        (folder / f"{flow_id}.json.gz").write_bytes(gzip.compress(b"text\xed\xa0\x80") + gzip.compress(body))
    (home / "stats.json").write_text(json.dumps({"requests": 1, "by_model": {"a": 5, "b": {"requests": "x"}},
                                                 "hourly": {"x": {}}, "errors_by_kind": {"k": []}}))
    again = make_proxy()
    admin_views_answer(again)
    ids = {flow["id"] for flow in again.admin("GET", "/flows").json()["flows"]}
    assert {"f" * 32, "e" * 32} <= ids and len(ids) == 3
    assert again.admin("GET", "/flows", params={"q": "text"}).status_code == 200


def test_anthropic_base64_image_data_is_validated_before_the_upstream(proxy, fake):
    proxy.add_account("acc-A")
    body = {"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR w0K!!"}}]}]}
    response = proxy.http.post(proxy.url + "/v1/messages", json=body, headers=ANTHROPIC, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["message"].startswith("messages.0.content.1.source.data: ")
    assert fake.requests_to("/generateAssistantResponse") == []
