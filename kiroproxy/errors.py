"""The ProxyError hierarchy: an HTTP status and a kind, never a protocol's error shape.

Each protocol module renders these in its own format. Pure: no I/O.
"""
from __future__ import annotations

from typing import Optional


class ProxyError(Exception):
    """Root of every error that reaches a client. `message` is safe to show (no secrets)."""

    status = 500
    kind = "api_error"

    def __init__(self, message: str, *, status: Optional[int] = None, kind: Optional[str] = None,
                 retry_after: Optional[float] = None, param: Optional[str] = None,
                 code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.retry_after = retry_after
        self.param = param
        self.code = code

    def __str__(self) -> str:
        return self.message


class BadRequest(ProxyError):
    status = 400
    kind = "invalid_request"


class Unauthorized(ProxyError):
    status = 401
    kind = "authentication"


class Forbidden(ProxyError):
    status = 403
    kind = "permission"


class NotFound(ProxyError):
    status = 404
    kind = "not_found"


class ModelNotFound(NotFound):
    kind = "model_not_found"


class TooLarge(ProxyError):
    """The prompt does not fit the model's context window."""

    status = 400
    kind = "context_length"

    def __init__(self, message: str, *, tokens: Optional[int] = None, limit: Optional[int] = None,
                 **kw) -> None:
        super().__init__(message, **kw)
        self.tokens = tokens
        self.limit = limit


class RateLimited(ProxyError):
    status = 429
    kind = "rate_limit"


class QuotaExhausted(ProxyError):
    status = 429
    kind = "quota"


class Overloaded(ProxyError):
    status = 529
    kind = "overloaded"


class Unavailable(ProxyError):
    """No account can serve the request at all (none configured, all disabled)."""

    status = 503
    kind = "unavailable"


class ShuttingDown(ProxyError):
    """The server is stopping and its shutdown grace is over: the answer ends here; retry."""

    status = 503
    kind = "overloaded"


class UpstreamError(ProxyError):
    """The upstream failed in a way that is not the client's fault."""

    status = 502
    kind = "upstream"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "timeout"


class Truncated(UpstreamError):
    """The upstream stream ended without its end-of-answer signals."""

    kind = "truncated"
