"""Lax conversion of configuration values (JSON, environment strings, flags) to the field types
Settings declares, with pydantic's rules and messages for those types (tests compare the two).

Settings do not use pydantic: importing it and building a model costs about 8 MB of resident
memory and a sixth of the start-up. Pure: no I/O.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, Mapping, Tuple

TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
FALSE = frozenset(("0", "off", "f", "false", "n", "no"))
INTEGER = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")


class Invalid(ValueError):
    """A value that does not convert; `where` is the path inside it ("0" for a list's first item)."""

    def __init__(self, message: str, where: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def at(self, *outer: str) -> Invalid:
        return Invalid(self.message, (*outer, *self.where))


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Invalid("Input should be a valid string")


def to_optional_str(value: Any) -> Any:
    return None if value is None else to_str(value)


# What pydantic-core trims from numbers in strings: Unicode White_Space (Rust's char::is_whitespace).
# Python's str.strip() also removes the separators U+001C..U+001F, which pydantic keeps (and rejects).
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def strip(text: str) -> str:
    """`text` without the white space pydantic trims; a separator left at either end stays (and fails)."""
    stripped = text.strip(WHITESPACE)
    return stripped if stripped == stripped.strip() else "\x00"  # never a number


def to_int(value: Any) -> int:
    if isinstance(value, int):  # bool included: True is 1
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("Input should be a finite number")
        if not value.is_integer():
            raise Invalid("Input should be a valid integer, got a number with a fractional part")
        if abs(value) >= 2**63:
            raise Invalid("Unable to parse input string as an integer, exceeded maximum size")
        return int(value)
    if isinstance(value, str):
        text = strip(value)
        if not INTEGER.fullmatch(text):
            raise Invalid("Input should be a valid integer, unable to parse string as an integer")
        return int(text.split(".")[0])
    raise Invalid("Input should be a valid integer")


def to_float(value: Any) -> float:
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise Invalid("Input should be a valid number") from None
    if isinstance(value, str):
        text = strip(value)
        try:
            if text.isascii():
                return float(text)
        except ValueError:
            pass
        raise Invalid("Input should be a valid number, unable to parse string as a number")
    raise Invalid("Input should be a valid number")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    if isinstance(value, str) or (isinstance(value, (int, float)) and abs(value) < 2**63
                                  and float(value).is_integer()):
        raise Invalid("Input should be a valid boolean, unable to interpret input")
    raise Invalid("Input should be a valid boolean")


def to_str_list(value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise Invalid("Input should be a valid list")
    out = []
    for number, item in enumerate(value):
        try:
            out.append(to_str(item))
        except Invalid as exc:
            raise exc.at(str(number)) from None
    return out


def to_str_dict(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid("Input should be a valid dictionary")
    out = {}
    for key, item in value.items():
        try:
            out[to_str(key)] = to_str(item)
        except Invalid as exc:
            raise exc.at(str(key)) from None
    return out


CONVERTERS: Dict[str, Callable[[Any], Any]] = {
    "str": to_str, "Optional[str]": to_optional_str, "int": to_int, "float": to_float, "bool": to_bool,
    "List[str]": to_str_list, "Dict[str, str]": to_str_dict,
}


def check_bounds(value: Any, bounds: Mapping[str, Any]) -> Any:
    """`bounds` holds ge, gt and le limits; NaN meets none of them."""
    if "ge" in bounds and not value >= bounds["ge"]:
        raise Invalid(f"Input should be greater than or equal to {bounds['ge']}")
    if "gt" in bounds and not value > bounds["gt"]:
        raise Invalid(f"Input should be greater than {bounds['gt']}")
    if "le" in bounds and not value <= bounds["le"]:
        raise Invalid(f"Input should be less than or equal to {bounds['le']}")
    return value


def convert(kind: str, value: Any, bounds: Mapping[str, Any]) -> Any:
    """`value` as the type named `kind` (one of CONVERTERS), within `bounds`; raises Invalid."""
    return check_bounds(CONVERTERS[kind](value), bounds) if bounds else CONVERTERS[kind](value)
