"""Gemini thought signatures: a model turn's reasoning, carried where Gemini clients keep it.

Gemini CLI drops thought parts from the history it sends back but keeps the thoughtSignature of
the part after them, so the signature this proxy writes holds the reasoning itself and the
upstream's own signature. Pure: no I/O; never raises on what a client sends back.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Optional

from .. import chat

# Placeholders Gemini CLI (and Google's docs) put where a real signature is missing.
DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
# What starts a signature written by this proxy, before its JSON record.
MAGIC = b"\x00kiroproxy-thought-1\x00"
# Older versions wrapped only a signature that was not base64 (the Python SDK decodes the field).
LEGACY_WRAP = b"\x00kiroproxy-signature\x00"


def signature_out(thinking: chat.Thinking) -> str:
    """The thoughtSignature for a thinking block: base64 of MAGIC + {"text", "signature"} as JSON.

    Always canonical base64, which the google-genai SDKs decode to bytes and encode again."""
    record = json.dumps({"text": thinking.text, "signature": thinking.signature}, separators=(",", ":"))
    return base64.b64encode(MAGIC + record.encode("ascii")).decode("ascii")


def thought_in(value: str) -> Optional[chat.Thinking]:
    """The reasoning a client's thoughtSignature carries; None for none or a placeholder.

    A signature this proxy did not write (an older version's, Kiro's own) comes back as the
    upstream signature with no text; one of ours that no longer decodes is dropped."""
    if not value or value in DUMMY_SIGNATURES:
        return None
    raw = _decoded(value)
    if raw is None:
        return chat.Thinking("", value)
    if raw.startswith(MAGIC):
        return _unpacked(raw[len(MAGIC):])
    if raw.startswith(LEGACY_WRAP):
        return chat.Thinking("", raw[len(LEGACY_WRAP):].decode("utf-8", "replace"))
    return chat.Thinking("", value)


def _decoded(value: str) -> Optional[bytes]:
    # The Python SDK may send the bytes back URL-safe encoded; padding is optional there too.
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _unpacked(packed: bytes) -> Optional[chat.Thinking]:
    try:
        record = json.loads(packed)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    text, signature = record.get("text"), record.get("signature")
    if not isinstance(text, str) or not (signature is None or isinstance(signature, str)):
        return None
    return chat.Thinking(text, signature or None)
