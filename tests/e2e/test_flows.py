"""Flows, stats, logs and status through the real server: every request becomes a durable flow."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sseclient

from tests import factories
from tests.fakes.scripts import Script, text_answer, throttled

from .conftest import wait_for

CLIENT_KEY = "sk-client-key-that-must-never-be-stored-0123456789"


def anthropic_call(proxy, text="hi", stream=False, **extra):
    body = {"model": "claude-sonnet-4-6", "max_tokens": 256, "stream": stream,
            "messages": [{"role": "user", "content": text}], **extra}
    return proxy.http.post(proxy.url + "/v1/messages", json=body, timeout=30, stream=stream,
                           headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01",
                                    "user-agent": "flow-test/1.0"})


def flows(proxy, **params) -> dict:
    response = proxy.admin("GET", "/flows", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def settle(proxy) -> None:
    assert proxy.services.flows.flush(10)


def test_every_protocol_produces_a_flow_with_the_right_fields(proxy, fake):
    account = proxy.add_account("acc-A")
    fake.queue(text_answer("anthropic answer"), text_answer("openai answer"), text_answer("responses answer"),
               text_answer("gemini answer"))
    assert anthropic_call(proxy, "first question").status_code == 200
    headers = {"Authorization": "Bearer k"}
    assert proxy.http.post(proxy.url + "/v1/chat/completions", headers=headers, json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "second question"}]}).status_code == 200
    assert proxy.http.post(proxy.url + "/v1/responses", headers=headers, json={
        "model": "gpt-5", "input": "third question"}).status_code == 200
    assert proxy.http.post(proxy.url + "/v1beta/models/gemini-3.1-pro-preview:generateContent",
                           headers={"x-goog-api-key": "k"},
                           json={"contents": [{"role": "user", "parts": [{"text": "fourth question"}]}]}
                           ).status_code == 200
    listed = flows(proxy)["flows"]
    assert [f["protocol"] for f in listed] == ["gemini", "responses", "openai", "anthropic"]
    assert [f["requested_model"] for f in listed] == ["gemini-3.1-pro-preview", "gpt-5", "gpt-4o",
                                                      "claude-sonnet-4-6"]
    assert listed[2]["model"] == "claude-sonnet-4"  # the upstream model actually used
    for flow in listed:
        assert flow["state"] == "completed" and flow["status"] == 200 and flow["account_id"] == account
        assert flow["ttfb_ms"] > 0 and flow["duration_ms"] >= flow["ttfb_ms"]
        assert flow["input_tokens"] > 0 and flow["output_tokens"] > 0
        assert [a["outcome"] for a in flow["attempts"]] == ["ok"]
    detail = proxy.admin("GET", f"/flows/{listed[3]['id']}").json()
    assert detail["request"]["body"]["messages"][0]["content"] == "first question"
    assert detail["request"]["headers"]["user-agent"] == "flow-test/1.0"
    assert detail["response"]["text"] == "anthropic answer"
    assert detail["response"]["stop_reason"] == "end_turn" and detail["path"] == "/v1/messages"


def test_streaming_failover_and_errors_are_recorded(proxy, fake):
    first = proxy.add_account("acc-A")
    second = proxy.add_account("acc-B")
    fake.queue(throttled("60"), token="acc-A")
    fake.queue(Script().text("streamed ").tool_use("tooluse_1", "Read", '{"path": "x"}').context_usage(),
               token="acc-B")
    response = anthropic_call(proxy, "use a tool", stream=True, tools=[
        {"name": "Read", "input_schema": {"type": "object"}}])
    list(sseclient.SSEClient(response).events())
    assert anthropic_call(proxy, "bad", max_tokens=0).status_code == 400
    wait_for(lambda: flows(proxy)["total"] == 2)
    bad, good = flows(proxy)["flows"]
    assert good["stream"] is True and good["state"] == "completed" and good["stop_reason"] == "tool_use"
    assert [(a["account_id"], a["outcome"]) for a in good["attempts"]] == [(first, "rotate"), (second, "ok")]
    assert good["retries"] == 1 and good["tool_calls"] == 1
    detail = proxy.admin("GET", f"/flows/{good['id']}").json()
    assert detail["response"]["tool_calls"] == [{"id": "tooluse_1", "name": "Read", "input": {"path": "x"}}]
    assert bad["state"] == "error" and bad["status"] == 400 and "max_tokens" in bad["error"]["message"]


def test_cancelled_stream_is_recorded_as_cancelled(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("one").gate("g").text("two").context_usage())
    response = anthropic_call(proxy, stream=True)
    for event in sseclient.SSEClient(response).events():
        if event.event == "content_block_delta":
            break
    response.close()
    assert fake.wait_disconnect(5)
    fake.release("g")
    flow = wait_for(lambda: [f for f in flows(proxy)["flows"] if f["state"] == "cancelled"])[0]
    assert flow["duration_ms"] > 0


def test_filters_search_and_paging(proxy, fake):
    a = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    for n in range(6):
        fake.queue(text_answer(f"answer number {n} about {'zebras' if n == 2 else 'cats'}"))
        anthropic_call(proxy, f"question {n} {'pelican' if n == 4 else ''}")
    assert proxy.http.post(proxy.url + "/v1/chat/completions", headers={"Authorization": "Bearer k"}, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mini question"}]}).status_code == 200
    anthropic_call(proxy, "oops", max_tokens=-1)
    assert flows(proxy)["total"] == 8
    assert flows(proxy, protocol="openai")["flows"][0]["requested_model"] == "gpt-4o-mini"
    assert flows(proxy, model="claude-haiku-4.5")["total"] == 1
    assert all(f["account_id"] == a for f in flows(proxy, account=a)["flows"])
    assert flows(proxy, has_error="true")["total"] == 1 and flows(proxy, state="error")["total"] == 1
    assert [f["state"] for f in flows(proxy, has_error="false")["flows"]] == ["completed"] * 7
    zebra = flows(proxy, q="ZEBRAS")["flows"]
    assert len(zebra) == 1 and "question 2" in json.dumps(proxy.admin("GET", f"/flows/{zebra[0]['id']}").json())
    assert flows(proxy, q="pelican")["total"] == 1
    assert flows(proxy, q="cats question")["total"] == 5
    page1 = flows(proxy, limit=3)
    page2 = flows(proxy, limit=3, cursor=page1["next_cursor"])
    by_offset = flows(proxy, limit=3, offset=3)
    assert [f["id"] for f in page2["flows"]] == [f["id"] for f in by_offset["flows"]]
    assert not {f["id"] for f in page1["flows"]} & {f["id"] for f in page2["flows"]}
    newest = flows(proxy)["flows"][0]["received_at"]
    assert flows(proxy, since=newest)["total"] == 1 and flows(proxy, until=newest - 0.0001)["total"] == 7
    assert proxy.admin("GET", "/flows", params={"has_error": "maybe"}).status_code == 400
    assert proxy.admin("GET", "/flows", params={"colour": "red"}).status_code == 400
    stats = proxy.admin("GET", "/flows/stats").json()
    assert stats["total"] == 8 and stats["by_protocol"] == {"anthropic": 7, "openai": 1}
    assert stats["by_state"] == {"completed": 7, "error": 1} and stats["error_rate"] == pytest.approx(1 / 8)
    assert stats["ttfb_ms"]["p50"] > 0 and stats["duration_ms"]["p99"] >= stats["duration_ms"]["p50"]


def test_bookmark_note_tags_and_export(proxy, fake):
    proxy.add_account("acc-A")
    for n in range(3):
        anthropic_call(proxy, f"export me {n}")
    ids = [f["id"] for f in flows(proxy)["flows"]]
    marked = proxy.admin("POST", f"/flows/{ids[1]}/bookmark", json={"note": "look here", "tags": ["bug", "x"]})
    assert marked.json()["flow"]["note"] == "look here" and marked.json()["flow"]["tags"] == ["bug", "x"]
    proxy.admin("POST", f"/flows/{ids[1]}/bookmark", json={"bookmarked": True})
    assert [f["id"] for f in flows(proxy, bookmarked="true")["flows"]] == [ids[1]]
    assert flows(proxy, tag="bug")["total"] == 1
    assert proxy.admin("POST", "/flows/nope/bookmark", json={}).status_code == 404
    assert proxy.admin("POST", f"/flows/{ids[0]}/bookmark", json={"bookmarked": "yes"}).status_code == 400
    exported = proxy.admin("POST", "/flows/export", json={"ids": [ids[0], ids[2]], "format": "json"})
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    document = exported.json()
    assert [f["id"] for f in document] == [ids[0], ids[2]]
    assert document[0]["request"]["body"]["messages"][0]["content"] == "export me 2"
    lines = proxy.admin("POST", "/flows/export", json={"format": "jsonl", "bookmarked": True}).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids[1]]
    assert proxy.admin("POST", "/flows/export", json={"format": "xml"}).status_code == 400


def test_secrets_never_reach_flows_exports_or_logs(make_proxy, fake):
    proxy = make_proxy(api_keys=[CLIENT_KEY])
    token = factories.token_file(factories.token_like("aoa", "AccessTokenValue1234567890abcdefXYZ"))
    proxy.admin("POST", "/accounts", json=token)
    leak = factories.token_like("aor", "LeakedRefreshToken0123456789abcdefghijklmnop")
    anthropic_call(proxy, f"my key is {CLIENT_KEY} and {token['refreshToken']} and {leak}",
                   metadata={"user_id": "u", "api_key": "sk-in-the-body-0123456789"})
    fake.queue(throttled("30"), token=token["accessToken"])
    anthropic_call(proxy, "throttled")
    settle(proxy)
    secrets = [CLIENT_KEY, token["accessToken"], token["refreshToken"], leak, "sk-in-the-body-0123456789",
               "test-admin-key"]
    texts = [proxy.admin("GET", "/flows").text, proxy.admin("GET", "/logs").text,
             proxy.admin("GET", "/logs?format=text").text, proxy.admin("GET", "/stats/detailed").text,
             proxy.admin("POST", "/flows/export", json={"format": "jsonl"}).text]
    texts += [proxy.admin("GET", f"/flows/{f['id']}").text for f in flows(proxy)["flows"]]
    stored = proxy.home / ".kiro-proxy"
    for path in list((stored / "flows").rglob("*")) + [stored / "stats.json"]:
        if path.is_file():
            raw = path.read_bytes()
            texts.append((__import__("gzip").decompress(raw) if path.suffix == ".gz" else raw).decode())
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "[redacted]" in proxy.admin("GET", f"/flows/{flows(proxy)['flows'][1]['id']}").text


def test_caps_evict_the_oldest_unbookmarked_flows(make_proxy, fake):
    proxy = make_proxy(flows_max_count=4)
    proxy.add_account("acc-A")
    anthropic_call(proxy, "keep me")
    keeper = flows(proxy)["flows"][0]["id"]
    proxy.admin("POST", f"/flows/{keeper}/bookmark", json={})
    for n in range(6):
        anthropic_call(proxy, f"filler {n}")
    settle(proxy)
    kept = flows(proxy)["flows"]
    assert len(kept) == 4 and keeper in [f["id"] for f in kept]
    assert [f["id"] for f in kept][:3] == [f["id"] for f in kept if f["id"] != keeper][:3]
    bodies = list((proxy.home / ".kiro-proxy" / "flows" / "bodies").rglob("*.json.gz"))
    assert len(bodies) == 4


def test_disk_cap_holds_under_large_requests(make_proxy, fake):
    proxy = make_proxy(flows_max_mb=0.25)
    proxy.add_account("acc-A")
    big = "".join(f"{n:07d} {os.urandom(8).hex()} " for n in range(12000))  # ~300 KB, poorly compressible
    for n in range(8):
        anthropic_call(proxy, f"{n} {big}")
    settle(proxy)
    on_disk = sum(p.stat().st_size for p in (proxy.home / ".kiro-proxy" / "flows").rglob("*") if p.is_file())
    assert on_disk <= 0.25 * 2**20
    assert 0 < flows(proxy)["total"] < 8


def test_flows_and_stats_survive_a_restart(make_proxy, fake):
    first = make_proxy()
    first.add_account("acc-A")
    for n in range(3):
        anthropic_call(first, f"before restart {n}")
    before = flows(first)["flows"]
    all_time = first.admin("GET", "/stats").json()["all_time"]["requests"]
    first.stop()
    second = make_proxy()
    assert [f["id"] for f in flows(second)["flows"]] == [f["id"] for f in before]
    stats = second.admin("GET", "/stats").json()
    assert stats["all_time"]["requests"] == all_time == 3 and stats["since_start"]["requests"] == 0
    assert stats["all_time"]["by_protocol"]["anthropic"]["requests"] == 3
    detail = second.admin("GET", f"/flows/{before[0]['id']}").json()
    assert detail["response"]["text"] == "Hello from fake Kiro"


def test_a_store_truncated_mid_write_reopens_with_earlier_flows(make_proxy, fake):
    first = make_proxy()
    first.add_account("acc-A")
    for n in range(4):
        anthropic_call(first, f"crash test {n}")
    ids = [f["id"] for f in flows(first)["flows"]]
    first.stop()
    store = first.home / ".kiro-proxy" / "flows"
    (segment,) = sorted((store / "index").glob("seg-*.jsonl"))
    raw = segment.read_bytes()
    segment.write_bytes(raw[: len(raw) // 2])  # the crash: index cut mid-write
    body = next((store / "bodies").rglob(f"{ids[0]}.json.gz"))
    body.write_bytes(body.read_bytes()[:20])  # and the newest body half-written
    (store / "bodies" / body.parent.name / ".half.json.gz.1.2.tmp").write_bytes(b"partial")
    second = make_proxy()
    recovered = [f["id"] for f in flows(second)["flows"]]
    assert recovered == ids[1:]  # the earlier flows are all there; the damaged one is gone
    assert not list(store.rglob("*.tmp"))
    assert segment.read_bytes().endswith(b"\n")
    anthropic_call(second, "after the crash")
    assert flows(second)["total"] == len(recovered) + 1


def test_full_text_search_reaches_every_part_of_a_long_conversation(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer("filler words " * 300 + " UniqueWordInTail"))
    body = {"model": "claude-sonnet-4-6", "max_tokens": 100, "system": "SystemWord is in the system prompt",
            "messages": [{"role": "user", "content": "earlier EarlierWord"}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": "pad " * 1000 + " LateUserWord"}]}
    assert proxy.http.post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY}).status_code == 200
    anthropic_call(proxy, "an unrelated question")
    for written in (False, True):
        for word in ("uniquewordintail", "SYSTEMWORD", "EarlierWord", "LateUserWord", "systemword lateuserword"):
            found = flows(proxy, q=word)
            assert found["total"] == 1 and found["partial"] is False, (word, written)
        settle(proxy)
    detail = proxy.admin("GET", f"/flows/{flows(proxy, q='lateuserword')['flows'][0]['id']}").json()
    assert detail["request"]["body"]["messages"][2]["content"].endswith("LateUserWord")
    assert detail["response"]["text"].endswith("UniqueWordInTail")


def test_paging_and_time_parameters(proxy, fake):
    proxy.add_account("acc-A")
    anthropic_call(proxy, "one")
    assert proxy.admin("GET", "/flows", params={"limit": 0}).status_code == 400
    assert proxy.admin("GET", "/logs", params={"limit": 0}).status_code == 400
    newest = flows(proxy)["flows"][0]["received_at"]
    from datetime import datetime, timezone
    before = datetime.fromtimestamp(newest - 60, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    after = datetime.fromtimestamp(newest + 60, tz=timezone.utc).isoformat()
    assert flows(proxy, since=before)["total"] == 1 and flows(proxy, since=after)["total"] == 0
    assert flows(proxy, until=before)["total"] == 0
    bad = proxy.admin("GET", "/flows", params={"since": "yesterday"})
    assert bad.status_code == 400 and "ISO-8601" in bad.json()["error"]["message"]


def test_export_needs_post(proxy):
    response = proxy.admin("GET", "/flows/export")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json()["error"]["type"] == "invalid_request" and "POST" in response.json()["error"]["message"]


def test_stats_logs_and_status(proxy, fake):
    account = proxy.add_account("acc-A")
    anthropic_call(proxy, "one")
    anthropic_call(proxy, "two", max_tokens=0)
    stats = proxy.admin("GET", "/stats").json()
    assert stats["since_start"]["requests"] == 2 and stats["since_start"]["errors"] == 1
    assert stats["since_start"]["input_tokens"] > 0 and stats["since_start"]["output_tokens"] > 0
    detailed = proxy.admin("GET", "/stats/detailed").json()
    assert len(detailed["hourly"]) == 24 and detailed["hourly"][-1]["requests"] == 2
    assert detailed["by_account"][account]["requests"] == 1
    assert detailed["errors_by_kind"] == {"invalid_request": 1}
    assert detailed["latency_24h"]["ttfb_ms"]["p50"] > 0
    lines = proxy.admin("GET", "/logs").json()["lines"]
    assert [line["status"] for line in lines] == [400, 200]
    assert proxy.admin("GET", "/logs", params={"errors": "true"}).json()["count"] == 1
    text = proxy.admin("GET", "/logs", params={"format": "text", "limit": 1}).text
    assert text.count("\n") == 1 and " 400 " in text
    status = proxy.admin("GET", "/status").json()
    assert status["listen"] == proxy.url.replace("http://", "")
    assert status["accounts"]["active"] == 1 and status["store"]["flows"] == 2
    assert status["data_dir"] == str(Path(proxy.settings.data_dir)) and status["tokenizer"] in ("tiktoken", "estimate")
    assert status["version"] and status["uptime_seconds"] >= 0 and status["in_flight"] == 0
