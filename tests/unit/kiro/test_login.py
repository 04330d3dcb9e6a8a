"""Tests for kiro.login: PKCE, the social authorize URL, and every sign-in call's request and
answer handling (HTTP mocked with `responses`)."""
from __future__ import annotations

import json
import re

import pytest
import requests
import responses

from kiroproxy.kiro.login import (
    PENDING,
    SLOW_DOWN,
    SUCCESS,
    KiroLogin,
    LoginDenied,
    LoginError,
    LoginExpired,
    Registration,
    challenge_for,
    new_pkce,
    social_authorize_url,
)
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from tests.factories import refresh_token

OIDC = "https://oidc.us-east-1.amazonaws.com"
AUTH = "https://prod.us-east-1.auth.desktop.kiro.dev"
T0 = 1_700_000_000.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def login(clock: Clock) -> KiroLogin:
    return KiroLogin(Endpoints(), Sessions(), ClientIdentity(kiro_version="0.11.63"), clock=clock)


def registration(region: str = "us-east-1") -> Registration:
    return Registration("cid-1", "csecret-1", T0 + 86400 * 90, region, "https://view.awsapps.com/start")


def sent(call) -> dict:
    return json.loads(call.request.body)


def test_pkce_matches_the_rfc_7636_vector():
    assert challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pkce_is_random_unpadded_base64url_of_32_bytes():
    first, second = new_pkce(), new_pkce()
    assert first.verifier != second.verifier
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first.verifier)
    assert first.challenge == challenge_for(first.verifier)
    assert len(new_pkce(64).verifier) == 86


def test_social_authorize_url_is_the_documented_one():
    url = social_authorize_url(AUTH + "/", "Github", "chal-1", "st-1")
    assert url == (AUTH + "/login?idp=Github&redirect_uri=kiro%3A%2F%2Fkiro.kiroAgent%2Fauthenticate-success"
                   "&code_challenge=chal-1&code_challenge_method=S256&state=st-1")


@responses.activate
def test_register_sends_the_kiro_client_body_and_reuses_the_registration(login, clock):
    responses.post(OIDC + "/client/register", json={"clientId": "cid-1", "clientSecret": "cs-1",
                                                    "clientIdIssuedAt": T0, "clientSecretExpiresAt": T0 + 7776000})
    first = login.register("us-east-1")
    clock.now += 86400
    again = login.register("us-east-1")

    assert len(responses.calls) == 1
    assert sent(responses.calls[0]) == {
        "clientName": "Kiro IDE", "clientType": "public",
        "scopes": ["codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations"],
        "grantTypes": [DEVICE_GRANT, "refresh_token"], "issuerUrl": "https://view.awsapps.com/start"}
    assert responses.calls[0].request.headers["x-amz-user-agent"] == "aws-sdk-js/3.980.0 KiroIDE"
    assert first == again
    assert (first.client_id, first.client_secret, first.expires_at) == ("cid-1", "cs-1", T0 + 7776000)


@responses.activate
def test_registrations_are_per_region_and_start_url_and_renewed_before_expiry(login, clock):
    for host in (OIDC, "https://oidc.eu-central-1.amazonaws.com"):
        responses.post(host + "/client/register", json={"clientId": "c", "clientSecret": "s",
                                                        "clientSecretExpiresAt": T0 + 7200})
    login.register("us-east-1")
    login.register("eu-central-1")
    enterprise = login.register("us-east-1", "https://acme.awsapps.com/start")
    clock.now += 3601  # less than an hour of the secret left: register again
    login.register("us-east-1")

    assert [c.request.url for c in responses.calls] == [
        OIDC + "/client/register", "https://oidc.eu-central-1.amazonaws.com/client/register",
        OIDC + "/client/register", OIDC + "/client/register"]
    assert sent(responses.calls[2])["issuerUrl"] == "https://acme.awsapps.com/start"
    assert enterprise.start_url == "https://acme.awsapps.com/start"


@responses.activate
def test_forget_drops_the_cached_registration(login):
    responses.post(OIDC + "/client/register", json={"clientId": "c", "clientSecret": "s",
                                                    "clientSecretExpiresAt": T0 + 7776000})
    login.forget(login.register("us-east-1"))
    login.register("us-east-1")
    assert len(responses.calls) == 2


