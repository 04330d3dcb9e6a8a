"""AWS binary event-stream framing: an incremental decoder and an encoder.

Sans-IO: feed bytes in any split, get CRC-checked frames out. No sockets, no threads.
"""
from __future__ import annotations

import datetime
import json
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Union

PRELUDE_LEN = 12  # total_length, headers_length, prelude_crc
_PRELUDE = struct.Struct(">III")
_CRC = struct.Struct(">I")
_KNOWN_HEADERS = 32  # distinct header blocks a decoder remembers parsed
MIN_FRAME = 16    # prelude + message crc
DEFAULT_MAX_FRAME = 16 * 2**20
# Timestamps travel as integer milliseconds; exact timedelta arithmetic avoids the float
# rounding of timestamp()/fromtimestamp(), which shifts about 1 value in 200 by a millisecond.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MILLISECOND = datetime.timedelta(milliseconds=1)

HeaderValue = Union[bool, int, bytes, str, datetime.datetime, uuid.UUID]


class DecodeError(ValueError):
    """The byte stream is not a valid event stream; the connection cannot be trusted after it."""


class CrcError(DecodeError):
    pass


class FrameLengthError(DecodeError):
    pass


class HeaderError(DecodeError):
    pass


@dataclass(frozen=True)
class Frame:
    headers: Dict[str, HeaderValue]  # read-only: frames of one decoder may share it
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str:
        return str(self.headers.get(":event-type", ""))

    @property
    def exception_type(self) -> str:
        return str(self.headers.get(":exception-type") or self.headers.get(":error-code") or "")

    def json(self) -> object:
        """The payload parsed as JSON ({} when empty). Raises DecodeError on invalid JSON."""
        payload = self.payload
        try:
            if payload[:1] == b"{":  # UTF-8, as Kiro sends it: skip json's encoding detection
                return json.loads(payload.decode("utf-8", "surrogatepass"))
            if not payload.strip():
                return {}
            return json.loads(payload)
        except ValueError as exc:
            raise DecodeError(f"frame payload is not JSON: {exc}") from None


