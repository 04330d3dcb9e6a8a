"""Load clients of the streaming benchmark: plain http.client, so the client costs little CPU.

A Call says what to send and how to recognise the first text byte and a complete answer; the
same light reader serves the fake read directly and the proxy's Anthropic and OpenAI paths.
"""
from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from stream_processes import SHORT_MARK, chunk_text

TAIL = 4096  # bytes kept to find the end markers; the last text chunk is well inside


@dataclass(frozen=True)
class Call:
    path: str
    body: bytes
    headers: Dict[str, str]
    first: bytes            # present in the first piece that carries answer text
    ends: Tuple[bytes, ...]  # all present near the end of a complete answer


@dataclass(frozen=True)
class Sample:
    ttfb: Optional[float]  # seconds to the first answer text; None if there was none
    total: float
    ok: bool


def _json(document: dict) -> bytes:
    return json.dumps(document).encode()


def direct_call(chunks: int, stream: bool = True) -> Call:
    """The fake's answer read directly: the limit the proxy is measured against."""
    text = chunk_text(chunks - 1) if stream else "ok"
    return Call("/generateAssistantResponse", _json({"bench": "stream" if stream else SHORT_MARK}),
                {"Authorization": "Bearer bench-acc", "Content-Type": "application/json"},
                b"assistantResponseEvent", (text.encode(), b"contextUsageEvent"))


def anthropic_call(chunks: int, stream: bool = True) -> Call:
    text = "benchmark" if stream else SHORT_MARK
    body = {"model": "claude-sonnet-4.5", "max_tokens": 4096, "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    first, ends = ((b"text_delta", (chunk_text(chunks - 1).encode(), b"message_stop")) if stream
                   else (b'"ok"', (b'"ok"',)))
    return Call("/v1/messages", _json(body), {"x-api-key": "bench", "anthropic-version": "2023-06-01",
                                              "Content-Type": "application/json"}, first, ends)


def openai_call(chunks: int, stream: bool = True) -> Call:
    text = "benchmark" if stream else SHORT_MARK
    body = {"model": "claude-sonnet-4.5", "max_tokens": 4096, "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    first, ends = ((b'"content":"chunk', (chunk_text(chunks - 1).encode(), b"[DONE]")) if stream
                   else (b'"ok"', (b'"ok"',)))
    return Call("/v1/chat/completions", _json(body), {"Authorization": "Bearer bench",
                                                      "Content-Type": "application/json"}, first, ends)


def floor_call(call: Call, chunks: int) -> Call:
    """`call` sent to the streaming floor (bench/floor_stream_app.py), which passes the fake's
    bytes through: the answer is recognised as a direct read's."""
    direct = direct_call(chunks)
    return Call(call.path, call.body, call.headers, direct.first, direct.ends)


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def read(url: str, call: Call, conn: Optional[http.client.HTTPConnection] = None,
         warm: float = 0.0) -> Sample:
    """One request; timed from sending it (a new connection's connect included).

    With `warm` seconds, the connection is opened that long before the clock starts (a reader
    on a warm connection). A passed `conn` is kept open for the next call."""
    own = conn is None
    conn = conn or _connection(url)
    if warm:
        conn.connect()
        time.sleep(warm)
    start = time.perf_counter()
    first: Optional[float] = None
    tail = b""
    try:
        conn.request("POST", call.path, body=call.body, headers=call.headers)
        response = conn.getresponse()
        while True:
            data = response.read1(65536)
            if not data:
                break
            tail = (tail + data)[-TAIL:]
            if first is None and call.first in tail:
                first = time.perf_counter() - start
        response.read()  # marks the response closed (read1 alone leaves a sized body open)
        ok = response.status == 200 and all(end in tail for end in call.ends)
    except (OSError, http.client.HTTPException):
        ok = False
        conn.close()
    finally:
        if own:
            conn.close()
    return Sample(first, time.perf_counter() - start, ok and first is not None)


def concurrent(url: str, call: Call, count: int) -> List[Sample]:
    """`count` streams started together."""
    barrier = threading.Barrier(count)

    def one(_: int) -> Sample:
        barrier.wait()
        return read(url, call)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def rate(url: str, call: Call, count: int, workers: int) -> Tuple[float, int]:
    """(requests per second, failures) for `count` calls over `workers` kept-alive connections."""
    local = threading.local()

    def one(_: int) -> bool:
        if getattr(local, "conn", None) is None:
            local.conn = _connection(url)
        sample = read(url, call, conn=local.conn)
        if not sample.ok:
            local.conn.close()
            local.conn = None
        return sample.ok

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(count)))
    return count / (time.perf_counter() - start), results.count(False)


def median_ms(values: List[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) * 1000 if present else None

