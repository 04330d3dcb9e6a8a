"""A streaming HTTP response body, read as it arrives: every byte already received in one read.

http.client takes a chunked body apart one chunk per call, and Kiro sends one event-stream frame
per chunk, so each frame cost a round of reads and a hand-off. Here the chunked coding is
removed by a sans-IO Dechunker over whatever one read of the socket buffer returns, so frames
that arrived together are decoded (and handed on) together. Nothing waits for more bytes than
one read brings. Bodies this does not expect (content-coded, not chunked, a mocked response)
are read through urllib3 as before.
"""
from __future__ import annotations

import http.client
from typing import Iterator, List

import requests
from urllib3.exceptions import ProtocolError

MAX_LINE = 4096  # a chunk-size or trailer line; anything longer is not HTTP


class Dechunker:
    """Feed raw chunked-coded bytes in any split; get the payload bytes out. Raises ProtocolError
    on a malformed coding. `done` once the last (zero-size) chunk and its trailers are in."""

    def __init__(self) -> None:
        self._pending = b""  # an incomplete size line or CRLF from the previous feed
        self._left = 0  # payload bytes still to come in the current chunk
        self._after_data = False  # the CRLF after a chunk's payload is due
        self._trailers = False  # after the zero-size chunk: trailer lines up to an empty one
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: List[bytes] = []
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._left:
                take = min(self._left, end - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._left -= take
                self._after_data = not self._left
            elif self._after_data:
                if end - pos < 2:
                    self._pending = data[pos:]
                    break
                if data[pos:pos + 2] != b"\r\n":
                    raise ProtocolError("chunked body: a chunk does not end with CRLF")
                pos += 2
                self._after_data = False
            else:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    if end - pos > MAX_LINE:
                        raise ProtocolError("chunked body: line too long")
                    self._pending = data[pos:]
                    break
                self._line(data[pos:line_end])
                pos = line_end + 2
        return b"".join(out)

    def _line(self, line: bytes) -> None:
        if self._trailers:
            self.done = not line
            return
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("chunked body: invalid chunk size") from None
        if size < 0:
            raise ProtocolError("chunked body: invalid chunk size")
        self._left = size
        self._trailers = size == 0


def iter_body(response: requests.Response, size: int = 65536) -> Iterator[bytes]:
    """Yield body bytes as soon as they arrive (one socket read each). Raises urllib3's
    ProtocolError when a chunked body ends early or is malformed, OSError on network failures."""
    raw = response.raw
    message = getattr(raw, "_fp", None)
    reader = getattr(message, "fp", None)
    if (isinstance(message, http.client.HTTPResponse) and message.chunked and message.chunk_left is None
            and reader is not None and hasattr(reader, "read1")
            and response.headers.get("Content-Encoding", "identity").lower() == "identity"):
        yield from _dechunked(reader, size)
        return
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.x: fall back to the http.client response underneath
        read1 = getattr(message, "read1", None)
    if read1 is None:
        yield from response.iter_content(chunk_size=1024)
        return
    # requests' iter_content blocks until `size` bytes (or EOF) on close-delimited bodies, which
    # would buffer a stream; read1 returns whatever is available.
    while True:
        chunk = read1(size)
        if not chunk:
            return
        yield chunk


def _dechunked(reader, size: int) -> Iterator[bytes]:
    dechunker = Dechunker()
    while not dechunker.done:
        data = reader.read1(size)  # what is buffered, else one read of the socket
        if not data:
            raise ProtocolError("Response ended prematurely")
        payload = dechunker.feed(data)
        if payload:
            yield payload
