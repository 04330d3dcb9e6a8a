"""The model list: built-in until an account's upstream catalogue replaces it (cached)."""
from __future__ import annotations

from tests.fakes.scripts import Reply

from .conftest import wait_for


def ids(proxy) -> list:
    return [m["id"] for m in proxy.http.get(proxy.url + "/v1/models").json()["data"]]


def test_builtin_list_without_accounts(make_proxy, fake):
    proxy = make_proxy(model_catalog_ttl=3600)
    assert "glm-5" in ids(proxy)  # built-in only
    assert fake.requests_to("/ListAvailableModels") == []


def test_upstream_catalogue_replaces_the_list_once_an_account_exists(make_proxy, fake):
    fake.models_page_size = 3  # exercise nextToken paging
    proxy = make_proxy(model_catalog_ttl=3600)
    proxy.add_account("acc-A")
    wait_for(lambda: proxy.services.catalog.source == "upstream")
    served = ids(proxy)
    assert "claude-opus-4.6" in served and "glm-5" not in served
    calls = fake.requests_to("/ListAvailableModels")
    assert calls[0].query["origin"] == "AI_EDITOR" and calls[0].query["profileArn"].startswith("arn:aws:")
    assert len(calls) >= 3  # paged
    assert proxy.services.catalog.resolve("claude-opus-5-5") == "claude-opus-4.6"
    # cached: asking again does not call upstream
    before = len(fake.requests_to("/ListAvailableModels"))
    assert proxy.services.sync_models() is False
    assert len(fake.requests_to("/ListAvailableModels")) == before


def test_catalogue_failure_keeps_the_builtin_list(make_proxy, fake):
    fake.queue_models(Reply(500, {"message": "boom"}))
    proxy = make_proxy(model_catalog_ttl=3600)
    proxy.add_account("acc-A")
    wait_for(lambda: fake.requests_to("/ListAvailableModels"))
    assert proxy.services.catalog.source == "builtin"
    assert "glm-5" in ids(proxy)


def test_aliases_are_served_and_resolved(make_proxy, fake):
    proxy = make_proxy(model_aliases={"my-coder": "claude-haiku-4.5", "big": "strong"})
    served = ids(proxy)
    assert "my-coder" in served and "big" in served
    proxy.add_account("acc-A")
    response = proxy.http.post(proxy.url + "/v1/messages", headers={"x-api-key": "k"},
                               json={"model": "my-coder", "max_tokens": 10,
                                     "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    sent = fake.requests_to("/generateAssistantResponse")[-1].json
    assert sent["conversationState"]["currentMessage"]["userInputMessage"]["modelId"] == "claude-haiku-4.5"
    one = proxy.http.get(proxy.url + "/v1/models/my-coder").json()
    assert one["id"] == "my-coder"
