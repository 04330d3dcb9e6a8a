"""Readers for the request settings every client protocol has, one behaviour per kind of field.

Each reader takes the raw JSON value, the field's path as the client spells it (`where`, e.g.
"max_tokens" or "generationConfig.maxOutputTokens") and the `param` its error names (default:
`where`). A missing value (absent or null) reads as None; a present value of the wrong kind is a
BadRequest "<where>: must be ...", whatever the protocol:
- number: a finite JSON number, never a boolean (temperature, top_p, top_k);
- positive_int: an integer >= 1, never a boolean (max tokens under each protocol's name);
- flag: true or false, never a string such as "false" (stream, includeThoughts);
- choice: one of a fixed set of strings (response format types);
- word: a string, stripped and lower-cased, "" read as None (reasoning effort or level);
- stops: a list of strings, or a single string where the protocol's API allows one; empty
  strings are dropped.
Sampling settings Kiro has no control for (temperature, top_p, top_k) are checked like any number
and then ignored: temperature rides on ChatRequest for the flow record, nothing else reads them.
Pure: no I/O.
"""
from __future__ import annotations

import math
from typing import Any, Collection, Optional, Tuple

from ..errors import BadRequest


def _reject(where: str, param: Optional[str], what: str) -> BadRequest:
    return BadRequest(f"{where}: {what}", param=where if param is None else param)


def is_number(value: Any) -> bool:
    """True for a finite JSON number (an int or a float, not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def number(value: Any, where: str, param: Optional[str] = None) -> Optional[float]:
    if value is None:
        return None
    if not is_number(value):
        raise _reject(where, param, "must be a number")
    return float(value)


def positive_int(value: Any, where: str, param: Optional[str] = None) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _reject(where, param, "must be a positive integer")
    return value


def flag(value: Any, where: str, param: Optional[str] = None) -> Optional[bool]:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _reject(where, param, "must be true or false")
    return value


def choice(value: Any, where: str, options: Collection[str], param: Optional[str] = None) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or value not in options:
        raise _reject(where, param, "must be one of " + ", ".join(repr(o) for o in options))
    return value


def word(value: Any, where: str, param: Optional[str] = None) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _reject(where, param, "must be a string such as 'low', 'medium' or 'high'")
    return value.strip().lower() or None


def stops(value: Any, where: str, param: Optional[str] = None, *, single: bool = False) -> Tuple[str, ...]:
    """Stop sequences; `single`: the protocol's API also takes one string (OpenAI's `stop`)."""
    if value is None:
        return ()
    if single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _reject(where, param, "must be a string or a list of strings" if single else "must be a list of strings")
    return tuple(s for s in value if s)
