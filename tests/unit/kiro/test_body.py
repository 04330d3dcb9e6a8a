"""kiro.body: the sans-IO Dechunker (every split point, trailers, malformed coding) and
iter_body over a real loopback response (chunks that arrived together come out in one read)."""
from __future__ import annotations

import socket
import threading
from typing import Iterator, List

import pytest
import requests
from urllib3.exceptions import ProtocolError

from kiroproxy.kiro.body import Dechunker, iter_body

PAYLOADS = [b"hello", b"", b" chunked", b"x" * 300]
BODY = b"5\r\nhello\r\n8;ext=1\r\n chunked\r\n12C\r\n" + b"x" * 300 + b"\r\n0\r\nTrailer: t\r\n\r\n"
WHOLE = b"hello chunked" + b"x" * 300


def decode(pieces: List[bytes]) -> bytes:
    dechunker = Dechunker()
    out = b"".join(dechunker.feed(piece) for piece in pieces)
    assert dechunker.done
    return out


def test_every_split_point_of_a_body_gives_the_same_payload():
    for cut in range(len(BODY) + 1):
        assert decode([BODY[:cut], BODY[cut:]]) == WHOLE, cut


def test_byte_by_byte():
    assert decode([BODY[i:i + 1] for i in range(len(BODY))]) == WHOLE


def test_nothing_after_the_last_chunk_is_read_as_payload():
    dechunker = Dechunker()
    assert dechunker.feed(b"2\r\nab\r\n0\r\n\r\nGARBAGE") == b"ab"
    assert dechunker.done


def test_not_done_until_the_trailers_end():
    dechunker = Dechunker()
    assert dechunker.feed(b"2\r\nab\r\n0\r\n") == b"ab"
    assert not dechunker.done
    dechunker.feed(b"\r\n")
    assert dechunker.done


@pytest.mark.parametrize("body", [b"zz\r\nab\r\n", b"2\r\nabXY", b"-1\r\n", b"1" * 5000])
def test_a_malformed_coding_raises(body):
    with pytest.raises(ProtocolError):
        Dechunker().feed(body)


def serve_once(raw: bytes, release: threading.Event) -> Iterator[str]:
    """A loopback server answering one request with `raw` head+body bytes, then closing once
    `release` is set."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(raw)
            release.wait(5)
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    release.set()
    thread.join(5)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_iter_body_gives_chunks_that_arrived_together_in_one_read():
    release = threading.Event()
    for url in serve_once(HEAD + BODY, release):
        release.set()  # the server sent everything and closes: all of it is there for one read
        with requests.get(url, stream=True, timeout=5) as response:
            reads = list(iter_body(response))
    assert b"".join(reads) == WHOLE
    assert len(reads) == 1


def test_iter_body_raises_when_a_chunked_body_ends_early():
    release = threading.Event()
    for url in serve_once(HEAD + b"5\r\nhel", release):
        release.set()
        with requests.get(url, stream=True, timeout=5) as response:
            with pytest.raises(ProtocolError):
                list(iter_body(response))
