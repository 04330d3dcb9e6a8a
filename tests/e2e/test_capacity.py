"""Open streams never starve the admin API or the model list, and a stream beyond max_streams is
refused at once with the protocol's 429 and Retry-After instead of waiting for a thread."""
from __future__ import annotations

import threading
import time
from typing import List

import pytest
import requests

from tests import factories
from tests.fakes.scripts import Script, text_answer

from .conftest import wait_for

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


class HeldStreams:
    """`count` Anthropic streams, each open with its first text received and held at gate "g"."""

    def __init__(self, proxy, fake, count: int) -> None:
        self.proxy = proxy
        self.opened = threading.Semaphore(0)
        self.texts: List[str] = []
        self.lock = threading.Lock()
        fake.queue(*[Script().text("first").gate("g").text(" done").context_usage() for _ in range(count)])
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()
        for _ in range(count):
            assert self.opened.acquire(timeout=30), "a stream did not start"

    def _one(self) -> None:
        session = requests.Session()
        session.trust_env = False
        with session.post(self.proxy.url + "/v1/messages", json=factories.anthropic_body(stream=True),
                          headers=ANTHROPIC, stream=True, timeout=60) as response:
            chunks = response.iter_content(None)
            received = b""
            while b"first" not in received:
                received += next(chunks)
            self.opened.release()
            received += b"".join(chunks)
        session.close()
        with self.lock:
            self.texts.append(received.decode())

    def finish(self, fake) -> None:
        fake.release("g")
        for thread in self.threads:
            thread.join(30)
        assert len(self.texts) == len(self.threads) and all("message_stop" in t for t in self.texts)


def timed(call) -> tuple:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_60_open_streams_leave_the_admin_api_and_models_answering(make_proxy, fake):
    proxy = make_proxy(max_streams=64, threads=16)  # the defaults
    proxy.add_account("acc-A")
    held = HeldStreams(proxy, fake, 60)
    try:
        status, status_seconds = timed(lambda: proxy.admin("GET", "/status", timeout=5))
        models, models_seconds = timed(lambda: proxy.http.get(proxy.url + "/v1/models", timeout=5))
        counted, _ = timed(lambda: proxy.http.post(proxy.url + "/v1/messages/count_tokens", headers=ANTHROPIC,
                                                   json=factories.anthropic_body(), timeout=5))
        assert (status.status_code, models.status_code, counted.status_code) == (200, 200, 200)
        assert status.json()["streams"] == {"open": 60, "max": 64}
        # Generous bounds for a loaded CI machine; the old single pool answered after the streams.
        assert status_seconds < 3 and models_seconds < 3, (status_seconds, models_seconds)
    finally:
        held.finish(fake)


@pytest.mark.parametrize("path, body, headers, check", [
    ("/v1/messages", factories.anthropic_body(), ANTHROPIC,
     lambda b: b["type"] == "error" and b["error"]["type"] == "rate_limit_error"),
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
     {"Authorization": "Bearer k"}, lambda b: b["error"]["type"] == "rate_limit_error"),
    ("/v1beta/models/gemini-2.5-pro:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
     {"x-goog-api-key": "k"}, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
])
def test_a_request_beyond_max_streams_is_refused_at_once_with_retry_after(make_proxy, fake, path, body, headers, check):
    proxy = make_proxy(max_streams=3, threads=4)
    proxy.add_account("acc-A")
    held = HeldStreams(proxy, fake, 3)
    try:
        refused = proxy.http.post(proxy.url + path, json=body, headers=headers, timeout=5)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert check(refused.json()), refused.text
        assert "max_streams" in refused.text
    finally:
        held.finish(fake)
    # The slots are free again once the streams ended.
    wait_for(lambda: proxy.services.slots.in_use == 0)
    fake.queue(text_answer("after"))
    again = proxy.http.post(proxy.url + path, json=body, headers=headers, timeout=10)
    assert again.status_code == 200, again.text


def test_failed_and_non_streaming_requests_give_their_slot_back(make_proxy, fake):
    proxy = make_proxy(max_streams=1, threads=4)
    proxy.add_account("acc-A")
    fake.queue(text_answer("one"), text_answer("two"))
    for _ in range(2):
        answer = proxy.http.post(proxy.url + "/v1/messages", json=factories.anthropic_body(), headers=ANTHROPIC)
        assert answer.status_code == 200
    bad_model = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC,
                                json=factories.anthropic_body(model="no-such-model"))
    assert bad_model.status_code == 404
    assert proxy.services.slots.in_use == 0
    fake.queue(text_answer("three"))
    assert proxy.http.post(proxy.url + "/v1/messages", json=factories.anthropic_body(),
                           headers=ANTHROPIC).status_code == 200
