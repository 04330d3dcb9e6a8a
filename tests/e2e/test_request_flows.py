"""Every client call leaves a flow: token counts, and calls refused before any view took them.

Checked through the admin API (/api/flows, /api/stats), as a user of the UI would see them.
"""
from __future__ import annotations

import pytest

import kiroproxy.app

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
COUNT_BODY = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "count these words"}]}


def flows(proxy) -> list:
    assert proxy.services.flows.flush(10)
    response = proxy.admin("GET", "/flows")
    assert response.status_code == 200, response.text
    return response.json()["flows"]


def since_start(proxy) -> dict:
    return proxy.admin("GET", "/stats").json()["since_start"]


def test_anthropic_count_tokens_is_recorded_without_token_usage(proxy):
    response = proxy.http.post(proxy.url + "/v1/messages/count_tokens?beta=true", json=COUNT_BODY,
                               headers=ANTHROPIC)
    assert response.status_code == 200 and response.json()["input_tokens"] > 0
    (flow,) = flows(proxy)
    assert (flow["protocol"], flow["path"], flow["state"], flow["status"]) == (
        "anthropic", "/v1/messages/count_tokens", "completed", 200)
    assert flow["requested_model"] == "claude-sonnet-4-6" and flow["model"] == "claude-sonnet-4.6"
    assert flow["duration_ms"] is not None and flow["error"] is None
    # Nothing went upstream: counting must not inflate the token statistics.
    assert (flow["input_tokens"], flow["output_tokens"]) == (0, 0)
    detail = proxy.admin("GET", f"/flows/{flow['id']}").json()
    assert detail["request"]["body"]["messages"][0]["content"] == "count these words"


def test_failed_count_tokens_is_recorded_as_an_error(proxy):
    response = proxy.http.post(proxy.url + "/v1/messages/count_tokens", headers=ANTHROPIC,
                               json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    (flow,) = flows(proxy)
    assert (flow["state"], flow["status"], flow["error_kind"]) == ("error", 404, "model_not_found")


def test_gemini_count_tokens_is_recorded(proxy):
    response = proxy.http.post(proxy.url + "/v1beta/models/gemini-2.5-pro:countTokens",
                               headers={"x-goog-api-key": "k"},
                               json={"contents": [{"role": "user", "parts": [{"text": "count me"}]}]})
    assert response.status_code == 200 and response.json()["totalTokens"] > 0
    (flow,) = flows(proxy)
    assert (flow["protocol"], flow["state"], flow["status"]) == ("gemini", "completed", 200)
    assert flow["path"].endswith(":countTokens") and flow["requested_model"] == "gemini-2.5-pro"


@pytest.mark.parametrize("method, path, status, protocol", [
    ("POST", "/v1/no-such-endpoint", 404, "openai"),
    ("POST", "/v1beta/no-such-endpoint", 404, "gemini"),
    ("GET", "/v1/messages", 405, "anthropic"),
    ("PUT", "/v1/chat/completions", 405, "openai"),
    ("POST", "/wrong-base/v1/messages", 404, "anthropic"),
    ("POST", "/v1beta/models/gemini-2.5-pro:explode", 404, "gemini"),
])
def test_calls_refused_before_a_view_are_recorded(proxy, method, path, status, protocol):
    response = proxy.http.request(method, proxy.url + path, json={"model": "m"}, headers={"x-api-key": "k"})
    assert response.status_code == status
    (flow,) = flows(proxy)
    assert (flow["path"], flow["state"], flow["status"], flow["protocol"]) == (path, "error", status, protocol)
    assert flow["error"]["message"]


def test_a_body_over_the_limit_is_a_413_flow(make_proxy, monkeypatch):
    monkeypatch.setattr(kiroproxy.app, "MAX_BODY", 4096)
    proxy = make_proxy()
    response = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC,
                               json={**COUNT_BODY, "max_tokens": 5, "pad": "x" * 10_000})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    (flow,) = flows(proxy)
    assert (flow["state"], flow["status"], flow["error_kind"]) == ("error", 413, "request_too_large")


def test_admin_and_browser_paths_are_never_flows(proxy):
    assert proxy.http.get(proxy.url + "/").status_code == 200  # the admin page
    assert proxy.http.get(proxy.url + "/ui/style.css").status_code == 200
    assert proxy.http.get(proxy.url + "/favicon.ico").status_code == 404
    assert proxy.http.get(proxy.url + "/api/no-such-route").status_code == 401
    assert proxy.admin("GET", "/no-such-route").status_code == 404
    assert proxy.admin("DELETE", "/accounts").status_code == 405
    assert flows(proxy) == []


def test_stats_add_up_across_answers_counts_and_refusals(proxy, fake):
    proxy.add_account("acc-A")
    answered = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC,
                               json={**COUNT_BODY, "max_tokens": 64})
    assert answered.status_code == 200
    assert proxy.http.post(proxy.url + "/v1/messages/count_tokens", json=COUNT_BODY,
                           headers=ANTHROPIC).status_code == 200
    assert proxy.http.post(proxy.url + "/v1/nowhere", json={}, headers=ANTHROPIC).status_code == 404
    listed = flows(proxy)
    stats = since_start(proxy)
    assert stats["requests"] == len(listed) == 3
    assert stats["errors"] == sum(1 for f in listed if f["error"]) == 1
    assert stats["input_tokens"] == sum(f["input_tokens"] for f in listed) == answered.json()["usage"][
        "input_tokens"]
    assert stats["output_tokens"] == sum(f["output_tokens"] for f in listed)
    assert proxy.admin("GET", "/status").json()["in_flight"] == 0
