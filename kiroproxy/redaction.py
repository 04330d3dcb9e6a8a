"""The one place secrets are removed from anything we store, log or export.

redact() masks values under secret-looking keys and every occurrence of a known secret value
inside strings. Pure: no I/O.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

MASK = "[redacted]"
# A key is secret when its last word names a credential; words start after `_`, `-`, `.` or at a
# camelCase hump (openaiApiKey). A bare `key` or `token` is not: both name harmless things far more
# often (schema properties, cache keys, pagination), and token-shaped values are masked anyway.
SECRET_KEY = re.compile(
    r"(?:^|[_\-.]|(?<=[a-z0-9])(?=[A-Z]))(?i:api[_\-]?keys?|authorization|"
    r"(?:access|refresh|id|session|auth)[_\-]?token|client[_\-]?secret|(?:secret|private)(?:[_\-]?access)?[_\-]?key|"
    r"secret|password|passwd|cookie|bearer)$")
# Kiro access/refresh tokens and common API-key shapes, masked even where nobody told us about them.
# Kiro tokens carry ':' '+' '/' '=' (a signature after the colon): mask the whole run.
TOKEN_SHAPES = re.compile(r"\b(?:aoa|aor)[A-Za-z0-9_\-:+/=]{20,}|\bsk-ant-[A-Za-z0-9_\-]{20,}|\bksk_[A-Za-z0-9]{16,}")
SAFE_HEADERS = ("user-agent", "anthropic-version", "anthropic-beta", "content-type", "x-app", "openai-beta",
                "x-stainless-lang", "x-stainless-package-version", "x-goog-api-client", "x-claude-code-session-id")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key.replace(" ", "")))


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of `value` (JSON-like) with secrets masked. `known`: exact secret strings to mask."""
    secrets = sorted((s for s in known if s and len(s) >= 8), key=len, reverse=True)
    return _walk(value, secrets)


def _walk(value: Any, secrets: list) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                    else _walk(v, secrets)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, secrets) for v in value]
    return value


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`secrets` are masked in the order given: pass them longest first (redact() does)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return TOKEN_SHAPES.sub(MASK, text) if ("ao" in text or "sk-" in text or "ksk_" in text) else text


def safe_headers(headers: Mapping[str, str]) -> dict:
    """Only headers that help debugging and never carry credentials."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in SAFE_HEADERS}
