"""Thought signatures written by the proxy: they survive the SDKs and bring the reasoning back."""
from __future__ import annotations

import base64

import pytest

from kiroproxy import chat
from kiroproxy.protocols import gemini_thoughts

THOUGHTS = [chat.Thinking("Let me think.", "EqQBCkYIBxgCKkDsig=="), chat.Thinking("hmm", "sig with spaces & !"),
            chat.Thinking("prompt-tag reasoning, no upstream signature"), chat.Thinking("", "ü-sig"),
            chat.Thinking("naïve \u2603 \U0001f600 text, a lone \ud800", "a")]


@pytest.mark.parametrize("thinking", THOUGHTS)
def test_a_signature_brings_back_the_reasoning_and_the_upstream_signature(thinking):
    shown = gemini_thoughts.signature_out(thinking)
    assert base64.b64encode(base64.b64decode(shown, validate=True)).decode() == shown  # canonical base64
    assert gemini_thoughts.thought_in(shown) == thinking
    # Re-encoded URL-safe without padding (as pydantic dumps bytes), it still reads the same.
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(shown)).decode().rstrip("=")
    assert gemini_thoughts.thought_in(urlsafe) == thinking


@pytest.mark.parametrize("thinking", THOUGHTS)
def test_the_sdk_reads_the_signature_as_bytes_and_writes_it_back(thinking):
    types = pytest.importorskip("google.genai.types", reason="the official SDKs need Python 3.10 or newer")
    part = types.Part.model_validate({"text": "answer", "thoughtSignature": gemini_thoughts.signature_out(thinking)})
    sent_back = part.model_dump(mode="json", by_alias=True, exclude_none=True)["thoughtSignature"]
    assert gemini_thoughts.thought_in(sent_back) == thinking


@pytest.mark.parametrize("foreign", ["EqQBCkYIBxgCKkDsig==", "CiIBVKhc7mFirstSig", "not base64 at all!"])
def test_a_signature_the_proxy_did_not_write_is_kept_as_the_upstream_one(foreign):
    assert gemini_thoughts.thought_in(foreign) == chat.Thinking("", foreign)


def test_an_older_wrapped_signature_is_unwrapped():
    legacy = base64.b64encode(gemini_thoughts.LEGACY_WRAP + "sig ü".encode()).decode()
    assert gemini_thoughts.thought_in(legacy) == chat.Thinking("", "sig ü")


@pytest.mark.parametrize("record", [b"{broken", b"[1]", b'{"text": 5}', b'{"text": "t", "signature": 7}', b"\xff"])
def test_a_damaged_signature_of_ours_is_dropped(record):
    assert gemini_thoughts.thought_in(base64.b64encode(gemini_thoughts.MAGIC + record).decode()) is None


@pytest.mark.parametrize("placeholder", [*gemini_thoughts.DUMMY_SIGNATURES, ""])
def test_placeholder_signatures_are_dropped(placeholder):
    assert gemini_thoughts.thought_in(placeholder) is None
