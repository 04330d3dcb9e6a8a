"""One INFO line per client request, whatever its outcome, on the `kiroproxy.requests` logger:

    request protocol=anthropic path=/v1/messages model=claude-sonnet-4.5 account=a1b2 status=200
            ttfb_ms=312 duration_ms=2050   (one line)

Failures add reason= (and upstream= for a network failure). Values are quoted when they hold spaces
and passed through the redactor, so no key or token reaches the log.
"""
from __future__ import annotations

import logging
import re
from typing import Callable, Iterable, List, Optional, Tuple

from .exchange import Exchange, ExchangeSnapshot
from .redaction import redact_text

log = logging.getLogger("kiroproxy.requests")

_HOST = re.compile(r"https?://([^/\s:)\"']+)")
_PLAIN = re.compile(r"^[\w.:/@+-]+$")


def _value(text: str) -> str:
    return text if _PLAIN.match(text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


class RequestLog:
    """An exchange observer; `secrets()` lists the values to mask (keys, account tokens)."""

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        self.secrets = secrets

    def started(self, exchange: Exchange) -> None:
        pass

    def finished(self, exchange: ExchangeSnapshot) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info("request %s", self.line(exchange))

    def line(self, exchange: ExchangeSnapshot) -> str:
        tried = exchange.attempts[-1].account_id if exchange.attempts else "-"  # a failure keeps no account_id
        ttfb = None if exchange.first_byte_at is None else exchange.first_byte_at - exchange.received_at
        duration = None if exchange.completed_at is None else exchange.completed_at - exchange.received_at
        pairs: List[Tuple[str, str]] = [
            ("protocol", exchange.protocol or "-"), ("path", exchange.path or "-"),
            ("model", exchange.model or exchange.requested_model or "-"),
            ("account", exchange.account_id or tried), ("status", str(exchange.status)),
            ("ttfb_ms", _ms(ttfb)), ("duration_ms", _ms(duration)),
        ]
        if exchange.stream:
            pairs.append(("stream", "yes"))
        if exchange.usage.input_tokens is not None or exchange.usage.output_tokens is not None:
            pairs += [("in", str(exchange.usage.input_tokens or 0)), ("out", str(exchange.usage.output_tokens or 0))]
        if exchange.error:
            pairs.append(("kind", str(exchange.error.get("kind") or "-")))
            pairs.append(("reason", str(exchange.error.get("message") or "-")[:300]))
            host = self._upstream_host(exchange)
            if host:
                pairs.append(("upstream", host))
        known = list(self.secrets())
        return " ".join(f"{k}={_value(redact_text(v, known))}" for k, v in pairs)

    @staticmethod
    def _upstream_host(exchange: ExchangeSnapshot) -> str:
        """The upstream host a network failure named (the last such attempt), else ""."""
        for attempt in reversed(exchange.attempts):
            found = _HOST.search(attempt.message or "")
            if found:
                return found.group(1)
        found = _HOST.search(str((exchange.error or {}).get("message") or ""))
        return found.group(1) if found else ""
