"""Waitress on a thread pool, with a clean shutdown on SIGTERM/SIGINT (state flushed to disk)."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Optional

from waitress.server import create_server as waitress_server

log = logging.getLogger(__name__)


def create_server(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 32) -> Any:
    """A waitress server bound now (port 0 picks a free port: read .effective_port)."""
    return waitress_server(app, host=host, port=port, threads=threads, ident="kiroproxy",
                           channel_timeout=600, connection_limit=max(100, threads * 4),
                           clear_untrusted_proxy_headers=True,
                           # Keep reading the client socket during a request, so a client that
                           # hangs up mid-stream is noticed and its upstream connection cut.
                           channel_request_lookahead=1)


def stop(server: Any, timeout: float = 5.0) -> None:
    """Stop accepting, close open connections, and give worker threads `timeout` to finish."""
    server.close()
    for channel in list(getattr(server, "_map", {}).values()):
        try:
            channel.close()
        except OSError:
            pass
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)


class _Stop(Exception):
    pass


def serve(app: Any, host: str, port: int, threads: int, on_ready: Optional[Callable[[Any], None]] = None,
          on_stop: Optional[Callable[[], None]] = None) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting, let workers finish briefly, call on_stop."""
    server = create_server(app, host, port, threads)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        raise _Stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if on_ready is not None:
        on_ready(server)
    try:
        server.run()
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        stop(server)
        if on_stop is not None:
            on_stop()
