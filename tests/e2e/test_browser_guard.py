"""What a web page can make a browser send never reaches an account: a foreign Host (DNS rebinding),
a cross-site request (simple or preflighted), a body that is not declared JSON. Requests without
an Origin (SDKs, CLIs, curl) and from the proxy's own origin are served; allowed_origins get CORS.

Requests are sent raw with requests, setting the headers a browser would set.
"""
from __future__ import annotations

import json

import pytest

from tests import factories
from tests.fakes.scripts import text_answer

CHAT = "/generateAssistantResponse"
EVIL = "https://evil.example"
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
OPENAI_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY = {"model": "gpt-4o", "input": "hi"}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

# (path, body, protocol) for every kind of chat endpoint.
ENDPOINTS = [
    ("/v1/messages", factories.anthropic_body(), "anthropic"),
    ("/v1/chat/completions", OPENAI_BODY, "openai"),
    ("/v1/responses", RESPONSES_BODY, "openai"),
    ("/v1beta/models/gemini-2.5-pro:generateContent", GEMINI_BODY, "gemini"),
]
SIMPLE_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


def error_message(protocol: str, body: dict) -> str:
    """The message of an error body, checking it has the protocol's own shape."""
    if protocol == "anthropic":
        assert body["type"] == "error"
        return body["error"]["message"]
    if protocol == "gemini":
        assert isinstance(body["error"]["code"], int) and body["error"]["status"]
        return body["error"]["message"]
    assert set(body["error"]) >= {"message", "type", "code"}
    return body["error"]["message"]


def flows(proxy) -> list:
    assert proxy.services.flows.flush(10)
    return proxy.admin("GET", "/flows").json()["flows"]


def post(proxy, path: str, body: dict, headers: dict, content_type: str = "application/json"):
    """POST `body` with the key headers of the path's protocol, as its SDK would send them."""
    keys = ANTHROPIC if "/messages" in path else {"x-goog-api-key": "k"} if ":" in path else \
        {"Authorization": "Bearer k"}
    return proxy.http.post(proxy.url + path, data=json.dumps(body).encode(), timeout=30,
                           headers={"Content-Type": content_type, **keys, **headers})


@pytest.fixture
def served(proxy, fake):
    proxy.add_account("acc-A")
    return proxy


# ----- Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, protocol", ENDPOINTS)
def test_a_foreign_host_is_421_in_the_protocol_shape_with_no_upstream_call(served, fake, path, body, protocol):
    response = post(served, path, body, {"Host": "evil.example:8080"})
    assert response.status_code == 421
    assert "allowed_hosts" in error_message(protocol, response.json())
    assert fake.requests_to(CHAT) == []
    (flow,) = flows(served)
    assert flow["status"] == 421


def test_a_foreign_host_gets_421_from_the_admin_api_even_with_the_key(served):
    response = served.admin("GET", "/accounts", headers={"Host": "evil.example"})
    assert response.status_code == 421
    assert "allowed_hosts" in response.json()["error"]["message"]
    assert served.http.get(served.url + "/v1/models", headers={"Host": "rebound.example"}).status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "localhost:{port}", "[::1]", "[::1]:{port}",
                                  "127.0.0.1:{port}", "LOCALHOST:{port}"])
def test_loopback_names_are_served(served, fake, host):
    port = served.url.rsplit(":", 1)[1]
    fake.queue(text_answer("ok"))
    response = post(served, "/v1/messages", factories.anthropic_body(), {"Host": host.format(port=port)})
    assert response.status_code == 200, response.text


def test_allowed_hosts_adds_names(make_proxy, fake):
    proxy = make_proxy(allowed_hosts=["kiro.lan", "proxy.example:443"])
    proxy.add_account("acc-A")
    fake.queue(text_answer("ok"))
    assert post(proxy, "/v1/messages", factories.anthropic_body(), {"Host": "Kiro.LAN:8080"}).status_code == 200
    assert proxy.admin("GET", "/accounts", headers={"Host": "proxy.example:443"}).status_code == 200
    assert proxy.admin("GET", "/accounts", headers={"Host": "proxy.example:8443"}).status_code == 421
    assert proxy.admin("GET", "/accounts", headers={"Host": "other.lan"}).status_code == 421


