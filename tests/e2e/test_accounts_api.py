"""Account operations through the real server: every account, token, quota and config endpoint."""
from __future__ import annotations

import json
import os
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

    def stored_token() -> str:
        (record,) = json.loads((proxy.home / ".kiro-proxy" / "accounts.json").read_text())["_default"].values()
        return record["access_token"]

    # The rotated token is written back (the listing can show it a moment before the file does).
    assert wait_for(lambda: stored_token().startswith("fake-access-"))


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


# ----- audit fixes: import, re-adding, adoption, quota, usage, validation, masking ------------------------


def test_import_takes_an_account_listed_twice_once_and_keeps_going(proxy):
    token = factories.refresh_token("dup")
    document = {"kiroproxy_export": 1, "accounts": [
        {"id": "x1", "refresh_token": token, "access_token": "acc-1", "name": "first"},
        {"id": "x2", "refresh_token": token, "access_token": "acc-2", "name": "copy"},
        {"id": "x3", "refresh_token": factories.refresh_token("third"), "access_token": "acc-3", "name": "third"},
        {"id": "../../x", "refresh_token": factories.refresh_token("unsafe"), "name": "unsafe"}]}
    response = proxy.admin("POST", "/config/import", json=document)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [a["name"] for a in result["added"]] == ["first", "third", "unsafe"]
    assert [(s["name"], "accounts.0" in s["reason"]) for s in result["skipped"]] == [("copy", True)]
    listed = {a["name"]: a["id"] for a in accounts(proxy)}
    assert set(listed) == {"first", "third", "unsafe"}
    assert listed["first"] == "x1" and listed["third"] == "x3"
    assert listed["unsafe"] != "../../x" and proxy.admin("GET", f"/accounts/{listed['unsafe']}").status_code == 200


def test_adding_a_known_account_again_keeps_what_the_user_set(proxy):
    path = write_token_file(proxy.home, factories.token_file("acc-Z"))
    account = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)}).json()["account"]["id"]
    user_set = {"name": "primary", "proxy_url": "http://127.0.0.1:3128"}
    proxy.admin("PATCH", f"/accounts/{account}", json=user_set)
    rescanned = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)})
    assert rescanned.status_code == 200 and rescanned.json()["created"] is False
    pasted = proxy.admin("POST", "/accounts", json={**factories.token_file("acc-Z2"),
                                                    "refreshToken": json.loads(path.read_text())["refreshToken"]})
    assert pasted.status_code == 200 and "already added" in pasted.json()["message"]
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert (summary["name"], summary["proxy_url"]) == ("primary", user_set["proxy_url"])
    assert summary["source_path"] == str(path)
    renamed = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path), "name": "renamed"})
    assert renamed.json()["account"]["name"] == "renamed"


def test_a_token_file_that_now_holds_another_account_is_not_adopted(make_proxy, fake, caplog):
    proxy = make_proxy(refresh_interval_seconds=0.05)
    path = write_token_file(proxy.home, factories.token_file("acc-alice", provider="Google"))
    account = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)}).json()["account"]["id"]
    # The user signs in to Kiro as somebody else: Kiro rewrites the same file.
    path.write_text(json.dumps(factories.token_file("acc-bob", provider="Github", expires_in=7200)))
    later = path.stat().st_mtime + 10
    os.utime(path, (later, later))
    wait_for(lambda: "not adopting" in caplog.text, timeout=10)
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert summary["provider"] == "Google" and summary["state"] == "active"
    assert chat(proxy).status_code == 200
    assert fake.requests_to("/generateAssistantResponse")[-1].token == "acc-alice"
    # Scanning shows the file as not added: it is another account now.
    (entry,) = [t for t in proxy.admin("GET", "/token/scan").json()["tokens"] if t["path"] == str(path)]
    assert entry["already_added"] is False


def test_quota_does_not_ask_kiro_about_accounts_the_user_must_fix(proxy, fake):
    proxy.add_account("acc-G")
    broken = proxy.add_account("acc-B")
    fake.queue_refresh(Reply(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}))
    proxy.admin("POST", f"/accounts/{broken}/refresh")
    refreshes = fake.refresh_count
    for _ in range(3):
        rows = {r["id"]: r for r in proxy.admin("GET", "/quota").json()["accounts"]}
        assert rows[broken]["state"] == "unhealthy" and "sign in again" in rows[broken]["reason"]
        assert "quota" not in rows[broken] and "error" not in rows[broken]
    assert fake.refresh_count == refreshes
    assert {r.token for r in fake.requests_to("/getUsageLimits")} == {"acc-G"}