@responses.activate
def test_device_authorization_request_and_answer(login):
    responses.post(OIDC + "/device_authorization", json={
        "deviceCode": "dev-code", "userCode": "ABCD-EFGH", "verificationUri": "https://device.sso/",
        "verificationUriComplete": "https://device.sso/?user_code=ABCD-EFGH", "expiresIn": 600, "interval": 1})
    auth = login.authorize_device(registration())

    assert sent(responses.calls[0]) == {"clientId": "cid-1", "clientSecret": "csecret-1",
                                        "startUrl": "https://view.awsapps.com/start"}
    assert (auth.device_code, auth.user_code, auth.expires_in, auth.interval) == ("dev-code", "ABCD-EFGH", 600, 1)
    assert auth.verification_uri_complete == "https://device.sso/?user_code=ABCD-EFGH"


@responses.activate
def test_device_poll_states(login):
    url = "https://oidc.eu-central-1.amazonaws.com/token"
    rt = refresh_token("device")
    responses.post(url, status=400, json={"error": "authorization_pending"})
    responses.post(url, status=400, json={"error": "slow_down", "error_description": "x"})
    responses.post(url, json={"accessToken": "at-1", "refreshToken": rt, "expiresIn": 3600, "tokenType": "Bearer"})
    reg = registration("eu-central-1")

    states = [login.poll_device(reg, "dev-code") for _ in range(3)]

    assert [s.state for s in states] == [PENDING, SLOW_DOWN, SUCCESS]
    assert (states[2].tokens.access_token, states[2].tokens.refresh_token) == ("at-1", rt)
    assert sent(responses.calls[0]) == {"clientId": "cid-1", "clientSecret": "csecret-1",
                                        "grantType": DEVICE_GRANT, "deviceCode": "dev-code"}


@pytest.mark.parametrize("status, body, headers, error", [
    (400, {"error": "expired_token"}, {}, LoginExpired),
    (400, {"error": "invalid_grant"}, {}, LoginExpired),
    (400, {"error": "access_denied"}, {}, LoginDenied),
    (400, {"__type": "com.amazonaws.ssooidc#AccessDeniedException", "message": "no"}, {}, LoginDenied),
    (400, {"message": "x"}, {"x-amzn-ErrorType": "ExpiredTokenException:http://internal"}, LoginExpired),
])
@responses.activate
def test_device_poll_failures_are_typed(login, status, body, headers, error):
    responses.post(OIDC + "/token", status=status, json=body, headers=headers)
    with pytest.raises(error) as caught:
        login.poll_device(registration(), "dev-code")
    assert not caught.value.transient
    assert "dev-code" not in caught.value.message


@responses.activate
def test_server_errors_and_network_failures_are_transient(login):
    responses.post(OIDC + "/token", status=503, body="busy")
    responses.post(OIDC + "/token", body=requests.ConnectionError("refused"))
    for _ in range(2):
        with pytest.raises(LoginError) as caught:
            login.poll_device(registration(), "dev-code")
        assert caught.value.transient and type(caught.value) is LoginError


@responses.activate
def test_unknown_oauth_error_is_permanent_with_its_code(login):
    responses.post(OIDC + "/device_authorization", status=400, json={"error": "invalid_client"})
    with pytest.raises(LoginError) as caught:
        login.authorize_device(registration())
    assert (caught.value.code, caught.value.transient, caught.value.status) == ("invalid_client", False, 400)


@responses.activate
def test_social_exchange_request_and_answer(login):
    rt = refresh_token("social")
    arn = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
    responses.post(AUTH + "/oauth/token", json={"accessToken": "at-s", "refreshToken": rt, "profileArn": arn,
                                                "expiresIn": 3600})
    tokens = login.exchange_social("the-code", "the-verifier", "ab" * 32)

    assert sent(responses.calls[0]) == {"code": "the-code", "code_verifier": "the-verifier",
                                        "redirect_uri": "kiro://kiro.kiroAgent/authenticate-success"}
    assert responses.calls[0].request.headers["User-Agent"] == "KiroIDE-0.11.63-" + "ab" * 32
    assert (tokens.access_token, tokens.refresh_token, tokens.profile_arn, tokens.expires_in) == ("at-s", rt, arn, 3600)


@responses.activate
def test_an_answer_without_tokens_is_an_error(login):
    responses.post(AUTH + "/oauth/token", json={"accessToken": "at-only"})
    with pytest.raises(LoginError, match="no access or refresh token"):
        login.exchange_social("c", "v", "m")


@responses.activate
def test_overridden_hosts_are_used(clock):
    login = KiroLogin(Endpoints(auth_url="http://fake:1", oidc_url="http://fake:1/"), Sessions(),
                      ClientIdentity(), clock=clock)
    responses.post("http://fake:1/client/register", json={"clientId": "c", "clientSecret": "s"})
    reg = login.register("eu-central-1")
    assert reg.expires_at > T0 + 86400  # no expiry in the answer: assume the usual 90 days
    assert login.social_url("Google", "ch", "st").startswith("http://fake:1/login?idp=Google&")
