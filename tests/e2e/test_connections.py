"""Sockets that cannot starve the server: idle and trickling connections are closed, a few hundred
idle sockets leave requests answered, a request with both Content-Length and Transfer-Encoding is
a 400 that closes the connection, and long streams with keep-alives are not cut."""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack
from typing import List

import requests

from tests import factories
from tests.fakes.scripts import Script

from .conftest import wait_for


def connect(proxy) -> socket.socket:
    host, port = proxy.url.rsplit("/", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server closes `sock` (recv reads EOF or a reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails the test at the deadline)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; received {received[:300]!r}")


def test_200_idle_sockets_leave_requests_answered_at_once(proxy):
    with ExitStack() as stack:
        idle: List[socket.socket] = [stack.enter_context(connect(proxy)) for _ in range(200)]
        models = proxy.http.get(proxy.url + "/v1/models", timeout=5)
        assert models.status_code == 200
        status = proxy.admin("GET", "/status")
        assert status.status_code == 200
        assert len(idle) == 200


def test_a_silent_connection_is_closed_after_the_request_timeout(make_proxy):
    proxy = make_proxy(request_timeout_seconds=0.5)
    with connect(proxy) as silent:
        assert closed_by_server(silent, timeout=10)


def test_a_trickling_request_is_closed_although_bytes_keep_coming(make_proxy):
    proxy = make_proxy(request_timeout_seconds=1)
    with connect(proxy) as trickle:
        trickle.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + 15
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")  # never the blank line that ends the headers
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = closed_by_server(trickle, timeout=0.2)
        assert closed, "a connection sending a header line every 0.2 s was never closed"


def test_keep_alive_connections_serve_requests_before_the_timeout(make_proxy):
    proxy = make_proxy(request_timeout_seconds=2)
    session = requests.Session()
    session.trust_env = False
    for _ in range(3):  # the same pooled connection, a request right after the previous answer
        assert session.get(proxy.url + "/v1/models", timeout=5).status_code == 200
    session.close()


def test_a_long_stream_with_keep_alives_outlives_the_request_timeout(make_proxy, fake):
    proxy = make_proxy(request_timeout_seconds=0.5, keepalive_seconds=0.2)
    proxy.add_account("acc-A")
    fake.queue(Script().text("first").gate("g").text(" second").context_usage())
    body = factories.anthropic_body(stream=True)
    with proxy.http.post(proxy.url + "/v1/messages", json=body, stream=True, timeout=30,
                         headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as response:
        assert response.status_code == 200
        assert fake.wait_gate("g", 5)
        with connect(proxy) as silent:  # proves the timeout passed while the stream was held
            assert closed_by_server(silent, timeout=10)
        fake.release("g")
        text = b"".join(response.iter_content(None)).decode()
    assert "second" in text and "message_stop" in text


def test_content_length_with_transfer_encoding_is_400_and_the_connection_closes(proxy):
    body = json.dumps({"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "x"}]}).encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    hidden = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    head = (f"POST /v1/messages/count_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"x-api-key: k\r\nContent-Length: {len(chunked)}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with connect(proxy) as sock:
        sock.sendall(head + chunked + hidden)
        received = read_all(sock)
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, "the request hidden behind the body was served"


def test_http_1_0_with_both_framing_headers_is_400(proxy):
    with connect(proxy) as sock:
        sock.sendall(b"POST /v1/messages/count_tokens HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{}")
        received = read_all(sock)
    assert received.startswith(b"HTTP/1.0 400 ") or received.startswith(b"HTTP/1.1 400 "), received[:200]


def test_many_concurrent_connections_are_all_answered(proxy):
    """300 connections at once (beyond the old limit of 100): each gets its answer."""
    results: List[int] = []
    lock = threading.Lock()

    def one(sock: socket.socket) -> None:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = read_all(sock)[:12]
        with lock:
            results.append(int(status.split()[1]))

    with ExitStack() as stack:
        socks = [stack.enter_context(connect(proxy)) for _ in range(300)]
        workers = [threading.Thread(target=one, args=(s,)) for s in socks]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    wait_for(lambda: len(results) == 300, timeout=5)
    assert set(results) == {200}
