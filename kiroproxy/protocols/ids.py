"""Random identifiers for messages, completions and responses that clients see. Not secrets."""
from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str = "", length: int = 24) -> str:
    """`prefix` followed by `length` random letters and digits."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))
