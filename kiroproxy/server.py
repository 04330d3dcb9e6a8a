"""Waitress on a thread pool, with a clean shutdown on SIGTERM/SIGINT, and the server.json marker
that tells other kiroproxy processes (the `login` command) which server owns a data directory.

The signal handler only sets flags; the serving loop polls in short steps and stops between
them, so no exception is ever raised inside waitress while it holds a lock.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.server import create_server as waitress_server

from .connections import channel_class, fit_file_limit
from .store.jsondb import write_atomic

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
FINAL_WRITE_SECONDS = 3.0  # after the grace: how long open streams get to write their error event
MARKER_FILE = "server.json"


def create_server(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 80,
                  connection_limit: int = 1000, request_timeout: float = 20.0) -> Any:
    """A waitress server bound now (port 0 picks a free port: read .effective_port). Its connections
    are connections.GuardedChannel: a complete request within `request_timeout` seconds, or closed."""
    connection_limit = fit_file_limit(connection_limit, threads)
    server = waitress_server(app, host=host, port=port, threads=threads, ident="kiroproxy",
                             channel_timeout=120, connection_limit=connection_limit,
                             clear_untrusted_proxy_headers=True,
                             # Keep reading the client socket during a request, so a client that
                             # hangs up mid-stream is noticed and its upstream connection cut.
                             channel_request_lookahead=1)
    channel = channel_class(request_timeout)
    for dispatcher in list(_socket_map(server).values()):
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel
    return server


def _socket_map(server: Any) -> Dict[int, Any]:
    found = getattr(server, "map", None)  # MultiSocketServer
    return found if found is not None else server._map


def _channels(socket_map: Dict[int, Any]) -> List[HTTPChannel]:
    return [d for d in list(socket_map.values()) if isinstance(d, HTTPChannel)]


def _busy(channel: HTTPChannel) -> bool:
    """A request is queued, running, half received, or its answer is not sent yet."""
    return bool(channel.requests or channel.total_outbufs_len or channel.request is not None)


def stop_accepting(server: Any) -> None:
    """Close the listening sockets only. BaseWSGIServer.close() would also close the wake-up pipe
    that worker threads still write to while they finish their answers."""
    for dispatcher in list(_socket_map(server).values()):
        if isinstance(dispatcher, BaseWSGIServer):
            wasyncore.dispatcher.close(dispatcher)


def drain(server: Any, grace: float, cut: Optional[threading.Event] = None) -> int:
    """Stop accepting, then keep serving requests in flight for up to `grace` seconds (or until `cut`
    is set), closing connections as they fall idle. Returns how many were still busy at the end."""
    stop_accepting(server)
    socket_map = _socket_map(server)
    deadline = time.monotonic() + grace
    while True:
        busy = 0
        for channel in _channels(socket_map):
            if _busy(channel):
                busy += 1
            else:
                channel.handle_close()  # idle keep-alive: nothing to wait for
        left = deadline - time.monotonic()
        if not busy or left <= 0 or (cut is not None and cut.is_set()):
            return busy
        server.asyncore.loop(timeout=min(POLL_SECONDS, left), map=socket_map,
                             use_poll=server.adj.asyncore_use_poll, count=1)


def stop(server: Any, timeout: float = 5.0, grace: float = 0.0, cut: Optional[threading.Event] = None,
         on_grace_end: Optional[Callable[[], None]] = None) -> None:
    """Stop accepting; give requests in flight `grace` seconds to finish; then call on_grace_end
    (which makes open streams end with an in-stream error) and give their last bytes up to
    FINAL_WRITE_SECONDS to go out; close what remains; give worker threads `timeout` seconds to
    notice; then close the server itself."""
    busy = drain(server, grace, cut)
    if busy and on_grace_end is not None:
        log.warning("shutdown grace over: ending %d request(s) in flight with an error", busy)
        on_grace_end()
        busy = drain(server, FINAL_WRITE_SECONDS)
    if busy:
        log.warning("closing %d connection(s) with a request still in flight", busy)
    for channel in _channels(_socket_map(server)):
        channel.handle_close()  # wakes a worker blocked on a full buffer; its next write fails
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
    server.close()


def run_until(server: Any, stopping: threading.Event) -> None:
    socket_map = _socket_map(server)
    while not stopping.is_set() and socket_map:
        server.asyncore.loop(timeout=POLL_SECONDS, map=socket_map, use_poll=server.adj.asyncore_use_poll,
                             count=1)


class LateApp:
    """A WSGI app given after the socket is bound, so nothing (an admin key) is spent on a start
    that fails to bind. Waitress calls it only once the serving loop runs."""

    def __init__(self) -> None:
        self.app: Optional[Callable[..., Any]] = None

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "the app is set before serving starts"
        return self.app(environ, start_response)


def serve(app: Any, host: str, port: int, options: Dict[str, Any],
          on_ready: Optional[Callable[[Any], None]] = None, on_stop: Optional[Callable[[], None]] = None,
          grace: float = 0.0, on_grace_end: Optional[Callable[[], None]] = None) -> None:
    """Bind, then serve_bound(). `options` are create_server()'s (connections.options(settings))."""
    serve_bound(create_server(app, host, port, **options), on_ready, on_stop, grace, on_grace_end)


