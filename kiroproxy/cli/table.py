"""Printing answers: a plain aligned table for people, JSON for scripts. Only the CLI prints."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, List, Optional, Sequence


def when(stamp: Optional[float]) -> str:
    """An epoch time as local 'YYYY-MM-DD HH:MM', '-' when unset."""
    if not stamp:
        return "-"
    return datetime.fromtimestamp(float(stamp), tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> str:
    """Columns padded to their widest cell; `empty` when there are no rows."""
    body: List[List[str]] = [[cell(v) for v in row] for row in rows]
    if not body:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def emit(text: str) -> None:
    print(text, flush=True)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    print(f"kiroproxy: {message}", file=sys.stderr, flush=True)
