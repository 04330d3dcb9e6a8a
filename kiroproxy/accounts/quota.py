"""Kiro's getUsageLimits document reduced to credits used, limit and remaining.

Pure: no I/O and no clock. Tolerant: a missing or malformed field reads as zero or None, never raises.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from ..errors import BadRequest
from .credentials import parse_time

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class Quota:
    """Credits of one account. Times are epoch seconds.

    used/limit/remaining cover every breakdown, an ACTIVE free trial and active bonuses; each item's
    remainder is clamped at zero, so remaining can exceed limit - used. The trial_* fields describe
    the active trial(s), else the first trial whatever its status (counted in the totals only if ACTIVE).
    """

    used: float = 0.0
    limit: float = 0.0
    remaining: float = 0.0
    trial_used: float = 0.0
    trial_limit: float = 0.0
    trial_status: Optional[str] = None
    trial_expires_at: Optional[float] = None
    bonus_used: float = 0.0
    bonus_limit: float = 0.0
    next_reset_at: Optional[float] = None
    days_until_reset: Optional[int] = None
    subscription: Optional[str] = None
    subscription_type: Optional[str] = None
    email: Optional[str] = None
    overage: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly; the keys are the field names and stay stable."""
        return asdict(self)


@dataclass(frozen=True)
class _Tally:
    used: float = 0.0
    limit: float = 0.0
    remaining: float = 0.0

    def plus(self, item: Mapping[str, Any]) -> _Tally:
        used = _number(item, "currentUsageWithPrecision", "currentUsage")
        limit = _number(item, "usageLimitWithPrecision", "usageLimit")
        return _Tally(self.used + used, self.limit + limit, self.remaining + max(0.0, limit - used))

    def merge(self, other: _Tally) -> _Tally:
        return _Tally(self.used + other.used, self.limit + other.limit, self.remaining + other.remaining)


def parse(document: Any) -> Quota:
    """A Quota from a getUsageLimits response body (a dict); anything unusable reads as empty."""
    doc = _mapping(document)
    breakdowns = _mappings(doc.get("usageBreakdownList"))
    base, bonus = _Tally(), _Tally()
    for breakdown in breakdowns:
        base = base.plus(breakdown)
        for item in _mappings(breakdown.get("bonuses")):
            # A bonus without a status counts; one that says it is expired or used up does not.
            if _text(item.get("status"), upper=True) in (None, ACTIVE):
                bonus = bonus.plus(item)
    trials = [_mapping(b.get("freeTrialInfo")) for b in breakdowns if _mapping(b.get("freeTrialInfo"))]
    active = [t for t in trials if _text(t.get("freeTrialStatus"), upper=True) == ACTIVE]
    shown = active or trials[:1]
    trial = _Tally()
    for item in shown:
        trial = trial.plus(item)
    total = base.merge(bonus).merge(trial if active else _Tally())
    subscription = _mapping(doc.get("subscriptionInfo"))
    expiries = [t for t in (_time(item.get("freeTrialExpiry")) for item in shown) if t is not None]
    return Quota(
        used=_round(total.used), limit=_round(total.limit), remaining=_round(total.remaining),
        trial_used=_round(trial.used), trial_limit=_round(trial.limit),
        trial_status=_text(shown[0].get("freeTrialStatus"), upper=True) if shown else None,
        trial_expires_at=max(expiries) if expiries else None,
        bonus_used=_round(bonus.used), bonus_limit=_round(bonus.limit),
        next_reset_at=_next_reset(doc, breakdowns),
        days_until_reset=_integer(doc.get("daysUntilReset")),
        subscription=_text(subscription.get("subscriptionTitle")),
        subscription_type=_text(subscription.get("type")),
        email=_text(_mapping(doc.get("userInfo")).get("email")),
        overage=_text(_mapping(doc.get("overageConfiguration")).get("overageStatus")),
    )


def exhausted(quota: Quota) -> bool:
    """No credits left. A quota without any limit (an empty or unknown document) is not exhausted."""
    return quota.limit > 0 and quota.remaining <= 0


def next_reset(now: float, period: str = "month") -> float:
    """When Kiro's counters next reset: the start of the next UTC day for "day", else of the next month."""
    if period == "day":
        return (int(now // 86400) + 1) * 86400.0
    today = datetime.fromtimestamp(now, tz=timezone.utc)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> List[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _number(item: Mapping[str, Any], precise: str, plain: str) -> float:
    """The precise field when usable, else the integer one, else 0."""
    for name in (precise, plain):
        value = _finite(item.get(name))
        if value is not None:
            return value
    return 0.0


def _integer(value: Any) -> Optional[int]:
    number = _finite(value)
    return int(number) if number is not None else None


def _text(value: Any, *, upper: bool = False) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().upper() if upper else value.strip()


def _time(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        stamp = parse_time(value)
    except (BadRequest, ValueError, TypeError, OverflowError):
        return None
    return stamp if stamp and math.isfinite(stamp) else None


def _next_reset(doc: Mapping[str, Any], breakdowns: List[Mapping[str, Any]]) -> Optional[float]:
    """The document's nextDateReset, else the first breakdown that has one."""
    for source in (doc, *breakdowns):
        stamp = _time(source.get("nextDateReset"))
        if stamp is not None:
            return stamp
    return None


def _round(value: float) -> float:
    # Sums of precise credits pick up binary noise (0.1 + 0.2); six decimals is far below a credit.
    return round(value, 6)
