"""The one reader of JSON request bodies, for the client APIs and the admin API alike.

Whatever a client sends, read_object() returns a JSON object that every later step can handle
(translate, store, show again as JSON) or raises a ProxyError with a 4xx status: empty, cut or
invalid JSON, bytes that are not UTF-8 (an "encoded surrogate" such as ED A0 80 included), a body
that is not an object, NaN / Infinity / numbers out of range, nesting deeper than MAX_DEPTH, a
body over the size limit. Lone surrogate escapes (a cut emoji from a JS client) cannot be UTF-8:
they become U+FFFD in every string and key.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, List, Optional, Tuple

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import BadRequest, ProxyError
from ..store.encoding import LONE_SURROGATE

# Deeper bodies are refused: the translators (and the flow store) walk request values recursively.
MAX_DEPTH = 128
# A \uD800-\uDFFF escape in the raw body: the only way a lone surrogate gets into parsed JSON once
# the bytes are known to be UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def read_object(*, empty_ok: bool = False) -> Tuple[dict, Optional[bytes]]:
    """The request's JSON object, safe to translate and store, and its raw bytes (None when they
    were scrubbed or the body was empty). `empty_ok`: an empty body reads as {} (admin routes)."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise ProxyError(f"request body larger than {(request.max_content_length or 0) // 2**20} MiB",
                         status=413, kind="request_too_large") from None
    if not raw.strip():
        if empty_ok:
            return {}, None
        raise BadRequest("the request body is empty; send a JSON object")
    body = parse(raw)
    scrub = _SURROGATE_ESCAPE.search(raw) is not None
    # Cheap guards first, so an ordinary body is never walked.
    if scrub or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        _clean(body, scrub)
    # The flow store keeps these bytes instead of copying the parsed body on the request thread
    # (immutable, so nothing the request does later can reach the record); not after a scrub.
    return body, None if scrub else raw


def parse(raw: bytes) -> dict:
    """`raw` as a JSON object, or BadRequest saying what is wrong with it."""
    try:
        text = raw.decode(json.detect_encoding(raw))  # strict: no lone surrogates, no stray bytes
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not valid UTF-8 (byte {exc.start}); JSON must be sent as "
                         "UTF-8") from None
    try:
        body = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the request body nests JSON deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # includes integers too long to read
        raise BadRequest(f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_json_type(body)}")
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Python reads it as infinity, which no JSON answer may carry
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _clean(body: Any, scrub: bool) -> None:
    """Check the nesting depth and, when `scrub`, replace lone surrogates in place. Iterative (one
    level at a time), so depth never costs stack; json.loads made every container, so changing
    them is safe. About half the cost of json.loads on a large Claude Code body."""
    level: List[Any] = [body]
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise BadRequest(f"the request body nests JSON deeper than {MAX_DEPTH} levels")
        below: List[Any] = []
        for value in level:
            if scrub:
                _scrub(value)
            for item in (value.values() if type(value) is dict else value):
                if type(item) is dict or type(item) is list:
                    below.append(item)
        level = below
        depth += 1


def _scrub(value: Any) -> None:
    """Lone surrogates -> U+FFFD in the keys and string items of one dict or list."""
    if type(value) is dict:
        if any(LONE_SURROGATE.search(key) for key in value):
            items = [(LONE_SURROGATE.sub("\ufffd", k), v) for k, v in value.items()]
            value.clear()
            value.update(items)
        keys: Iterable[Any] = list(value)
    else:
        keys = range(len(value))
    for key in keys:
        item = value[key]
        if type(item) is str and not item.isascii():
            value[key] = LONE_SURROGATE.sub("\ufffd", item)
