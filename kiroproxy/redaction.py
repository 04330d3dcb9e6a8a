"""The one place secrets are removed from anything we store, log or export.

redact() masks values under secret-looking keys and every occurrence of a known secret value
inside strings; a Redactor prepares one set of known secrets once so a whole document can be
checked in one pass per secret. Pure: no I/O.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

MASK = "[redacted]"
# A key is secret when its last word names a credential; words start after `_`, `-`, `.` or at a
# camelCase hump (openaiApiKey). A bare `key` or `token` is not: both name harmless things far more
# often (schema properties, cache keys, pagination), and token-shaped values are masked anyway.
SECRET_KEY = re.compile(
    r"(?:^|[_\-.]|(?<=[a-z0-9])(?=[A-Z]))(?i:api[_\-]?keys?|authorization|"
    r"(?:access|refresh|id|session|auth)[_\-]?token|client[_\-]?secret|(?:secret|private)(?:[_\-]?access)?[_\-]?key|"
    r"secret|password|passwd|cookie|bearer)$")
# Kiro access/refresh tokens and common API-key shapes, masked even where nobody told us about them.
# Kiro tokens carry ':' '+' '/' '=' (a signature after the colon): mask the whole run. `sk-` covers
# OpenAI's sk-… and sk-proj-… (32+ characters: real keys are longer) and Anthropic's sk-ant-…;
# AIza… is a Google API key.
TOKEN_SHAPES = re.compile(r"\b(?:aoa|aor)[A-Za-z0-9_\-:+/=]{20,}|\bsk-ant-[A-Za-z0-9_\-]{20,}"
                          r"|\bsk-[A-Za-z0-9_\-]{32,}|\bksk_[A-Za-z0-9]{16,}|\bAIza[A-Za-z0-9_\-]{30,}")
# The value after "Bearer" (an Authorization header pasted into a prompt); the word itself stays.
BEARER_VALUE = re.compile(r"(\b[Bb][Ee][Aa][Rr][Ee][Rr]\s+)[A-Za-z0-9._~+/\-]{16,}=*")
SAFE_HEADERS = ("user-agent", "anthropic-version", "anthropic-beta", "content-type", "x-app", "openai-beta",
                "x-stainless-lang", "x-stainless-package-version", "x-goog-api-client", "x-claude-code-session-id")
MIN_SECRET = 8  # shorter known values would mask ordinary words all over a flow
_SCALARS = frozenset({int, float, bool, type(None)})


@lru_cache(maxsize=4096)  # documents repeat a small vocabulary of keys; the cache is bounded
def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key.replace(" ", "")))


def ordered(known: Iterable[str]) -> list:
    """The known secrets redact_text() should mask: usable ones only, longest first."""
    return sorted(_usable(known), key=len, reverse=True)


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """A copy of `value` (JSON-like) with secrets masked. `known`: exact secret strings to mask."""
    return _walk(value, ordered(known))


def _walk(value: Any, secrets: list) -> Any:
    kind = type(value)
    if kind in _SCALARS:  # exact types first: an isinstance check against typing.Mapping is slow
        return value
    if kind is str or isinstance(value, str):
        return redact_text(value, secrets)
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
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
    if _may_hold_shape(text):
        text = TOKEN_SHAPES.sub(MASK, text)
    if "earer" in text or "EARER" in text:
        text = BEARER_VALUE.sub(r"\1" + MASK, text)
    return text


def _may_hold_shape(text: str) -> bool:
    """Whether `text` holds a piece every TOKEN_SHAPES match contains: four `in` tests cost far less
    than the pattern (or than any() over a generator, which a walk pays for every string)."""
    return "ao" in text or "sk-" in text or "ksk_" in text or "AIza" in text


def has_shapes(text: str) -> bool:
    """`text` holds something redact_text() masks without being told (a key or token shape)."""
    return redact_text(text) != text


def safe_headers(headers: Mapping[str, str]) -> dict:
    """Only headers that help debugging and never carry credentials."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in SAFE_HEADERS}


def _usable(secrets: Iterable[str]) -> frozenset:
    return frozenset(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET)


class Redactor:
    """One set of known secrets, prepared once: longest first, plus their UTF-8 and JSON-escaped
    bytes. Masking a big document string by string costs (strings x secrets) substring tests;
    present() first finds the few secrets that occur anywhere in it (one fast scan per secret, in
    C), so the masking walk only carries those: usually none.

    Immutable, so threads share it; build a new one (see refreshed()) when the secrets change."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.key = _usable(secrets)
        self.secrets: Tuple[str, ...] = tuple(ordered(self.key))
        self._utf8 = tuple(s.encode("utf-8", "surrogatepass") for s in self.secrets)
        self._holds_nul = any("\0" in s for s in self.secrets)
        # A string's JSON form escapes each character on its own, so a secret occurs inside a JSON
        # string exactly when its own escaped form occurs in the document's bytes.
        self._json = tuple(json.dumps(s, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")
                           for s in self.secrets)

    def refreshed(self, secrets: Iterable[str]) -> Redactor:
        """This redactor when `secrets` is the same set, else a new one."""
        key = _usable(secrets)
        return self if key == self.key else Redactor(key)

    def present(self, *texts: str) -> Tuple[str, ...]:
        """The known secrets occurring in any of `texts`, longest first. The texts are joined
        once (a NUL between them, so a match never spans two) and scanned once per secret: with
        150 secrets, an any() over the texts per secret cost more than the scans themselves."""
        if not self.secrets:
            return ()
        if self._holds_nul:  # a secret holding NUL could match across the joint: each text alone
            return tuple(s for s in self.secrets if any(s in text for text in texts))
        joined = texts[0] if len(texts) == 1 else "\0".join(texts)
        return tuple(s for s in self.secrets if s in joined)

    def present_in_utf8(self, data: bytes) -> Tuple[str, ...]:
        """The known secrets whose UTF-8 bytes occur in `data` (a pickle stores strings as UTF-8)."""
        return tuple(s for s, raw in zip(self.secrets, self._utf8) if raw in data)

    def present_in_json(self, data: bytes) -> Tuple[str, ...]:
        """The known secrets occurring inside the strings of a UTF-8 JSON document."""
        return tuple(s for s, raw in zip(self.secrets, self._json) if raw in data)

    def redact(self, value: Any, present: Optional[Sequence[str]] = None) -> Any:
        """redact() with only `present` (longest first; default: every known secret)."""
        return _walk(value, list(self.secrets if present is None else present))

    def text(self, text: str) -> str:
        return redact_text(text, [s for s in self.secrets if s in text])
