"""Waitress on a thread pool, with a clean shutdown on SIGTERM/SIGINT (state flushed to disk).

The signal handler only sets a flag; the serving loop polls in short steps and stops between
them, so no exception is ever raised inside waitress while it holds a lock.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Dict, Optional

from waitress.server import create_server as waitress_server

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


def create_server(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 32) -> Any:
    """A waitress server bound now (port 0 picks a free port: read .effective_port)."""
    return waitress_server(app, host=host, port=port, threads=threads, ident="kiroproxy",
                           channel_timeout=600, connection_limit=max(100, threads * 4),
                           clear_untrusted_proxy_headers=True,
                           # Keep reading the client socket during a request, so a client that
                           # hangs up mid-stream is noticed and its upstream connection cut.
                           channel_request_lookahead=1)


def _socket_map(server: Any) -> Dict[int, Any]:
    found = getattr(server, "map", None)  # MultiSocketServer
    return found if found is not None else server._map


def stop(server: Any, timeout: float = 5.0) -> None:
    """Stop accepting, close open connections, and give worker threads `timeout` to finish."""
    server.close()
    for channel in list(_socket_map(server).values()):
        try:
            channel.close()
        except OSError:
            pass
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)


def run_until(server: Any, stopping: threading.Event) -> None:
    socket_map = _socket_map(server)
    while not stopping.is_set() and socket_map:
        server.asyncore.loop(timeout=POLL_SECONDS, map=socket_map, use_poll=server.adj.asyncore_use_poll,
                             count=1)


def serve(app: Any, host: str, port: int, threads: int, on_ready: Optional[Callable[[Any], None]] = None,
          on_stop: Optional[Callable[[], None]] = None) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting, let workers finish briefly, call on_stop."""
    server = create_server(app, host, port, threads)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if on_ready is not None:
        on_ready(server)
    try:
        run_until(server, stopping)
    finally:
        stop(server)
        if on_stop is not None:
            on_stop()