class Decoder:
    """Incremental decoder. `feed(chunk)` returns every frame completed by the chunk.

    After a DecodeError the stream cannot be trusted: every later feed() and finish() raises it.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._error: Optional[DecodeError] = None
        # Parsed header blocks by their bytes: a stream repeats a handful of them (every text
        # frame carries the same three headers). Frames with equal headers share one dict.
        self._headers: Dict[bytes, Dict[str, HeaderValue]] = {}

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> List[Frame]:
        """The frames `chunk` completes, in order. Raises DecodeError on a corrupt frame; when good
        frames came before it in the same call they are returned, and the next call raises."""
        if self._error is not None:
            raise self._error
        self._buffer += chunk
        frames: List[Frame] = []
        try:
            frame = self._take()
            while frame is not None:
                frames.append(frame)
                frame = self._take()
        except DecodeError as exc:
            self._error = exc
            if not frames:
                raise
        return frames

    def finish(self) -> None:
        """Call when the byte stream ends: raises the DecodeError feed() held back, if any."""
        if self._error is not None:
            raise self._error

    def _take(self) -> Optional[Frame]:
        """The next whole frame off the buffer, or None until more bytes arrive."""
        if len(self._buffer) < PRELUDE_LEN:
            return None
        total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buffer, 0)
        if zlib.crc32(self._buffer[:8]) != prelude_crc:
            raise CrcError("event-stream prelude CRC mismatch")
        if total < MIN_FRAME or total > self.max_frame:
            raise FrameLengthError(f"event-stream frame length {total} out of range")
        if headers_len > total - MIN_FRAME:
            raise FrameLengthError(f"event-stream headers length {headers_len} exceeds frame")
        if len(self._buffer) < total:
            return None
        frame = bytes(self._buffer[:total])
        (message_crc,) = _CRC.unpack_from(frame, total - 4)
        with memoryview(frame) as view:
            crc = zlib.crc32(view[:-4])
        if crc != message_crc:
            raise CrcError("event-stream message CRC mismatch")
        raw_headers = frame[PRELUDE_LEN:PRELUDE_LEN + headers_len]
        headers = self._headers.get(raw_headers)
        if headers is None:
            headers = _parse_headers(raw_headers)
            if len(self._headers) < _KNOWN_HEADERS:
                self._headers[raw_headers] = headers
        # Only a good frame leaves the buffer: a bad one stays counted in `pending`, so a caller
        # that only checks `pending` at the end of the stream still sees that it did not end cleanly.
        del self._buffer[:total]
        return Frame(headers, frame[PRELUDE_LEN + headers_len:-4])


def _parse_headers(data: bytes) -> Dict[str, HeaderValue]:
    headers: Dict[str, HeaderValue] = {}
    pos = 0
    try:
        while pos < len(data):
            name_len = data[pos]
            name = data[pos + 1:pos + 1 + name_len].decode("utf-8")
            pos += 1 + name_len
            kind = data[pos]
            pos += 1
            value, pos = _parse_value(kind, data, pos)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        raise HeaderError(f"malformed event-stream header: {exc}") from None
    if pos != len(data):
        raise HeaderError("event-stream headers overrun their declared length")
    return headers


_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q"}


def _parse_value(kind: int, data: bytes, pos: int):
    if kind == 0:
        return True, pos
    if kind == 1:
        return False, pos
    if kind in _FIXED:
        fmt = _FIXED[kind]
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise IndexError("truncated integer header")
        return struct.unpack_from(fmt, data, pos)[0], pos + size
    if kind in (6, 7):
        (length,) = struct.unpack_from(">H", data, pos)
        raw = data[pos + 2:pos + 2 + length]
        if len(raw) != length:
            raise IndexError("truncated string header")
        return (raw.decode("utf-8") if kind == 7 else bytes(raw)), pos + 2 + length
    if kind == 8:
        (millis,) = struct.unpack_from(">q", data, pos)
        return _EPOCH + millis * _MILLISECOND, pos + 8
    if kind == 9:
        raw = data[pos:pos + 16]
        if len(raw) != 16:
            raise IndexError("truncated uuid header")
        return uuid.UUID(bytes=bytes(raw)), pos + 16
    raise HeaderError(f"unknown event-stream header type {kind}")


def encode(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """Build one frame. Strings are written as type 7, bytes as 6, bools as 0/1, ints as int32/64."""
    head = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = MIN_FRAME + len(head) + len(payload)
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    out = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return out + struct.pack(">B", 0 if value else 1)
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return out + struct.pack(">Bi", 4, value)
        return out + struct.pack(">Bq", 5, value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return out + struct.pack(">BH", 7, len(data)) + data
    if isinstance(value, bytes):
        return out + struct.pack(">BH", 6, len(value)) + value
    if isinstance(value, datetime.datetime):
        # A naive datetime is taken as UTC so the bytes never depend on the host's time zone.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)
        return out + struct.pack(">Bq", 8, (aware - _EPOCH) // _MILLISECOND)
    if isinstance(value, uuid.UUID):
        return out + struct.pack(">B", 9) + value.bytes
    raise TypeError(f"cannot encode event-stream header of type {type(value).__name__}")


def event(event_type: str, payload: object) -> bytes:
    """Encode a JSON `event` frame the way Kiro sends them."""
    return encode({":event-type": event_type, ":content-type": "application/json",
                   ":message-type": "event"}, _compact_json(payload))


def exception(exception_type: str, message: str) -> bytes:
    """Encode an `exception` frame the way Kiro sends them."""
    return encode({":exception-type": exception_type, ":content-type": "application/json",
                   ":message-type": "exception"}, _compact_json({"message": message}))


def _compact_json(payload: object) -> bytes:
    # Kiro writes compact JSON (`{"content":"Hi"}`); the spec's golden frames depend on it.
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
