"""Account operations through the real server: every account, token, quota and config endpoint."""
from __future__ import annotations

import json
import time

import pytest

from tests import factories
from tests.fakes.forward_proxy import ForwardProxy
from tests.fakes.scripts import Reply, monthly_limit, suspended, text_answer, throttled

from .conftest import wait_for


def chat(proxy, text: str = "hi"):
    return proxy.http.post(proxy.url + "/v1/messages", headers={"x-api-key": "k"}, timeout=30,
                           json=factories.anthropic_body(text))


def accounts(proxy) -> list:
    return proxy.admin("GET", "/accounts").json()["accounts"]


def test_listing_has_every_field_and_no_token_values(proxy):
    token = factories.token_file("acc-listing-secret")
    added = proxy.admin("POST", "/accounts", json={**token, "name": "work"})
    assert added.status_code == 201
    response = proxy.admin("GET", "/accounts")
    (account,) = response.json()["accounts"]
    for key in ("id", "name", "auth_method", "provider", "region", "state", "reason", "token_expires_at",
                "requests", "errors", "last_used", "quota", "cooldown_until", "exhausted_until", "enabled"):
        assert key in account
    assert (account["name"], account["auth_method"], account["state"]) == ("work", "social", "active")
    for secret in (token["accessToken"], token["refreshToken"]):
        assert secret not in response.text
        assert secret not in proxy.admin("GET", f"/accounts/{account['id']}").text


def test_pasted_tokens_and_updates_without_duplicates(proxy):
    pasted = {"accessToken": "pasted-access", "refreshToken": factories.refresh_token("pasted"),
              "expiresIn": 3600}
    first = proxy.admin("POST", "/accounts", json=pasted)
    assert first.status_code == 201
    again = proxy.admin("POST", "/accounts", json={**pasted, "accessToken": "newer-access"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(accounts(proxy)) == 1
    chat(proxy)
    assert proxy.fake.requests_to("/generateAssistantResponse")[-1].token == "newer-access"


@pytest.mark.parametrize("body, fragment", [
    ({"accessToken": "a"}, "refreshToken is required"),
    ({"accessToken": "a", "refreshToken": "aor-short"}, "truncated"),
    ({"accessToken": "a", "refreshToken": factories.refresh_token("x"), "authMethod": "IdC"}, "clientSecret"),
    ([1, 2], "JSON object"),
])
def test_bad_account_bodies_are_400(proxy, body, fragment):
    response = proxy.admin("POST", "/accounts", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert accounts(proxy) == []


def test_unknown_ids_are_404_and_delete_works(proxy):
    assert proxy.admin("GET", "/accounts/nope").status_code == 404
    account = proxy.add_account("acc-A")
    assert proxy.admin("DELETE", f"/accounts/{account}").status_code == 200
    assert proxy.admin("DELETE", f"/accounts/{account}").status_code == 404
    for path in ("/toggle", "/refresh", "/restore"):
        assert proxy.admin("POST", f"/accounts/{account}{path}").status_code == 404
    assert proxy.admin("GET", f"/accounts/{account}/usage").status_code == 404


def test_toggle_takes_an_account_out_of_rotation(proxy, fake):
    first = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    off = proxy.admin("POST", f"/accounts/{first}/toggle").json()["account"]
    assert (off["enabled"], off["state"]) == (False, "disabled")
    for n in range(3):
        chat(proxy, f"question {n}")
    assert {r.token for r in fake.requests_to("/generateAssistantResponse")} == {"acc-B"}
    on = proxy.admin("POST", f"/accounts/{first}/toggle", json={"enabled": True}).json()["account"]
    assert on["state"] == "active"


def test_refresh_now_and_permanent_failure(proxy, fake):
    account = proxy.add_account("acc-A")
    refreshed = proxy.admin("POST", f"/accounts/{account}/refresh")
    assert refreshed.status_code == 200 and fake.refresh_count == 1
    chat(proxy)
    assert fake.requests_to("/generateAssistantResponse")[-1].token.startswith("fake-access-")
    fake.queue_refresh(Reply(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}))
    failed = proxy.admin("POST", f"/accounts/{account}/refresh")
    assert failed.status_code == 409
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert summary["state"] == "unhealthy" and "refresh" in summary["reason"]
    restored = proxy.admin("POST", f"/accounts/{account}/restore").json()["account"]
    assert restored["state"] == "active" and restored["reason"] == ""


def test_restore_clears_a_cooldown(proxy, fake):
    account = proxy.add_account("acc-A")
    fake.queue(throttled("600"), token="acc-A")
    assert chat(proxy).status_code == 429
    assert proxy.admin("GET", f"/accounts/{account}").json()["account"]["state"] == "cooldown"
    proxy.admin("POST", f"/accounts/{account}/restore")
    assert chat(proxy).status_code == 200


def test_live_usage_and_quota_totals(proxy, fake):
    first = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    usage = proxy.admin("GET", f"/accounts/{first}/usage").json()
    quota = usage["quota"]
    assert quota["remaining"] == pytest.approx(534.5)
    assert quota["next_reset_at"] == 1767225600.0
    assert quota["subscription"] == "KIRO FREE" and quota["email"] == "u@example.com"
    sent = fake.requests_to("/getUsageLimits")[-1]
    assert sent.query["resourceType"] == "AGENTIC_REQUEST" and sent.query["origin"] == "AI_EDITOR"
    fake.queue(throttled("300"), token="acc-A")
    chat(proxy)
    pool = proxy.admin("GET", "/quota").json()
    assert pool["totals"]["remaining"] == pytest.approx(534.5 * 2)
    assert [c["id"] for c in pool["cooling_down"]] == [first]
    calls = len(fake.requests_to("/getUsageLimits"))
    proxy.admin("GET", "/quota")  # served from the short cache
    assert len(fake.requests_to("/getUsageLimits")) == calls
    listed = proxy.admin("GET", f"/accounts/{first}").json()["account"]
    assert listed["quota"]["remaining"] == pytest.approx(534.5)


def test_refresh_all_and_refresh_check(proxy, fake):
    proxy.add_account("acc-A", expires_in=120)   # inside the 10-minute margin
    proxy.add_account("acc-B", expires_in=7200)
    proxy.add_account("acc-C", expires_in=-60)
    checked = proxy.admin("POST", "/token/refresh-check").json()["accounts"]
    statuses = [row["status"] for row in checked]
    assert statuses == ["valid", "valid", "valid"]  # the expiring and expired ones were refreshed
    assert fake.refresh_count == 2
    results = proxy.admin("POST", "/accounts/refresh-all").json()["results"]
    assert len(results) == 3 and all(r["refreshed"] for r in results)
    assert fake.refresh_count == 5


def write_token_file(home, data, name="kiro-auth-token.json"):
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / name
    path.write_text(json.dumps(data))
    return path


def test_scan_and_add_from_scan(proxy):
    path = write_token_file(proxy.home, factories.token_file("acc-scan"))
    found = proxy.admin("GET", "/token/scan").json()["tokens"]
    (entry,) = [t for t in found if t["path"] == str(path)]
    assert entry["already_added"] is False and entry["auth_method"] == "social" and entry["problem"] is None
    assert "acc-scan" not in json.dumps(found)
    added = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)})
    assert added.status_code == 201
    again = proxy.admin("GET", "/token/scan").json()["tokens"]
    assert [t["already_added"] for t in again if t["path"] == str(path)] == [True]
    assert proxy.admin("POST", "/token/add-from-scan", json={"path": "/etc/passwd"}).status_code == 404
    assert proxy.admin("POST", "/token/add-from-scan", json={}).status_code == 400


