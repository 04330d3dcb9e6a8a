"""Error bodies clients receive name accounts by a neutral label; the e-mail address, Kiro user id
and profile ARN stay in the admin API and the flows."""
from __future__ import annotations

import json

import anthropic
import pytest

from tests.fakes.scripts import http_error

EMAIL = "jane.doe@example.com"
USER_ID = "d-90671a2b3c.4f5e6789"
SUSPENDED = f"Your User ID ({USER_ID}) temporarily is suspended. Contact support for {EMAIL}."
ARN_ACCOUNT = "699475941385"


def sdk(proxy) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
    proxy.on_stop(client.close)
    return client


def assert_neutral(text: str, account: str) -> None:
    for identity in (EMAIL, USER_ID, ARN_ACCOUNT, "jane.doe"):
        assert identity not in text, text
    assert f"account {account}" in text, text


def test_a_suspended_accounts_error_body_names_no_identity(proxy, fake):
    account = proxy.add_account("acc-A", email=EMAIL)
    assert proxy.admin("GET", f"/accounts/{account}").json()["account"]["name"] == EMAIL
    fake.queue(http_error(403, SUSPENDED, "TEMPORARILY_SUSPENDED"), token="acc-A")
    with pytest.raises(anthropic.APIStatusError) as first:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert first.value.status_code == 529  # overloaded: Anthropic clients retry it on another account
    body = json.dumps(first.value.body)
    assert "suspended" in body
    for identity in (EMAIL, USER_ID, "jane.doe"):
        assert identity not in body, body
    # The next request finds no usable account: the reason names it by its label.
    with pytest.raises(anthropic.APIStatusError) as second:
        sdk(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                   messages=[{"role": "user", "content": "hi"}])
    assert_neutral(json.dumps(second.value.body), account)
    # Streamed: the same, whether it fails before or inside the stream.
    with proxy.http.post(proxy.url + "/v1/chat/completions", stream=True, timeout=30,
                         headers={"Authorization": "Bearer k"},
                         json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as streamed:
        assert_neutral(b"".join(streamed.iter_content(None)).decode(), account)
    # The admin keeps the whole story.
    summary = proxy.admin("GET", f"/accounts/{account}").json()["account"]
    assert summary["name"] == EMAIL and USER_ID in summary["reason"]
