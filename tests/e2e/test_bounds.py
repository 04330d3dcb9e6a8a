"""What clients send cannot grow the server's statistics, and /api/status shows the flow backlog."""
from __future__ import annotations

import json

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def test_many_distinct_long_model_names_keep_stats_bounded(proxy, fake):
    """The issue: 150 requests with long unknown model names made /api/stats/detailed 2.9 MB."""
    proxy.add_account("acc-A")
    for n in range(300):
        body = {"model": f"{n:03d}-" + "m" * 20_000, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        response = proxy.http.post(proxy.url + "/v1/messages", json=body, headers=ANTHROPIC, timeout=30)
        assert response.status_code == 404
    assert proxy.services.flows.flush(20)
    detailed = proxy.admin("GET", "/stats/detailed")
    assert detailed.status_code == 200
    assert len(detailed.content) < 50_000
    assert detailed.json()["by_model"]["(other)"]["requests"] == 300
    stats = proxy.admin("GET", "/stats")
    assert stats.status_code == 200 and len(stats.content) < 10_000
    flow_stats = proxy.admin("GET", "/flows/stats")
    assert flow_stats.status_code == 200 and len(flow_stats.content) < 50_000
    saved = proxy.home / ".kiro-proxy" / "stats.json"
    assert saved.stat().st_size < 50_000
    assert json.loads(saved.read_text())["requests"] == 300


def test_status_shows_the_flow_backlog(proxy):
    store = proxy.admin("GET", "/status").json()["store"]
    assert store["backlog_max_bytes"] == 64 * 2**20
    assert {"backlog_bytes", "bodies_dropped", "flows_dropped"} <= set(store)