def test_export_import_into_a_fresh_data_directory(make_proxy, fake, tmp_path):
    source = make_proxy()
    first = source.add_account("acc-export-A")
    source.add_account("acc-export-B", auth_method="IdC", provider="BuilderId")
    source.admin("PATCH", f"/accounts/{first}", json={"name": "primary"})
    masked = source.admin("GET", "/config/export")
    assert "acc-export-A" not in masked.text and "secret-acc-export-B" not in masked.text
    full = source.admin("GET", "/config/export?include_secrets=true").json()
    assert any(a["access_token"] == "acc-export-A" for a in full["accounts"])
    before = {a["id"]: (a["name"], a["machine_id"]) for a in accounts(source)}

    target = make_proxy(data_dir=str(tmp_path / "elsewhere"))
    assert accounts(target) == []
    result = target.admin("POST", "/config/import", json=full).json()
    assert len(result["added"]) == 2 and result["updated"] == [] and result["skipped"] == []
    after = {a["id"]: (a["name"], a["machine_id"]) for a in accounts(target)}
    assert after == before
    chat(target)
    assert fake.requests_to("/generateAssistantResponse")[-1].token in ("acc-export-A", "acc-export-B")

    # The masked export matches existing accounts by identity: updated, nothing dropped or added.
    merged = source.admin("POST", "/config/import", json=masked.json()).json()
    assert len(merged["updated"]) == 2 and merged["added"] == []
    # ...and cannot create accounts where none match.
    fresh = make_proxy(data_dir=str(tmp_path / "third"))
    skipped = fresh.admin("POST", "/config/import", json=masked.json()).json()
    assert len(skipped["skipped"]) == 2 and "without secrets" in skipped["skipped"][0]["reason"]


