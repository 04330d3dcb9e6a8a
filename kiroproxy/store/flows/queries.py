"""Filtering, paging, full-text scanning and statistics over flow index entries.

Pure: no locks, and no I/O of its own (the scan reads search texts through a function it is given).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ...errors import BadRequest
from ..stats import MAX_KEYS, OTHER

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
        """The metadata fields only: `q` needs the flow's text (see scan())."""
        return self.predicate()(entry)

    @property
    def words(self) -> Tuple[str, ...]:
        return tuple(self.q.lower().split()) if self.q else ()

    def predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        """A test of the metadata fields that are set; an empty filter costs nothing per entry."""
        checks: List[Callable[[Mapping[str, Any]], bool]] = []
        if self.ids is not None:
            wanted = frozenset(self.ids)
            checks.append(lambda e: e["id"] in wanted)
        for name in ("protocol", "state"):
            value = getattr(self, name)
            if value:
                checks.append(lambda e, name=name, value=value: e.get(name) == value)
        if self.model:
            checks.append(lambda e: self.model in (e.get("requested_model"), e.get("model")))
        if self.account:
            checks.append(lambda e: self.account in (e.get("account_id"), e.get("account_name")))
        if self.has_error is not None:
            checks.append(lambda e: bool(e.get("error")) == self.has_error)
        if self.bookmarked is not None:
            checks.append(lambda e: bool(e.get("bookmarked")) == self.bookmarked)
        if self.tag:
            checks.append(lambda e: self.tag in (e.get("tags") or ()))
        if self.since is not None:
            checks.append(lambda e: (e.get("received_at") or 0.0) >= self.since)
        if self.until is not None:
            checks.append(lambda e: (e.get("received_at") or 0.0) <= self.until)
        if not checks:
            return lambda e: True
        combined = checks[-1]
        for check in reversed(checks[:-1]):  # plain `and` chains: no generator per entry
            combined = (lambda first, rest: lambda e: first(e) and rest(e))(check, combined)
        return combined


def text_matches(words: Sequence[str], text: Optional[str]) -> bool:
    """Every word (lowercased) occurs in the (lowercased) text."""
    return text is not None and all(word in text for word in words)


@dataclass(frozen=True)
class Budget:
    seconds: float = 1.0
    bytes: int = 256 * 2**20  # of search text decompressed


@dataclass(frozen=True)
class Scan:
    matched: List[Any]      # matching candidates, in the order given (newest first)
    examined: int
    last: Optional[Any]     # the last candidate examined
    complete: bool          # every candidate was examined
    partial: bool           # the budget ran out before `want` matches were found


def scan(candidates: Sequence[Any], words: Sequence[str], want: int,
         text_of: Callable[[Any], Tuple[Optional[str], int]], budget: Budget,
         clock: Callable[[], float] = time.monotonic) -> Scan:
    """Read candidates' texts in order until `want` match or the budget is spent.
    text_of(candidate) -> (lowercased text or None when unreadable, bytes it cost)."""
    deadline = clock() + budget.seconds
    spent = 0
    matched: List[Any] = []
    examined = 0
    for candidate in candidates:
        if len(matched) >= want:
            break
        if examined and (spent >= budget.bytes or clock() >= deadline):
            return Scan(matched, examined, candidates[examined - 1], False, True)
        text, cost = text_of(candidate)
        spent += cost
        examined += 1
        if text_matches(words, text):
            matched.append(candidate)
    last = candidates[examined - 1] if examined else None
    return Scan(matched, examined, last, examined == len(candidates), False)


def _bool(value: Optional[str], name: str) -> Optional[bool]:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name} must be true or false", param=name)


def _time(value: Any, name: str) -> Optional[float]:
    """Epoch seconds, or an ISO-8601 time (`Z` or an offset; UTC when it has none)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        # Python 3.9's fromisoformat() does not read the `Z` suffix.
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except ValueError:
        raise BadRequest(f"{name} must be epoch seconds or an ISO-8601 time", param=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


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
                  tag=text("tag"), since=_time(args.get("since"), "since"),
                  until=_time(args.get("until"), "until"), q=text("q"),
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

    limit = integer("limit", 50)
    if not limit:
        raise BadRequest("limit must be at least 1", param="limit")
    return min(limit, MAX_LIMIT), integer("offset", 0) or 0, integer("cursor", None)


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


def _bounded(counts: Counter) -> Dict[str, int]:
    """At most MAX_KEYS keys: the most frequent, the rest added up under OTHER (as in stats)."""
    if len(counts) <= MAX_KEYS:
        return dict(counts)
    kept = dict(counts.most_common(MAX_KEYS - 1))
    kept[OTHER] = kept.get(OTHER, 0) + sum(n for key, n in counts.items() if key not in kept)
    return kept


def summarize(entries: List[Mapping[str, Any]]) -> Dict[str, Any]:
    """Counts by state/protocol/model/account, error rate, TTFB and duration percentiles."""
    finished = [e for e in entries if e.get("state") not in ("pending", "streaming")]
    errors = sum(1 for e in finished if e.get("error"))
    return {
        "total": len(entries),
        "by_state": dict(Counter(e.get("state") for e in entries)),
        "by_protocol": dict(Counter(e.get("protocol") for e in entries)),
        "by_model": _bounded(Counter(e.get("model") or e.get("requested_model") or "" for e in entries)),
        "by_account": _bounded(Counter(e.get("account_id") or "" for e in entries)),
        "errors": errors,
        "error_rate": round(errors / len(finished), 4) if finished else 0.0,
        "ttfb_ms": percentiles(e.get("ttfb_ms") for e in finished),
        "duration_ms": percentiles(e.get("duration_ms") for e in finished),
        "tokens": {"input": sum(e.get("input_tokens") or 0 for e in entries),
                   "output": sum(e.get("output_tokens") or 0 for e in entries)},
    }
