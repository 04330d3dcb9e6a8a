"""Secrets a client sends anywhere (model name, Gemini URL path, prompt, Responses input) never
reach what the server stores or shows: every admin output and every file in the data directory
(but the account store itself) is searched for them."""
from __future__ import annotations

import gzip
import secrets as random_secrets

from tests import factories
from tests.fakes.scripts import text_answer


def token(prefix: str) -> str:
    return factories.token_like(prefix, random_secrets.token_hex(20))


ACCOUNT = token("aoa")                       # the account's access token (Kiro's shape)
CLIENT_KEY = token("client-key-")            # a configured client key: no known shape
SK_PROJ = token("sk-proj-")
SK_ANT = token("sk-ant-api03-")
SK = token("sk-")
BEARER_VALUE = random_secrets.token_urlsafe(24)
PLANTED = {"account token": ACCOUNT, "client key": CLIENT_KEY, "sk-proj": SK_PROJ, "sk-ant": SK_ANT, "sk": SK,
           "bearer": BEARER_VALUE}


def prompt() -> str:
    return (f"my keys: {SK_PROJ} and {SK_ANT}, {SK}; header Authorization: Bearer {BEARER_VALUE}; "
            f"the account {ACCOUNT}; the proxy key {CLIENT_KEY}")


def leaks(text: str) -> list:
    return [name for name, value in PLANTED.items() if value in text]


def test_planted_secrets_appear_in_no_admin_output_and_no_file(make_proxy, fake):
    proxy = make_proxy(api_keys=[CLIENT_KEY])
    proxy.add_account(ACCOUNT)
    anthropic = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    openai = {"Authorization": f"Bearer {CLIENT_KEY}"}
    gemini = {"x-goog-api-key": CLIENT_KEY}
    post = lambda path, body, headers: proxy.http.post(proxy.url + path, json=body, headers=headers, timeout=30)  # noqa: E731

    # As the model name: 404, and recorded. A bare bearer value has no shape: it is planted with its word.
    for secret in [*(v for v in PLANTED.values() if v != BEARER_VALUE), f"Bearer {BEARER_VALUE}"]:
        body = {"model": secret, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        assert post("/v1/messages", body, anthropic).status_code == 404
        assert post("/v1/messages/count_tokens", body, anthropic).status_code == 404
        assert post("/v1/chat/completions", {"model": secret, "messages": [{"role": "user", "content": "x"}]},
                    openai).status_code == 404
        gemini_body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
        assert post(f"/v1beta/models/{secret}:generateContent", gemini_body, gemini).status_code == 404
    fake.queue(text_answer("noted"), text_answer("noted"), text_answer("noted"))
    assert post("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 50,
                                 "messages": [{"role": "user", "content": prompt()}]}, anthropic).status_code == 200
    created = post("/v1/responses", {"model": "gpt-4o", "input": prompt(), "instructions": prompt(), "store": True},
                   openai)
    assert created.status_code == 200, created.text
    follow = post("/v1/responses", {"model": "gpt-4o", "previous_response_id": created.json()["id"],
                                    "input": [{"role": "user", "content": [{"type": "input_text", "text": prompt()}]}]},
                  openai)
    assert follow.status_code == 200, follow.text
    assert proxy.services.flows.flush(20)

    outputs = {}
    for path in ("/flows?limit=500", "/logs?limit=500", "/logs?format=text&limit=500", "/stats", "/stats/detailed",
                 "/flows/stats", "/status", "/accounts", "/config/export"):
        response = proxy.admin("GET", path)
        assert response.status_code == 200, path
        outputs[path] = response.text
    flows = proxy.admin("GET", "/flows", params={"limit": 500}).json()["flows"]
    assert len(flows) == 4 * len(PLANTED) + 3
    for flow in flows:
        outputs[f"/flows/{flow['id']}"] = proxy.admin("GET", f"/flows/{flow['id']}").text
    for fmt in ("json", "jsonl"):
        outputs[f"export {fmt}"] = proxy.admin("POST", "/flows/export", json={"format": fmt}).text
    outputs["GET /v1/responses"] = proxy.http.get(proxy.url + f"/v1/responses/{follow.json()['id']}",
                                                  headers=openai, timeout=30).text
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert found == {}

    proxy.stop()  # everything written: stats.json, the flow index, bodies, the Responses store
    data_dir = proxy.home / ".kiro-proxy"
    files = [p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith("accounts.json")]
    assert any("responses" in p.parts for p in files) and any(p.name == "stats.json" for p in files)
    in_files = {}
    for path in files:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode("utf-8", "replace")
        if leaks(text):
            in_files[str(path.relative_to(data_dir))] = leaks(text)
    assert in_files == {}
