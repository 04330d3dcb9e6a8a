"""Joining what arrived together never delays text: everything the upstream sent before a pause
reaches the SDK client during the pause, whatever was joined into one event or one write."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.fakes.scripts import Script

pytest.importorskip("anthropic", reason="the official SDKs need Python 3.10 or newer")
pytest.importorskip("openai", reason="the official SDKs need Python 3.10 or newer")

import anthropic  # noqa: E402
import openai  # noqa: E402

BEFORE = ("one ", "two ", "three ", "four")  # sent back to back, then the upstream pauses
AFTER = " five"


def paused_answer() -> Script:
    return Script().text(*BEFORE).gate("pause").text(AFTER).context_usage()


def read_until(texts: Iterator[str], wanted: str) -> str:
    """Read text pieces until `wanted` is complete; blocks (until the pause ends) if any is held."""
    seen = ""
    while len(seen) < len(wanted):
        seen += next(texts)
    return seen


def assert_still_paused(fake) -> None:
    assert fake.wait_gate("pause", 5)
    assert fake.streams == []  # the stream has not ended (nor timed out its pause) upstream


def test_anthropic_gets_all_text_sent_before_a_pause_during_the_pause(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(paused_answer())
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-test", max_retries=0, timeout=30)
    proxy.on_stop(client.close)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = stream.text_stream
        assert read_until(texts, "".join(BEFORE)) == "".join(BEFORE)
        assert_still_paused(fake)
        fake.release("pause")
        assert "".join(texts) == AFTER


def test_openai_gets_all_text_sent_before_a_pause_during_the_pause(proxy, fake):
    proxy.add_account("acc-A")
    fake.queue(paused_answer())
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30) as client:
        chunks = client.chat.completions.create(model="gpt-4o", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        texts = (c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content)
        assert read_until(texts, "".join(BEFORE)) == "".join(BEFORE)
        assert_still_paused(fake)
        fake.release("pause")
        assert "".join(texts) == AFTER