def test_usage_refreshes_a_rejected_token_once(proxy, fake):
    account = proxy.add_account("acc-G")
    fake.queue_usage(Reply(403, {"message": "The bearer token included in the request is invalid"}), token="acc-G")
    response = proxy.admin("GET", f"/accounts/{account}/usage")
    assert response.status_code == 200 and response.json()["quota"]["remaining"] == pytest.approx(534.5)
    assert fake.refresh_count == 1
    assert fake.requests_to("/getUsageLimits")[-1].token.startswith("fake-access-")


def test_usage_failures_are_upstream_errors_and_move_the_account(proxy, fake):
    account = proxy.add_account("acc-G")
    bearer = Reply(403, {"message": "The bearer token included in the request is invalid"})
    fake.queue_usage(bearer, bearer)
    rejected = proxy.admin("GET", f"/accounts/{account}/usage")
    assert rejected.status_code == 502 and "WWW-Authenticate" not in rejected.headers
    assert "usage query" in rejected.json()["error"]["message"]
    fake.queue_usage(Reply(402, {"message": "monthly limit", "reason": "MONTHLY_REQUEST_COUNT"}))
    assert proxy.admin("GET", f"/accounts/{account}/usage").status_code == 503
    parked = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert parked["state"] == "exhausted" and parked["exhausted_until"] > time.time() + 60
    proxy.admin("POST", f"/accounts/{account}/restore")
    fake.queue_usage(Reply(403, {"message": "Your account is suspended", "reason": "TEMPORARILY_SUSPENDED"}))
    assert proxy.admin("GET", f"/accounts/{account}/usage").status_code == 502
    assert proxy.admin("GET", f"/accounts/{account}").json()["account"]["state"] == "suspended"


def test_a_pasted_account_shows_in_the_scan_and_add_from_scan_links_it(proxy):
    data = factories.token_file("acc-P")
    pasted = proxy.admin("POST", "/accounts", json=data).json()["account"]["id"]
    path = write_token_file(proxy.home, data, name="kiro-other-token.json")
    (entry,) = [t for t in proxy.admin("GET", "/token/scan").json()["tokens"] if t["path"] == str(path)]
    assert (entry["already_added"], entry["account_id"], entry["matched_by"]) == (True, pasted, "refresh token")
    linked = proxy.admin("POST", "/token/add-from-scan", json={"path": str(path)})
    assert linked.status_code == 200 and linked.json()["created"] is False and linked.json()["message"]
    assert linked.json()["account"]["id"] == pasted and linked.json()["account"]["source_path"] == str(path)
    assert len(accounts(proxy)) == 1


def test_pasting_the_token_of_a_scanned_file_links_the_file(proxy):
    data = factories.token_file("acc-L")
    path = write_token_file(proxy.home, data)
    pasted = proxy.admin("POST", "/accounts", json=data).json()["account"]
    assert pasted["source_path"] == str(path)


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/toggle", {"enabled": "false"}),
    ("POST", "/toggle", {"enabled": 0}),
    ("PATCH", "", {"enabled": "false"}),
    ("PATCH", "", {"proxy_url": "not a url"}),
    ("PATCH", "", {"proxy_url": "ftp://host:21"}),
    ("PATCH", "", {"name": 5}),
])
def test_account_changes_take_only_well_typed_values(proxy, method, path, body):
    account = proxy.add_account("acc-A")
    before = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    response = proxy.admin(method, f"/accounts/{account}{path}", json=body)
    assert response.status_code == 400, response.text
    assert proxy.admin("GET", f"/accounts/{account}").json()["account"] == before