@pytest.mark.parametrize("document", [
    {"accounts": []},
    {"kiroproxy_export": 1, "accounts": [{"auth_method": "martian", "refresh_token": "x" * 120}]},
    {"kiroproxy_export": 1, "accounts": "nope"},
    {"kiroproxy_export": 1, "settings": {"port": "high"}},
    {"kiroproxy_export": 1, "settings": {"no_such_setting": 1}},
])
def test_broken_import_changes_nothing(proxy, document):
    proxy.add_account("acc-A")
    config_file = proxy.home / ".kiro-proxy" / "config.json"
    before_accounts = accounts(proxy)
    response = proxy.admin("POST", "/config/import", json=document)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert accounts(proxy) == before_accounts
    assert not config_file.exists()


def test_import_writes_settings_for_the_next_start(proxy):
    document = {"kiroproxy_export": 1, "settings": {"cooldown_seconds": 42, "model_aliases": {"x": "fast"}}}
    result = proxy.admin("POST", "/config/import", json=document).json()
    assert result["restart_required"] is True
    stored = json.loads((proxy.home / ".kiro-proxy" / "config.json").read_text())
    assert stored["cooldown_seconds"] == 42


def test_background_refresh_of_a_token_about_to_expire(make_proxy, fake):
    proxy = make_proxy(refresh_interval_seconds=0.05)
    account = proxy.add_account("acc-A", expires_in=120)
    wait_for(lambda: fake.refresh_count >= 1, timeout=10)
    summary = wait_for(lambda: (s := proxy.admin("GET", f"/accounts/{account}").json()["account"])
                       ["token_expires_at"] > time.time() + 1800 and s)
    assert summary["state"] == "active"
    stored = json.loads((proxy.home / ".kiro-proxy" / "accounts.json").read_text())
    (record,) = stored["_default"].values()
    assert record["access_token"].startswith("fake-access-")  # rotated token written back


def test_quota_exhaustion_parks_until_the_reset_date(proxy, fake):
    reset = time.time() + 10 * 86400
    usage = fake.usage
    usage["nextDateReset"] = reset
    usage["usageBreakdownList"][0]["nextDateReset"] = reset
    fake.usage = usage
    parked = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(monthly_limit(), token="acc-A")
    assert chat(proxy).status_code == 200
    summary = wait_for(lambda: (s := proxy.admin("GET", f"/accounts/{parked}").json()["account"])
                       ["exhausted_until"] == pytest.approx(reset) and s)
    assert summary["state"] == "exhausted"


def test_suspended_account_is_set_aside(proxy, fake):
    bad = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(suspended(), token="acc-A")
    chat(proxy, "first")
    for n in range(3):
        assert chat(proxy, f"again {n}").status_code == 200
    tokens = [r.token for r in fake.requests_to("/generateAssistantResponse")]
    assert tokens.count("acc-A") == 1
    summary = proxy.admin("GET", f"/accounts/{bad}").json()["account"]
    assert summary["state"] == "suspended" and "suspended" in summary["reason"].lower()
    proxy.admin("POST", f"/accounts/{bad}/restore")
    assert proxy.admin("GET", f"/accounts/{bad}").json()["account"]["state"] == "active"


def test_newer_token_in_the_scanned_file_is_adopted(make_proxy, fake):
    proxy = make_proxy(refresh_interval_seconds=0.05)
    data = factories.token_file("acc-old")
    path = write_token_file(proxy.home, data)
    account = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)}).json()["account"]["id"]
    fake.queue_refresh(Reply(400, {"error": "invalid_grant"}))
    proxy.admin("POST", f"/accounts/{account}/refresh")
    assert proxy.admin("GET", f"/accounts/{account}").json()["account"]["state"] == "unhealthy"
    newer = factories.token_file("acc-new", expires_in=7200)
    path.write_text(json.dumps(newer))
    wait_for(lambda: proxy.admin("GET", f"/accounts/{account}").json()["account"]["state"] == "active",
             timeout=10)
    fake.queue(text_answer("with adopted token"))
    assert chat(proxy).status_code == 200
    assert fake.requests_to("/generateAssistantResponse")[-1].token == "acc-new"


def test_per_account_outbound_proxy(proxy, fake):
    account = proxy.add_account("acc-A")
    with ForwardProxy() as forward:
        patched = proxy.admin("PATCH", f"/accounts/{account}", json={"proxy_url": forward.url})
        assert patched.status_code == 200
        assert chat(proxy).status_code == 200
        proxy.admin("GET", f"/accounts/{account}/usage")
        proxy.admin("POST", f"/accounts/{account}/refresh")
        assert forward.seen == ["POST /generateAssistantResponse", "GET /getUsageLimits", "POST /refreshToken"]
    assert proxy.admin("PATCH", f"/accounts/{account}", json={"proxy_url": "not a url"}).status_code == 400


def test_global_outbound_proxy(make_proxy, fake):
    with ForwardProxy() as forward:
        proxy = make_proxy(proxy_url=forward.url)
        proxy.add_account("acc-A")
        assert chat(proxy).status_code == 200
        assert forward.seen == ["POST /generateAssistantResponse"]