def serve_bound(server: Any, on_ready: Optional[Callable[[Any], None]] = None,
                on_stop: Optional[Callable[[], None]] = None, grace: float = 0.0,
                on_grace_end: Optional[Callable[[], None]] = None) -> None:
    """Run until SIGTERM/SIGINT; then stop accepting, give requests in flight `grace` seconds (a
    second signal cuts that short), end the rest (on_grace_end, see stop()), and call on_stop."""
    stopping = threading.Event()
    cut = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        (cut if stopping.is_set() else stopping).set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if on_ready is not None:
        on_ready(server)
    try:
        run_until(server, stopping)
        in_flight = sum(_busy(c) for c in _channels(_socket_map(server)))
        log.info("shutting down: no longer accepting; %d request(s) in flight get up to %.1f s",
                 in_flight, grace)
    finally:
        stop(server, grace=grace, cut=cut, on_grace_end=on_grace_end)
        if on_stop is not None:
            on_stop()


@dataclass(frozen=True)
class Marker:
    """A running server's claim on its data directory (server.json). `process_start` is the
    kernel's start time of `pid` where /proc has it, so a reused pid is not taken for the server."""

    pid: int
    host: str
    port: int
    started_at: float
    process_start: str = ""

    @property
    def url(self) -> str:
        return local_url(self.host, self.port)


def local_url(host: str, port: int) -> str:
    """The URL that reaches a server listening on host:port from this machine (IPv6 bracketed)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def process_start(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot (Linux /proc); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # the command name before ")" may hold spaces
    return fields[19] if len(fields) > 19 else ""


def is_alive(marker: Marker) -> bool:
    """Whether the process that wrote `marker` still runs. Our own pid is a previous incarnation
    (a restarted container reuses pid 1)."""
    if marker.pid <= 0 or marker.pid == os.getpid():
        return False
    if os.name == "nt":
        return True  # no harmless signal-0 probe there: trust the marker, the port probe decides
    try:
        os.kill(marker.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    started = process_start(marker.pid)
    return not (marker.process_start and started and started != marker.process_start)


def read_marker(home: Path) -> Optional[Marker]:
    """The marker in `home` as written, alive or not; None when there is none or it is unreadable."""
    try:
        data = json.loads((home / MARKER_FILE).read_text(encoding="utf-8"))
        return Marker(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]),
                      started_at=float(data["started_at"]), process_start=str(data.get("process_start") or ""))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", home / MARKER_FILE, type(exc).__name__)
        return None


def owner(home: Path) -> Optional[Marker]:
    """The live server that owns `home`, or None (no marker, or a stale one left by a crash)."""
    marker = read_marker(home)
    return marker if marker is not None and is_alive(marker) else None


def claim(home: Path, host: str, port: int) -> Marker:
    """Write this process's marker (atomically, 0600), replacing a stale one."""
    marker = Marker(os.getpid(), host, port, time.time(), process_start(os.getpid()))
    write_atomic(home / MARKER_FILE, json.dumps(asdict(marker)).encode("utf-8"), 0o600)
    return marker


def release(home: Path) -> None:
    """Remove the marker if it is still this process's (a later server may have replaced it)."""
    marker = read_marker(home)
    if marker is not None and marker.pid == os.getpid():
        try:
            (home / MARKER_FILE).unlink()
        except FileNotFoundError:
            pass
