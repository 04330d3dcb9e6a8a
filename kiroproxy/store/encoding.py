"""Text as the stores write and read it: always valid UTF-8, whatever the text held.

A Python str can hold lone surrogates (U+D800..U+DFFF), which UTF-8 cannot: written with
"surrogatepass" they become bytes such as ED A0 80 that no JSON reader or HTTP answer accepts.
utf8() writes them as U+FFFD instead; text() reads stray bytes (from stores written before) as
U+FFFD, so one odd record can never make a view fail. Pure: no I/O.
"""
from __future__ import annotations

import re

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str: half of a pair, never valid on its own


def scrub(text: str) -> str:
    """`text` with every lone surrogate as U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", text)


def utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return scrub(text).encode("utf-8")


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
