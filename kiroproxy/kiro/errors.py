"""Classify Kiro upstream failures into an action for the relay and an error for the client.

Pure: no I/O. Follows the error table of the upstream reference (status + body markers).
"""
from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Optional

from ..errors import (
    BadRequest,
    Forbidden,
    Overloaded,
    ProxyError,
    QuotaExhausted,
    RateLimited,
    TooLarge,
    UpstreamError,
)

# What the relay does about a failure.
REFRESH = "refresh"      # token expired/invalid: refresh once and retry on the same account
ROTATE = "rotate"        # throttled or transient: rest this account briefly, try the next one
EXHAUSTED = "exhausted"  # credits used up: park the account until its reset date, try the next
SUSPEND = "suspend"      # account suspended: disable it with the reason; do not fan out the request
PROFILE = "profile"      # profile ARN missing/invalid: resolve it (or change host) and retry once
FAIL = "fail"            # the request itself is at fault: answer the client, no retry

SUSPICIOUS_COOLDOWN_SECONDS = 15 * 60.0


class KiroFailure(ProxyError):
    """An upstream failure with what to do about it.

    status/kind/message describe the error the client sees if nothing else can be tried.
    `cooldown` is seconds to rest the account (None: the pool's default), `period` is
    "month" or "day" for exhausted quotas, `retry_after` is what the upstream asked for.
    """

    def __init__(self, action: str, client_error: ProxyError, *, upstream_status: int = 0,
                 reason: Optional[str] = None, cooldown: Optional[float] = None,
                 period: Optional[str] = None, same_account_retry: bool = False) -> None:
        super().__init__(client_error.message, status=client_error.status, kind=client_error.kind,
                         retry_after=client_error.retry_after, code=client_error.code)
        self.action = action
        self.client_error = client_error
        self.upstream_status = upstream_status
        self.reason = reason
        self.cooldown = cooldown
        self.period = period
        self.same_account_retry = same_account_retry

    def __repr__(self) -> str:
        return f"KiroFailure({self.action}, {self.upstream_status}, {self.reason or self.message!r})"


def parse_body(text: str) -> tuple:
    """(message, reason) from a Kiro error body; tolerates non-JSON bodies."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return text.strip()[:500], None
    if not isinstance(data, dict):
        return str(data)[:500], None
    message = data.get("message") or data.get("Message") or data.get("error_description") \
        or data.get("error") or ""
    reason = data.get("reason")
    if not reason and isinstance(data.get("__type"), str):
        reason = data["__type"].rsplit("#", 1)[-1]
    return str(message)[:500], (str(reason) if reason else None)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


_TOO_LONG = re.compile(r"CONTENT_LENGTH_EXCEEDS_THRESHOLD|input is too long|too many tokens", re.I)
_SUSPENDED = re.compile(r"TEMPORARILY_SUSPENDED|temporarily is suspended|locked your account|"
                        r"account (has been )?suspended", re.I)
_BEARER = re.compile(r"bearer token|token.*(expired|invalid)|expired.*token|security token", re.I)
_PROFILE = re.compile(r"profileArn is required|Invalid profileArn|REQUEST_BODY_INVALID", re.I)
_MODEL = re.compile(r"INVALID_MODEL_ID|Invalid model", re.I)
_CAPACITY = re.compile(r"INSUFFICIENT_MODEL_CAPACITY|MODEL_TEMPORARILY_UNAVAILABLE|high load", re.I)
_MONTHLY = re.compile(r"MONTHLY_REQUEST_COUNT|OVERAGE_REQUEST_LIMIT_EXCEEDED|monthly", re.I)
_DAILY = re.compile(r"DAILY_REQUEST_COUNT", re.I)
_SUSPICIOUS = re.compile(r"suspicious activity", re.I)


def classify(status: int, body: str = "", retry_after: Optional[str] = None) -> KiroFailure:
    """Turn a non-200 upstream answer into a KiroFailure."""
    message, reason = parse_body(body)
    marker = f"{reason or ''} {message}"
    wait = parse_retry_after(retry_after)
    shown = message or f"upstream answered HTTP {status}"

    def failure(action: str, error: ProxyError, **kw) -> KiroFailure:
        return KiroFailure(action, error, upstream_status=status, reason=reason, **kw)

    if _SUSPENDED.search(marker):
        return failure(SUSPEND, Forbidden(f"Kiro account suspended: {shown}"))
    if status == 402 or _MONTHLY.search(marker) or _DAILY.search(marker):
        period = "day" if _DAILY.search(marker) else "month"
        return failure(EXHAUSTED, QuotaExhausted(f"Kiro quota exhausted: {shown}", retry_after=wait),
                       period=period)
    if status == 400 and _TOO_LONG.search(marker):
        return failure(FAIL, TooLarge(f"Input is too long for the model: {shown}"))
    if _PROFILE.search(marker) and status in (400, 403):
        return failure(PROFILE, UpstreamError(f"Kiro rejected the profile: {shown}"))
    if status == 400 and _MODEL.search(marker):
        return failure(FAIL, BadRequest(f"Kiro rejected the model: {shown}", code="model_not_found"))
    if _CAPACITY.search(marker):
        return failure(ROTATE, Overloaded(f"Kiro is overloaded: {shown}", retry_after=wait),
                       cooldown=wait if wait is not None else 2.0, same_account_retry=True)
    if status == 401 or (status == 403 and _BEARER.search(marker)):
        # The proxy's own Kiro account failed, not the client's key: clients stop for good on a
        # 401 ("your API key is wrong"), but retry a 503 while the account is refreshed or swapped.
        return failure(REFRESH, UpstreamError(f"the Kiro account's token was rejected: {shown}",
                                              status=503, kind="overloaded"))
    if status == 403:
        return failure(FAIL, Forbidden(f"Kiro refused the request: {shown}"))
    if status == 429:
        if _SUSPICIOUS.search(marker):
            return failure(ROTATE, RateLimited(f"Kiro rate limit: {shown}", retry_after=wait),
                           cooldown=max(wait or 0.0, SUSPICIOUS_COOLDOWN_SECONDS))
        return failure(ROTATE, RateLimited(f"Kiro rate limit: {shown}", retry_after=wait),
                       cooldown=wait)  # None: the pool's default, growing with repeats
    if status == 400 or 404 <= status < 500:
        return failure(FAIL, BadRequest(f"Kiro rejected the request: {shown}"))
    return failure(ROTATE, UpstreamError(f"Kiro upstream error (HTTP {status}): {shown}",
                                         status=503, kind="overloaded", retry_after=wait),
                   cooldown=wait if wait is not None else 5.0, same_account_retry=True)


_EXCEPTION_STATUS = {
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "AccessDeniedException": 403,
    "ValidationException": 400,
    "ResourceNotFoundException": 400,
    "ContentLengthExceededException": 400,
    "ConflictException": 400,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ModelStreamErrorException": 500,
}


def classify_exception(exception_type: str, message: str = "") -> KiroFailure:
    """Classify an exception frame inside a 200 event stream."""
    status = _EXCEPTION_STATUS.get(exception_type, 500)
    body = json.dumps({"message": message or exception_type, "reason": exception_type})
    return classify(status, body)