# ----- Origin --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("path, body, protocol", ENDPOINTS)
def test_cross_site_simple_requests_are_403_with_no_upstream_call(served, fake, path, body, protocol, content_type):
    response = post(served, path, body, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, content_type)
    assert response.status_code == 403
    assert "allowed_origins" in error_message(protocol, response.json())
    assert "Access-Control-Allow-Origin" not in response.headers
    assert fake.requests_to(CHAT) == []
    (flow,) = flows(served)
    assert (flow["status"], flow["state"]) == (403, "error") and flow["path"] == path


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
@pytest.mark.parametrize("path, body, protocol", ENDPOINTS)
def test_simple_content_types_are_refused_even_without_an_origin(served, fake, path, body, protocol, content_type):
    response = post(served, path, body, {}, content_type)
    assert response.status_code == 415
    assert "application/json" in error_message(protocol, response.json())
    assert fake.requests_to(CHAT) == []
    (flow,) = flows(served)
    assert flow["status"] == 415


def test_cross_site_fetch_metadata_without_origin_is_refused(served, fake):
    response = served.http.get(served.url + "/v1/models", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    response = post(served, "/v1/messages", factories.anthropic_body(), {"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and fake.requests_to(CHAT) == []


def test_the_admin_api_refuses_a_foreign_origin_even_with_the_key(served):
    response = served.admin("GET", "/accounts", headers={"Origin": EVIL})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    response = served.admin("POST", "/accounts", headers={"Origin": "null"}, json=factories.token_file("acc-B"))
    assert response.status_code == 403
    assert len(served.admin("GET", "/accounts").json()["accounts"]) == 1


def test_a_preflight_from_a_foreign_origin_gets_no_cors_answer(served, fake):
    response = served.http.options(served.url + "/v1/messages", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key"})
    assert response.status_code == 403
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    assert fake.requests_to(CHAT) == []


def test_same_origin_and_no_origin_are_served(served, fake):
    fake.queue(text_answer("one"), text_answer("two"))
    own = served.url  # http://127.0.0.1:<port>: the proxy's own page
    response = post(served, "/v1/messages", factories.anthropic_body(), {"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.text
    assert "Access-Control-Allow-Origin" not in response.headers  # same-origin needs no CORS
    response = post(served, "/v1/messages", factories.anthropic_body(), {})
    assert response.status_code == 200
    assert len(fake.requests_to(CHAT)) == 2
    listing = served.admin("GET", "/accounts", headers={"Origin": own})
    assert listing.status_code == 200


def test_allowed_origins_get_cors_answers_never_a_wildcard(make_proxy, fake):
    app_origin = "http://app.example:3000"
    proxy = make_proxy(allowed_origins=[app_origin + "/"])
    proxy.add_account("acc-A")
    preflight = proxy.http.options(proxy.url + "/v1/chat/completions", headers={
        "Origin": app_origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == app_origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    fake.queue(text_answer("hello"))
    response = proxy.http.post(proxy.url + "/v1/chat/completions", json=OPENAI_BODY,
                               headers={"Origin": app_origin, "Sec-Fetch-Site": "cross-site", "Authorization": "Bearer k"})
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == app_origin
    # Other origins, and the admin API, stay closed to it.
    assert post(proxy, "/v1/messages", factories.anthropic_body(), {"Origin": EVIL}).status_code == 403
    admin = proxy.admin("GET", "/accounts", headers={"Origin": app_origin})
    assert admin.status_code == 403 and "Access-Control-Allow-Origin" not in admin.headers
    assert len(fake.requests_to(CHAT)) == 1


def test_a_wildcard_origin_is_a_configuration_error(make_proxy):
    from kiroproxy.config import ConfigError

    with pytest.raises(ConfigError, match="allowed_origins"):
        make_proxy(allowed_origins=["*"])
