"""Filtering, paging and statistics over flow index entries. Pure: no I/O, no locks."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ..errors import BadRequest

MAX_LIMIT = 500


@dataclass(frozen=True)
class Filter:
    protocol: Optional[str] = None
    model: Optional[str] = None         # requested or upstream model
    account: Optional[str] = None
    state: Optional[str] = None
    has_error: Optional[bool] = None
    bookmarked: Optional[bool] = None
    tag: Optional[str] = None
    since: Optional[float] = None       # received_at >= since (epoch seconds)
    until: Optional[float] = None
    q: Optional[str] = None             # words, all must appear in the searchable text
    ids: Optional[Sequence[str]] = None

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if self.ids is not None and entry["id"] not in self.ids:
            return False
        if self.protocol and entry.get("protocol") != self.protocol:
            return False
        if self.model and self.model not in (entry.get("requested_model"), entry.get("model")):
            return False
        if self.account and self.account not in (entry.get("account_id"), entry.get("account_name")):
            return False
        if self.state and entry.get("state") != self.state:
            return False
        if self.has_error is not None and bool(entry.get("error")) != self.has_error:
            return False
        if self.bookmarked is not None and bool(entry.get("bookmarked")) != self.bookmarked:
            return False
        if self.tag and self.tag not in entry.get("tags", ()):
            return False
        received = entry.get("received_at") or 0.0
        if self.since is not None and received < self.since:
            return False
        if self.until is not None and received > self.until:
            return False
        if self.q:
            text = entry.get("search", "")
            return all(word in text for word in self.q.lower().split())
        return True


def _bool(value: Optional[str], name: str) -> Optional[bool]:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name} must be true or false", param=name)


def _number(value: Optional[str], name: str) -> Optional[float]:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number (epoch seconds)", param=name) from None


def filter_from(args: Mapping[str, Any]) -> Filter:
    """A Filter from query parameters or a JSON body. Raises BadRequest naming the bad field."""
    known = {f.name for f in fields(Filter)}
    unknown = set(args) - known - {"limit", "offset", "cursor", "format", "include_bodies"}
    if unknown:
        raise BadRequest(f"unknown filter(s): {', '.join(sorted(unknown))}")

    def text(name: str) -> Optional[str]:
        value = args.get(name)
        return str(value) if value not in (None, "") else None

    ids = args.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise BadRequest("ids must be a list of flow ids", param="ids")
    return Filter(protocol=text("protocol"), model=text("model"), account=text("account"), state=text("state"),
                  has_error=_bool(_str_or_none(args.get("has_error")), "has_error"),
                  bookmarked=_bool(_str_or_none(args.get("bookmarked")), "bookmarked"),
                  tag=text("tag"), since=_number(_str_or_none(args.get("since")), "since"),
                  until=_number(_str_or_none(args.get("until")), "until"), q=text("q"),
                  ids=tuple(ids) if ids is not None else None)


def _str_or_none(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def paging(args: Mapping[str, Any]) -> tuple:
    """(limit, offset, cursor) with bounds; cursor is a seq: return flows older than it."""
    def integer(name: str, default: Optional[int]) -> Optional[int]:
        raw = args.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise BadRequest(f"{name} must be an integer", param=name) from None
        if value < 0:
            raise BadRequest(f"{name} must not be negative", param=name)
        return value

    limit = min(integer("limit", 50) or 50, MAX_LIMIT)
    return limit, integer("offset", 0) or 0, integer("cursor", None)


def percentiles(values: Iterable[float], points: Sequence[int] = (50, 90, 99)) -> Dict[str, Optional[float]]:
    ordered = sorted(v for v in values if v is not None)
    out: Dict[str, Optional[float]] = {}
    for point in points:
        if not ordered:
            out[f"p{point}"] = None
            continue
        rank = (len(ordered) - 1) * point / 100.0
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        out[f"p{point}"] = round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 2)
    return out


def summarize(entries: List[Mapping[str, Any]]) -> Dict[str, Any]:
    """Counts by state/protocol/model/account, error rate, TTFB and duration percentiles."""
    finished = [e for e in entries if e.get("state") not in ("pending", "streaming")]
    errors = sum(1 for e in finished if e.get("error"))
    return {
        "total": len(entries),
        "by_state": dict(Counter(e.get("state") for e in entries)),
        "by_protocol": dict(Counter(e.get("protocol") for e in entries)),
        "by_model": dict(Counter(e.get("model") or e.get("requested_model") or "" for e in entries)),
        "by_account": dict(Counter(e.get("account_id") or "" for e in entries)),
        "errors": errors,
        "error_rate": round(errors / len(finished), 4) if finished else 0.0,
        "ttfb_ms": percentiles(e.get("ttfb_ms") for e in finished),
        "duration_ms": percentiles(e.get("duration_ms") for e in finished),
        "tokens": {"input": sum(e.get("input_tokens") or 0 for e in entries),
                   "output": sum(e.get("output_tokens") or 0 for e in entries)},
    }
