"""Client-visible ids: prefix, length, alphabet, and no repeats."""
from __future__ import annotations

import re

from kiroproxy.protocols.ids import random_id


def test_prefix_length_and_alphabet():
    for length in (1, 22, 24, 40):
        value = random_id("msg_", length=length)
        assert re.fullmatch(rf"msg_[A-Za-z0-9]{{{length}}}", value)


def test_ids_do_not_repeat_and_use_every_character():
    ids = [random_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert len(set("".join(ids))) == 62
    assert len({value[-1] for value in ids}) == 62  # the last character too
