"""Random identifiers for messages, completions and responses that clients see. Not secrets."""
from __future__ import annotations

import os
import string

ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str = "", length: int = 24) -> str:
    """`prefix` followed by `length` random letters and digits.

    One read of the system's random source per id (not one per character): the digits of a
    random number in base 62, with 8 spare bits so every character is as good as uniform."""
    number = int.from_bytes(os.urandom((length * 6 + 7) // 8 + 1), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return prefix + "".join(chars)
