"""Sessions.post: the chat call's short path through requests puts the same bytes on the wire as
session.post, keeps cookies, follows redirects, and keeps TLS verification and proxies.

A loopback server records each raw request and answers from a script."""
from __future__ import annotations

import socket
import threading
from typing import Callable, Iterator, List

import pytest
from requests.adapters import HTTPAdapter

from kiroproxy.kiro.transport import Sessions
from kiroproxy.kiro.warm import WarmConnections

HEADERS = {"Authorization": "Bearer tok", "Content-Type": "application/json", "Accept": "*/*",
           "user-agent": "aws-sdk-js/1.0.34 KiroIDE", "amz-sdk-request": "attempt=1; max=3", "Connection": "close"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Recorder:
    """Answers each connection with the next scripted reply and records what it received."""

    def __init__(self, replies: List[bytes]) -> None:
        self.replies = list(replies)
        self.received: List[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            conn, _ = self.sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.received.append(head + b"\r\n\r\n" + body)
                conn.sendall(self.replies.pop(0))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    made: List[Recorder] = []

    def make(*replies: bytes) -> Recorder:
        made.append(Recorder(list(replies)))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("warm", [False, True])
def test_the_short_path_sends_what_session_post_sends(recorder, warm):
    server = recorder(OK, OK)
    sessions = Sessions(warm=WarmConnections(enabled=False) if warm else None)
    session = sessions.get()
    url = server.url + "/generateAssistantResponse"
    with sessions.ahead():
        expected = session.post(url, data=b'{"a":1}', headers=HEADERS, stream=True, timeout=(5, 5))
        got = sessions.post(session, url, data=b'{"a":1}', headers=HEADERS, timeout=(5, 5))
    assert expected.status_code == got.status_code == 200 and got.raw.read() == b"ok"
    assert server.received[0] == server.received[1]
    assert b"Accept-Encoding: " in server.received[1]  # the session's defaults are merged in
    sessions.close()


def test_cookies_are_kept_and_sent_like_session_post(recorder):
    set_cookie = (b"HTTP/1.1 200 OK\r\nSet-Cookie: AWSALB=abc; Path=/\r\nContent-Length: 2\r\n"
                  b"Connection: close\r\n\r\nok")
    server = recorder(set_cookie, OK)
    sessions = Sessions()
    session = sessions.get()
    url = server.url + "/generateAssistantResponse"
    sessions.post(session, url, data=b"{}", headers=HEADERS, timeout=(5, 5)).close()
    assert session.cookies.get("AWSALB") == "abc"
    sessions.post(session, url, data=b"{}", headers=HEADERS, timeout=(5, 5)).close()
    assert b"Cookie: AWSALB=abc" in server.received[1]


def test_a_redirect_is_followed_as_requests_would(recorder):
    target = recorder(OK)
    moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.url}/there\r\nContent-Length: 0\r\n\r\n"
    server = recorder(moved.encode(), moved.encode())
    sessions = Sessions()
    response = sessions.post(sessions.get(), server.url + "/here", data=b"{}", headers=HEADERS, timeout=(5, 5))
    assert response.status_code == 200 and response.url == target.url + "/there"
    assert target.received[0].startswith(b"POST /there ")


def test_credentials_in_the_url_take_requests_own_path(recorder):
    server = recorder(OK)
    sessions = Sessions()
    url = server.url.replace("http://", "http://user:pw@") + "/x"
    sessions.post(sessions.get(), url, data=b"{}", headers={"Content-Type": "application/json"},
                  timeout=(5, 5)).close()
    assert b"Authorization: Basic dXNlcjpwdw==" in server.received[0]


def test_the_outbound_proxy_carries_the_request(recorder):
    proxy = recorder(OK)
    sessions = Sessions(default_proxy=proxy.url)
    response = sessions.post(sessions.get(), "http://kiro.invalid/generateAssistantResponse", data=b"{}",
                             headers=HEADERS, timeout=(5, 5))
    assert response.status_code == 200
    assert proxy.received[0].startswith(b"POST http://kiro.invalid/generateAssistantResponse ")


class RecordingAdapter(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.calls: List[dict] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.calls.append(kwargs)
        return super().send(request, **kwargs)


def test_the_adapter_gets_the_same_tls_proxy_and_timeout_settings(recorder):
    server = recorder(OK, OK)
    sessions = Sessions(default_proxy=server.url)
    session = sessions.get()
    adapter = RecordingAdapter()
    session.mount("http://", adapter)
    url = "http://kiro.invalid/generateAssistantResponse"
    session.post(url, data=b"{}", headers=HEADERS, stream=True, timeout=(3, 4)).close()
    sessions.post(session, url, data=b"{}", headers=HEADERS, timeout=(3, 4)).close()
    expected, got = adapter.calls
    assert got == expected
    assert got["verify"] is True and got["proxies"] == {"http": server.url, "https": server.url}
