"""Metrics: a per-app registry, bounded model labels, text that prometheus_client parses; the
health checks' verdicts."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kiroproxy import health, metrics
from kiroproxy.exchange import Exchange, ExchangeSnapshot


def scrape(m: metrics.Metrics) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(m.render().decode()) for s in family.samples}


def served(model: str) -> ExchangeSnapshot:
    return ExchangeSnapshot(protocol="openai", path="/v1/chat/completions", received_at=1.0, model=model,
                            account_id="a", first_byte_at=1.5, completed_at=3.0)


def test_two_apps_count_apart_and_model_labels_are_bounded():
    first = metrics.Metrics(lambda: {"active": 1}, lambda: {"flows": 0, "bytes": 0, "in_flight": 0})
    second = metrics.Metrics(lambda: {"active": 0}, lambda: {"flows": 0, "bytes": 0, "in_flight": 0})
    for n in range(metrics.MAX_MODELS + 5):
        first.finished(served(f"model-{n}"))
    counts = scrape(first)
    models = {dict(labels)["model"] for (name, labels) in counts if name == "kiroproxy_requests_total"}
    assert len(models) == metrics.MAX_MODELS + 1 and metrics.OTHER in models
    assert counts[("kiroproxy_time_to_first_byte_seconds_count", (("protocol", "openai"),))] == metrics.MAX_MODELS + 5
    assert not any(name == "kiroproxy_requests_total" for (name, _) in scrape(second))


def test_health_verdicts(tmp_path):
    upstream = health.UpstreamHealth(failing_after=2)
    assert health.report({"active": 1}, upstream, tmp_path)["status"] == "ok"
    assert "cooling down" in health.accounts_check({"active": 0, "cooldown": 2})["reason"]
    assert "login" in health.accounts_check({"active": 0})["reason"]
    failing = Exchange("anthropic", "/v1/messages")
    failing.fail(502, "upstream", "Kiro answered 500", 2.0)
    upstream.finished(failing.ended(2.0))
    upstream.finished(failing.ended(2.0))
    report = health.report({"active": 1}, upstream, tmp_path / "missing")
    assert report["status"] == "degraded"
    assert not report["checks"]["upstream"]["ok"] and not report["checks"]["data_dir"]["ok"]
    upstream.finished(served("m"))  # an answer came through
    assert upstream.check()["ok"]
