"""Signing in through the real server against the fake OIDC and Kiro auth endpoints: device login
(pending, slow_down, expiry, denial, cancel), social login (redirect URL, wrong state), and no
secret in any answer or log line."""
from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests import factories
from tests.fakes.kiro import DEVICE_CODE_GRANT
from tests.fakes.scripts import Reply, oauth_error

from .conftest import wait_for

REDIRECT = "kiro://kiro.kiroAgent/authenticate-success"


def start_device(proxy, **body) -> dict:
    response = proxy.admin("POST", "/kiro/login/start", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def poll(proxy, login_id: str) -> dict:
    response = proxy.admin("GET", "/kiro/login/poll", params={"id": login_id})
    assert response.status_code == 200, response.text
    return response.json()


def chat(proxy) -> requests.Response:
    return proxy.http.post(proxy.url + "/v1/messages", headers={"x-api-key": "k"}, timeout=30,
                           json=factories.anthropic_body())


def accounts(proxy) -> list:
    return proxy.admin("GET", "/accounts").json()["accounts"]


def browse(url: str) -> str:
    """Play the browser: open the sign-in page, return where it redirects (the kiro:// URL)."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def token_answer(access: str) -> Reply:
    return Reply(200, {"accessToken": access, "refreshToken": factories.refresh_token(access),
                       "expiresIn": 3600, "tokenType": "Bearer"})


def test_device_login_pending_then_success_then_chat(proxy, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.device_interval = 0
    fake.queue_token(oauth_error("authorization_pending"), token_answer("device-access"), grant=DEVICE_CODE_GRANT)
    started = start_device(proxy)
    first = poll(proxy, started["id"])
    second = poll(proxy, started["id"])

    assert started["user_code"].startswith("FAKE-")
    assert started["verification_uri_complete"].endswith("?user_code=" + started["user_code"])
    assert first["status"] == "pending" and first["retry_after"] > 0
    assert second["status"] == "success"
    (account,) = accounts(proxy)
    assert second["account_id"] == account["id"] == second["account"]["id"]
    assert (account["auth_method"], account["provider"], account["region"]) == ("idc", "BuilderId", "us-east-1")
    assert chat(proxy).status_code == 200
    assert fake.requests_to("/generateAssistantResponse")[-1].token == "device-access"
    polls = fake.requests_to("/token")
    assert len(polls) == 2
    registered = fake.requests_to("/client/register")[0].json
    assert registered["scopes"] == ["codewhisperer:completions", "codewhisperer:analysis",
                                    "codewhisperer:conversations"]
    secrets = [polls[0].json["deviceCode"], polls[0].json["clientSecret"], "device-access",
               factories.refresh_token("device-access")]
    answers = started, first, second, accounts(proxy), proxy.admin("GET", f"/accounts/{account['id']}").json()
    for secret in secrets:
        assert all(secret not in str(answer) for answer in answers)
        assert secret not in caplog.text


def test_the_account_refreshes_with_its_client_registration(proxy, fake):
    fake.device_interval = 0
    fake.queue_token(token_answer("device-access"), grant=DEVICE_CODE_GRANT)
    account_id = poll(proxy, start_device(proxy)["id"])["account_id"]
    refreshed = proxy.admin("POST", f"/accounts/{account_id}/refresh")

    assert refreshed.status_code == 200, refreshed.text
    refresh = [r.json for r in fake.requests_to("/token") if r.json["grantType"] == "refresh_token"]
    poll_body = fake.requests_to("/token")[0].json
    assert [(r["clientId"], r["clientSecret"], r["refreshToken"]) for r in refresh] == [
        (poll_body["clientId"], poll_body["clientSecret"], factories.refresh_token("device-access"))]


def test_slow_down_is_honoured(proxy, fake):
    fake.device_interval = 0
    fake.queue_token(oauth_error("slow_down"), grant=DEVICE_CODE_GRANT)
    started = start_device(proxy)
    slowed = poll(proxy, started["id"])
    early = poll(proxy, started["id"])

    assert slowed["status"] == early["status"] == "pending"
    assert 4.0 < slowed["retry_after"] <= 5.0 and 0 < early["retry_after"] <= 5.0
    assert len(fake.requests_to("/token")) == 1  # the early poll did not reach AWS


def test_the_login_expires(proxy, fake):
    fake.device_expires_in = 1
    started = start_device(proxy)
    assert poll(proxy, started["id"])["status"] == "pending"
    ended = wait_for(lambda: (lambda r: r if r["status"] != "pending" else None)(poll(proxy, started["id"])))
    assert ended["status"] == "expired"
    assert fake.requests_to("/token") == [] and accounts(proxy) == []


@pytest.mark.parametrize("error, status", [("expired_token", "expired"), ("access_denied", "denied")])
def test_upstream_expiry_and_denial(proxy, fake, error, status):
    fake.device_interval = 0
    fake.queue_token(oauth_error(error), grant=DEVICE_CODE_GRANT)
    result = poll(proxy, start_device(proxy)["id"])
    assert result["status"] == status and result["message"]
    assert accounts(proxy) == []


def test_cancel(proxy, fake):
    started = start_device(proxy)
    cancelled = proxy.admin("POST", "/kiro/login/cancel", json={"id": started["id"]})
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert poll(proxy, started["id"])["status"] == "cancelled"
    assert proxy.admin("POST", "/kiro/login/cancel", json={"id": "nope"}).status_code == 404
    assert proxy.admin("GET", "/kiro/login/poll", params={"id": "nope"}).status_code == 404
    assert fake.requests_to("/token") == []


def test_several_logins_share_one_client_registration(proxy, fake):
    fake.device_interval = 0
    first, second = start_device(proxy), start_device(proxy)
    enterprise = start_device(proxy, start_url="https://acme.awsapps.com/start", region="eu-central-1")
    results = [poll(proxy, s["id"]) for s in (second, first, enterprise)]

    assert len({first["user_code"], second["user_code"], enterprise["user_code"]}) == 3
    assert [r["status"] for r in results] == ["success"] * 3
    assert sorted((a["provider"], a["region"]) for a in accounts(proxy)) == [
        ("BuilderId", "us-east-1"), ("BuilderId", "us-east-1"), ("Enterprise", "eu-central-1")]
    assert [r.json["issuerUrl"] for r in fake.requests_to("/client/register")] == [
        "https://view.awsapps.com/start", "https://acme.awsapps.com/start"]


def test_login_routes_need_the_admin_key(proxy):
    answer = proxy.http.post(proxy.url + "/api/kiro/login/start", json={}, timeout=10)
    assert answer.status_code == 401


def test_bad_bodies_are_400(proxy):
    assert proxy.admin("POST", "/kiro/social/start", json={"provider": "facebook"}).status_code == 400
    assert proxy.admin("POST", "/kiro/login/start", json={"start_url": "http://x"}).status_code == 400
    assert proxy.admin("POST", "/kiro/login/start", json={"region": 5}).status_code == 400
    assert proxy.admin("GET", "/kiro/login/poll").status_code == 404  # no id, and no sign-in in progress
    assert proxy.admin("POST", "/kiro/social/exchange", json={}).status_code == 400


def test_social_login_with_the_redirect_url(proxy, fake, caplog):
    caplog.set_level(logging.DEBUG)
    started = proxy.admin("POST", "/kiro/social/start", json={"provider": "google"})
    assert started.status_code == 201
    url = started.json()["url"]
    assert url.startswith(fake.url + "/login?idp=Google&redirect_uri=kiro%3A%2F%2Fkiro.kiroAgent%2F")
    landed = browse(url)
    exchanged = proxy.admin("POST", "/kiro/social/exchange", json={"url": landed})

    assert landed.startswith(REDIRECT + "?code=")
    assert exchanged.status_code == 201, exchanged.text
    (account,) = accounts(proxy)
    assert exchanged.json()["account"]["id"] == account["id"]
    assert (account["auth_method"], account["provider"], account["region"]) == ("social", "Google", "us-east-1")
    assert account["profile_arn"] == fake.profile_arn
    assert chat(proxy).status_code == 200
    (sent,) = fake.requests_to("/oauth/token")
    verifier = sent.json["code_verifier"]
    for answer in (started.text, exchanged.text):
        assert verifier not in answer
    assert verifier not in caplog.text and sent.json["code"] not in caplog.text


def test_github_with_the_code_and_state(proxy, fake):
    started = proxy.admin("POST", "/kiro/social/start", json={"provider": "github"}).json()
    query = parse_qs(urlsplit(browse(started["url"])).query)
    exchanged = proxy.admin("POST", "/kiro/social/exchange",
                            json={"code": query["code"][0], "state": query["state"][0]})
    assert exchanged.status_code == 201, exchanged.text
    assert accounts(proxy)[0]["provider"] == "Github"


def test_a_wrong_state_is_rejected(proxy, fake):
    started = proxy.admin("POST", "/kiro/social/start", json={"provider": "google"}).json()
    landed = browse(started["url"])
    forged = landed.split("&state=")[0] + "&state=forged"
    rejected = proxy.admin("POST", "/kiro/social/exchange", json={"url": forged})

    assert rejected.status_code == 400
    assert "state" in rejected.json()["error"]["message"]
    assert accounts(proxy) == [] and fake.requests_to("/oauth/token") == []


def test_the_fake_checks_the_pkce_verifier(fake):
    # Guards the social tests above: they pass only because the proxy sends the right verifier.
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    landed = browse(f"{fake.url}/login?idp=Google&redirect_uri={REDIRECT}&code_challenge={challenge}"
                    "&code_challenge_method=S256&state=s")
    code = parse_qs(urlsplit(landed).query)["code"][0]
    body = {"code": code, "redirect_uri": REDIRECT}
    wrong = requests.post(fake.url + "/oauth/token", json={**body, "code_verifier": "wrong"}, timeout=10)
    assert wrong.status_code == 400
    landed = browse(f"{fake.url}/login?idp=Google&redirect_uri={REDIRECT}&code_challenge={challenge}"
                    "&code_challenge_method=S256&state=s")
    body["code"] = parse_qs(urlsplit(landed).query)["code"][0]
    right = requests.post(fake.url + "/oauth/token", timeout=10,
                          json={**body, "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"})
    assert right.status_code == 200 and len(right.json()["refreshToken"]) >= 100