@pytest.mark.parametrize("raw, fragment", [
    ('{"accessToken": "a", "refreshToken": "%s", "expiresIn": 1e400}', "out of range"),
    ('{"accessToken": "a", "refreshToken": "%s", "expiresIn": 1e12}', "expiresIn"),
    ('{"accessToken": "a", "refreshToken": "%s", "expiresIn": Infinity}', "JSON"),
    ('{"accessToken": "a", "refreshToken": "%s", "expiresAt": true}', "expiresAt"),
    ('{"accessToken": "a", "refreshToken": "%s", "expiresAt": 1e300}', "expiresAt"),
    ('{"accessToken": "a", "refreshToken": "%s", "proxyUrl": "not a url"}', "proxyUrl"),
])
def test_absurd_pasted_values_are_400(proxy, raw, fragment):
    body = raw % factories.refresh_token("absurd")
    response = proxy.admin("POST", "/accounts", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and fragment in response.json()["error"]["message"]
    listing = proxy.admin("GET", "/accounts")
    assert listing.json()["accounts"] == [] and "Infinity" not in listing.text


@pytest.mark.parametrize("account", [
    {"refresh_token": factories.refresh_token("i"), "proxy_url": "not a url"},
    {"refresh_token": factories.refresh_token("i"), "enabled": "false"},
    {"refresh_token": factories.refresh_token("i"), "expires_at": True},
    {"refresh_token": factories.refresh_token("i"), "expires_at": 1e300},
])
def test_import_checks_values_like_the_account_api(proxy, account):
    response = proxy.admin("POST", "/config/import", json={"kiroproxy_export": 1, "accounts": [account]})
    assert response.status_code == 400 and "accounts.0" in response.json()["error"]["message"]
    assert accounts(proxy) == []


def test_proxy_passwords_are_masked_unless_secrets_are_asked_for(make_proxy):
    proxy = make_proxy(proxy_url="http://global:g1obalpw@127.0.0.1:9")
    account = proxy.add_account("acc-Q")
    proxy.admin("PATCH", f"/accounts/{account}", json={"proxy_url": "http://user:s3cretpw@127.0.0.1:9"})
    (proxy.home / ".kiro-proxy" / "config.json").write_text(json.dumps({"proxy_url": "http://global:g1obalpw@h:9"}))
    listing = proxy.admin("GET", "/accounts")
    assert "s3cretpw" not in listing.text
    assert listing.json()["accounts"][0]["proxy_url"] == "http://user:***@127.0.0.1:9"
    # A page sending the shown (masked) value back unchanged keeps the real password.
    proxy.admin("PATCH", f"/accounts/{account}", json={"name": "x", "proxy_url": "http://user:***@127.0.0.1:9"})
    masked = proxy.admin("GET", "/config/export")
    assert "s3cretpw" not in masked.text and "g1obalpw" not in masked.text
    full = proxy.admin("GET", "/config/export?include_secrets=true").json()
    assert full["accounts"][0]["proxy_url"] == "http://user:s3cretpw@127.0.0.1:9"
    assert full["settings"]["proxy_url"] == "http://global:g1obalpw@h:9"
    # Importing the masked export keeps the real passwords.
    assert proxy.admin("POST", "/config/import", json=masked.json()).status_code == 200
    again = proxy.admin("GET", "/config/export?include_secrets=true").json()
    assert again["accounts"][0]["proxy_url"] == "http://user:s3cretpw@127.0.0.1:9"
    assert json.loads((proxy.home / ".kiro-proxy" / "config.json").read_text())["proxy_url"].endswith("g1obalpw@h:9")


def test_a_broken_config_file_is_named_not_a_crash(proxy):
    proxy.add_account("acc-A")
    (proxy.home / ".kiro-proxy" / "config.json").write_text("{broken")
    for method, path, body in (("GET", "/config/export", None), ("POST", "/config/import", {"kiroproxy_export": 1})):
        response = proxy.admin(method, path, json=body)
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["type"] == "config_error" and "config.json" in error["message"]


def test_refresh_check_reports_the_status_before_and_the_outcome(proxy, fake):
    proxy.add_account("acc-A", expires_in=-60)
    proxy.add_account("acc-B", expires_in=120)
    fake.queue_refresh(Reply(500, {"message": "down"}))
    rows = proxy.admin("POST", "/token/refresh-check").json()["accounts"]
    assert [(r["before"], r["outcome"]) for r in rows] == [("expired", "refresh failed"), ("expiring", "refreshed")]
    fake.queue_refresh(Reply(500, {"message": "down"}))
    message = proxy.admin("POST", f"/accounts/{rows[0]['id']}/refresh").json()["error"]["message"]
    assert message.lower().count("token refresh failed") == 1
