"""Failover and upstream failure modes through the real server (Anthropic SDK as the client)."""
from __future__ import annotations

import threading

import pytest

from tests.fakes.scripts import Script, monthly_limit, server_error, text_answer

from .conftest import wait_for

pytest.importorskip("anthropic", reason="the official SDKs need Python 3.10 or newer")

import anthropic  # noqa: E402


def ask(proxy, **kw):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-test", max_retries=0, timeout=30)
    proxy.on_stop(client.close)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return client.messages.create(**body)


def test_5xx_moves_to_the_next_account(proxy, fake):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(server_error(), token="acc-A")
    fake.queue(text_answer("B answered"), token="acc-B")
    assert ask(proxy).content[0].text == "B answered"
    accounts = proxy.admin("GET", "/accounts").json()["accounts"]
    assert [a["state"] for a in accounts] == ["active", "active"]  # transient: no cooldown


def test_single_account_retries_transient_failure_after_backoff(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(server_error(), text_answer("second try"), token="acc-A")
    assert ask(proxy).content[0].text == "second try"
    assert len(fake.requests_to("/generateAssistantResponse")) == 2


def test_persistent_5xx_gives_a_retryable_error(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(*[server_error() for _ in range(6)], token="acc-A")
    with pytest.raises(anthropic.APIStatusError) as caught:
        ask(proxy)
    assert caught.value.status_code in (502, 503, 529)
    assert len(fake.requests_to("/generateAssistantResponse")) == 4  # first try + 3 backoff retries


def test_throttling_exception_frame_fails_over(proxy, fake):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(Script().exception("ThrottlingException", "slow down"), token="acc-A")
    fake.queue(text_answer("from B"), token="acc-B")
    assert ask(proxy).content[0].text == "from B"
    states = [a["state"] for a in proxy.admin("GET", "/accounts").json()["accounts"]]
    assert states == ["cooldown", "active"]


def test_slow_first_byte_is_retried(make_proxy, fake):
    proxy = make_proxy(first_event_timeout=0.5)
    proxy.add_account("acc-A")
    fake.queue(Script().slow_first_byte(10).text("late").context_usage(), token="acc-A")
    fake.queue(text_answer("on time"), token="acc-A")
    assert ask(proxy).content[0].text == "on time"
    fake.release("first-byte")


def test_quota_exhausted_account_is_parked(proxy, fake):
    parked = proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    fake.queue(monthly_limit(), token="acc-A")
    fake.queue(text_answer("B"), token="acc-B")
    assert ask(proxy).content[0].text == "B"
    summary = proxy.admin("GET", f"/accounts/{parked}").json()["account"]
    assert summary["state"] == "exhausted" and summary["exhausted_until"] > 0


def test_bad_crc_mid_stream_becomes_an_error_event(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("good start").bad_crc().context_usage())
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
    proxy.on_stop(client.close)
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream:
                pass
    assert "corrupt" in str(caught.value)


def test_stop_sequence_ends_the_answer(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(Script().text("one two ", "thr", "ee STOP four five").context_usage())
    message = ask(proxy, stop_sequences=["STOP"])
    assert message.content[0].text == "one two three "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    wait_for(lambda: fake.streams and fake.streams[-1].outcome in ("complete", "disconnected"))


def test_max_tokens_cuts_the_answer(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(text_answer(*["word " * 20 for _ in range(20)]))
    message = ask(proxy, max_tokens=10)
    assert message.stop_reason == "max_tokens"
    assert len(message.content[0].text) < 200


def test_sticky_conversation_stays_on_one_account(proxy, fake):
    proxy.add_account("acc-A")
    proxy.add_account("acc-B")
    conversation = [{"role": "user", "content": "let us talk about tides"}]
    ask(proxy, messages=conversation)
    ask(proxy, messages=conversation + [{"role": "assistant", "content": "sure"},
                                        {"role": "user", "content": "go on"}])
    ask(proxy, messages=[{"role": "user", "content": "a different conversation"}])
    tokens = [r.token for r in fake.requests_to("/generateAssistantResponse")]
    assert tokens[0] == tokens[1]
    assert tokens[2] != tokens[0]


def test_upstream_too_long_becomes_the_prompt_too_long_message(proxy, fake):
    from tests.fakes.scripts import http_error

    proxy.add_account("acc-A")
    fake.queue(http_error(400, "Input is too long.", "CONTENT_LENGTH_EXCEEDS_THRESHOLD"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(proxy)
    message = caught.value.body["error"]["message"]
    assert message.startswith("prompt is too long: ") and message.endswith(" maximum")
    assert len(fake.requests_to("/generateAssistantResponse")) == 1  # not retried on other accounts


def test_a_request_over_the_concurrency_cap_waits_for_a_slot(make_proxy, fake):
    proxy = make_proxy(max_concurrency_per_account=1, concurrency_wait_seconds=30)
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("held").text(" done").context_usage(), text_answer("second"))
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-test", max_retries=0, timeout=30)
    proxy.on_stop(client.close)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    with client.messages.stream(**body) as first:
        assert next(iter(first.text_stream)) == "first"  # the account's only slot is taken
        results: list = []
        waiter = threading.Thread(target=lambda: results.append(ask(proxy).content[0].text))
        waiter.start()
        assert not fake.wait_requests(2, path="/generateAssistantResponse", timeout=0.3)  # queued, not sent
        assert results == []
        fake.release("held")
        assert first.get_final_text() == "first done"
    waiter.join(10)
    assert results == ["second"]
