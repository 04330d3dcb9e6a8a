"""Client-facing text names accounts by a neutral label ("account 3f9a0c2b7d1e"), never by the
e-mail address, Kiro user id or AWS profile ARN behind them; those stay in the admin API and logs.

Pure: no I/O. The caller supplies the known identities (the pool's names and quota e-mails).
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Tuple

HIDDEN = "[account identity]"
# The look-behind starts a match only where a run of address characters starts, so a long run
# without "@" is scanned once instead of once per position (a 20 KB model name took 0.3 s).
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
ARN = re.compile(r"\barn:aws[a-z\-]*:[^\s\"',;)\]}]+")
# "User ID (d-90671a2b3c.4f5e...)", "userId: 1234abcd": an id after the words, with a digit in it.
USER_ID = re.compile(r"(?i)(\buser[\s_-]*id\b[\s:=(\"'#]*)(?=[A-Za-z._\-]*\d)[A-Za-z0-9._\-]{6,}")
MIN_NAME = 3  # a shorter account name ("G") would hide ordinary letters


def label(account_id: str) -> str:
    return f"account {account_id}"


def identities(summaries: Iterable[Mapping]) -> Tuple[Tuple[str, str], ...]:
    """(identity, label) pairs from pool summaries: each account's name and quota e-mail,
    longest first so a name containing another is replaced whole."""
    pairs = []
    for summary in summaries:
        quota = summary.get("quota") or {}
        for value in (summary.get("name"), quota.get("email") if isinstance(quota, Mapping) else None):
            if isinstance(value, str) and len(value.strip()) >= MIN_NAME:
                pairs.append((value.strip(), label(str(summary.get("id")))))
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))


def neutral(text: str, known: Iterable[Tuple[str, str]] = ()) -> str:
    """`text` with known identities replaced by their labels and any other e-mail address, AWS
    ARN or user id hidden."""
    for identity, name in known:
        if identity in text:
            text = text.replace(identity, name)
    text = EMAIL.sub(HIDDEN, text)
    text = ARN.sub(HIDDEN, text)
    return USER_ID.sub(lambda m: m.group(1) + HIDDEN, text)
