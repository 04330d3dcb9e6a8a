"""Client connections that cannot starve the server.

A connection must deliver a complete request within `request_timeout` seconds of opening (or of
its previous answer; a body may take longer while it keeps arriving), else it is closed: idle and
trickling sockets never pile up. A request with both Content-Length and Transfer-Encoding is
answered 400 and its connection closed (RFC 9112 section 6.1), so nothing hidden in its body is
served. The open-file limit is raised so `connection_limit` sockets fit.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError

from .config import Settings

log = logging.getLogger(__name__)

# File descriptors kept free beyond the sockets: data files, upstream connections, the tokenizer.
SPARE_FILES = 256


class StrictParser(HTTPRequestParser):
    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # waitress drops Content-Length for a chunked body and keeps the connection; HTTP/1.0 keeps
        # Transfer-Encoding in the headers and reads Content-Length. Either way, refuse and close.
        if "CONTENT_LENGTH" in self.headers and (self.chunked or "TRANSFER_ENCODING" in self.headers):
            raise ParsingError("a request must not carry both Content-Length and Transfer-Encoding")


class GuardedChannel(HTTPChannel):
    """An HTTPChannel that closes itself when no complete request arrives in time.

    readable() runs on the server loop for every open channel at each turn (at least every
    server.POLL_SECONDS), so the deadline is checked there without another thread."""

    parser_class = StrictParser
    request_timeout = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since = self.creation_time

    def readable(self) -> bool:
        now = time.time()
        if self.requests or self.total_outbufs_len:
            self.waiting_since = now  # a request is running or its answer is being sent
        elif self.overdue(now):
            self.will_close = True  # writable() turns true; handle_write closes the socket
            return False
        return super().readable()

    def overdue(self, now: float) -> bool:
        partial = self.request
        if partial is not None and partial.headers_finished:
            return now - self.last_activity > self.request_timeout  # the body stalled
        return now - self.waiting_since > self.request_timeout


def channel_class(request_timeout: float) -> type:
    return type("Channel", (GuardedChannel,), {"request_timeout": request_timeout})


def thread_count(settings: Settings) -> int:
    """Worker threads: one per stream slot plus `threads` that admin calls, model lists and
    token counts always find free."""
    return settings.max_streams + settings.threads


def options(settings: Settings) -> Dict[str, Any]:
    """create_server() keyword arguments for these settings."""
    return {"threads": thread_count(settings), "connection_limit": settings.connection_limit,
            "request_timeout": settings.request_timeout_seconds}


def fit_file_limit(connections: int, threads: int) -> int:
    """Raise the soft open-file limit so `connections` sockets fit; returns how many connections
    fit (fewer when the hard limit is lower: accept() failing in a loop is worse than a limit)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return connections
    wanted = connections + 2 * threads + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit to %d: %s", target, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    fitting = max(50, soft - 2 * threads - SPARE_FILES)
    log.warning("the open-file limit (%d) holds only %d connections, not %d; raise `ulimit -n`",
                soft, fitting, connections)
    return fitting
