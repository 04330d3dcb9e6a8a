"""/healthz, /metrics and the per-request log line, against the real server started by the real
command line (a subprocess) and the fake Kiro. /metrics is parsed with prometheus_client's parser."""
from __future__ import annotations

import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import factories
from tests.fakes.scripts import text_answer

from .conftest import wait_for
from .test_server_process import Process


def metrics(url: str, **headers: str) -> dict:
    """{(sample name, sorted labels): value} of one scrape."""
    response = requests.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_healthz_says_what_is_wrong_and_turns_ok(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        first = requests.get(proc.url + "/healthz", timeout=10)
        assert first.status_code == 503
        body = first.json()
        assert body["status"] == "degraded" and not body["checks"]["accounts"]["ok"]
        assert "kiroproxy login builder-id" in body["checks"]["accounts"]["reason"]
        assert body["checks"]["data_dir"]["ok"] and body["checks"]["upstream"]["ok"]
        assert proc.key not in first.text
        account = proc.admin("POST", "/accounts", json=factories.token_file("acc-H")).json()["account"]["id"]
        ok = requests.get(proc.url + "/healthz", timeout=10)
        assert (ok.status_code, ok.json()["status"]) == (200, "ok")
        proc.admin("POST", f"/accounts/{account}/toggle", json={"enabled": False})
        disabled = requests.get(proc.url + "/healthz", timeout=10).json()
        assert disabled["status"] == "degraded" and "no usable account" in disabled["checks"]["accounts"]["reason"]
        assert "acc-H" not in str(disabled)
    finally:
        assert proc.stop() == 0


def test_metrics_count_requests_errors_tokens_refreshes_and_accounts(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url)
    try:
        before = metrics(proc.url)
        assert before[("kiroproxy_accounts", (("state", "active"),))] == 0
        refused = requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(), timeout=30)
        assert refused.status_code == 503  # no account yet
        account = proc.admin("POST", "/accounts", json=factories.token_file("acc-M")).json()["account"]["id"]
        fake.queue(text_answer("hello there"))
        ok = requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(stream=True), timeout=30)
        assert ok.status_code == 200 and "hello there" in ok.text
        assert proc.admin("POST", f"/accounts/{account}/refresh").status_code == 200
        wait_for(lambda: metrics(proc.url).get(("kiroproxy_requests_total", (
            ("model", "claude-sonnet-4.5"), ("protocol", "anthropic"), ("status", "200")))) == 1)
        after = metrics(proc.url)
        assert sum(v for (n, _), v in after.items() if n == "kiroproxy_errors_total") == 1
        assert sum(v for (n, labels), v in after.items()
                   if n == "kiroproxy_requests_total" and ("status", "503") in labels) == 1
        assert after[("kiroproxy_time_to_first_byte_seconds_count", (("protocol", "anthropic"),))] == 1
        assert after[("kiroproxy_request_duration_seconds_count", (("protocol", "anthropic"),))] == 2
        assert after[("kiroproxy_tokens_total", (("direction", "output"),))] > 0
        assert after[("kiroproxy_tokens_total", (("direction", "input"),))] > 0
        assert after[("kiroproxy_token_refreshes_total", (("outcome", "ok"),))] == 1
        assert after[("kiroproxy_accounts", (("state", "active"),))] == 1
        assert after[("kiroproxy_flows_stored", ())] >= 1
        assert proc.key not in requests.get(proc.url + "/metrics", timeout=10).text
    finally:
        assert proc.stop() == 0


def test_metrics_need_the_admin_key_beyond_loopback(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    proc = Process(home, fake.url, "--host", "0.0.0.0", extra_env={"KIROPROXY_API_KEYS": "lan-key"})
    try:
        url = proc.url.replace("0.0.0.0", "127.0.0.1")
        assert requests.get(url + "/metrics", timeout=10).status_code == 401
        client_key = {"Authorization": "Bearer lan-key"}
        assert requests.get(url + "/metrics", headers=client_key, timeout=10).status_code == 401
        assert ("kiroproxy_accounts", (("state", "active"),)) in metrics(url, Authorization=f"Bearer {proc.key}")
        assert requests.get(url + "/healthz", timeout=10).status_code == 503  # health needs no key
    finally:
        assert proc.stop() == 0


def test_one_log_line_per_request_for_every_outcome(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    secret_model = factories.token_like("sk-ant-api03-", "Z" * 40)
    proc = Process(home, fake.url)
    try:
        requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(), timeout=30)  # 503: no account
        proc.admin("POST", "/accounts", json=factories.token_file("acc-L"))
        fake.queue(text_answer("logged"))
        requests.post(proc.url + "/v1/chat/completions", timeout=30,
                      json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(model=secret_model), timeout=30)
        lines = wait_for(lambda: [line for line in proc.lines if "kiroproxy.requests" in line][:3]
                         if sum("kiroproxy.requests" in line for line in proc.lines) >= 3 else None)
    finally:
        assert proc.stop() == 0
    refused, served, unknown = lines
    assert "INFO" in refused and "protocol=anthropic" in refused and "path=/v1/messages" in refused
    assert "status=503" in refused and "reason=" in refused
    assert "protocol=openai" in served and "model=claude-sonnet-4" in served and "status=200" in served
    assert "account=" in served and "account=-" not in served and "ttfb_ms=" in served and "duration_ms=" in served
    assert "status=404" in unknown and secret_model not in "".join(proc.lines)


def test_a_network_failure_names_the_upstream_host_and_degrades_health(tmp_path, fake):
    home = tmp_path / "home"
    home.mkdir()
    dead = closed_port_url()
    proc = Process(home, fake.url, extra_env={"KIROPROXY_KIRO_API_URL": dead, "KIROPROXY_MAX_ATTEMPTS": "1",
                                              "KIROPROXY_RETRY_BACKOFF_SECONDS": "0",
                                              "KIROPROXY_MODEL_CATALOG_TTL": "0"})
    try:
        proc.admin("POST", "/accounts", json=factories.token_file("acc-N"))
        for _ in range(5):
            failed = requests.post(proc.url + "/v1/messages", json=factories.anthropic_body(), timeout=60)
            assert failed.status_code >= 500
        health = requests.get(proc.url + "/healthz", timeout=10)
        assert health.status_code == 503
        assert not health.json()["checks"]["upstream"]["ok"]
        assert "5 requests failed upstream" in health.json()["checks"]["upstream"]["reason"]
        line = wait_for(lambda: next((x for x in proc.lines if "kiroproxy.requests" in x), None))
    finally:
        assert proc.stop() == 0
    assert "upstream=127.0.0.1" in line and "status=503" in line and "kind=overloaded" in line
    assert "account=-" not in line  # the account that was tried
