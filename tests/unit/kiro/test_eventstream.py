"""Tests of the AWS event-stream decoder and encoder against golden bytes from the upstream spec.

Golden frames are written out as hex here (never produced by the encoder under test).
"""
from __future__ import annotations

import datetime
import struct
import uuid
import zlib

import pytest

from kiroproxy.kiro import eventstream
from kiroproxy.kiro.eventstream import CrcError, DecodeError, Decoder, Frame, FrameLengthError, HeaderError

# kiro-upstream.md §6.2: assistantResponseEvent with payload {"content":"Hi"}.
HI_HEX = (
    "0000007c0000005c3bddcf780b3a6576656e742d74797065070016617373697374616e74526573706f6e736545"
    "76656e740d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167"
    "652d747970650700056576656e747b22636f6e74656e74223a224869227db02babdc"
)
HI_FRAME = bytes.fromhex(HI_HEX)
HI_HEADERS = {
    ":event-type": "assistantResponseEvent",
    ":content-type": "application/json",
    ":message-type": "event",
}
THROTTLE_HEADERS = {
    ":exception-type": "ThrottlingException",
    ":content-type": "application/json",
    ":message-type": "exception",
}
THROTTLE_PAYLOAD = b'{"message":"slow down"}'


def frame_bytes(header_block: bytes, payload: bytes, *, total: int | None = None,
                headers_len: int | None = None, prelude_crc: int | None = None,
                message_crc: int | None = None) -> bytes:
    """Assemble a frame by hand (independently of eventstream.encode); any field can be forged."""
    total = 16 + len(header_block) + len(payload) if total is None else total
    headers_len = len(header_block) if headers_len is None else headers_len
    prelude = struct.pack(">II", total, headers_len)
    crc = zlib.crc32(prelude) if prelude_crc is None else prelude_crc
    body = prelude + struct.pack(">I", crc) + header_block + payload
    crc = zlib.crc32(body) if message_crc is None else message_crc
    return body + struct.pack(">I", crc)


def header(name: str, kind: int, value: bytes = b"") -> bytes:
    raw = name.encode()
    return bytes([len(raw)]) + raw + bytes([kind]) + value


def string_header(name: str, value: str) -> bytes:
    raw = value.encode()
    return header(name, 7, struct.pack(">H", len(raw)) + raw)


def test_spec_example_decodes():
    frames = Decoder().feed(HI_FRAME)

    assert frames == [Frame(HI_HEADERS, b'{"content":"Hi"}')]
    assert frames[0].message_type == "event"
    assert frames[0].event_type == "assistantResponseEvent"
    assert frames[0].exception_type == ""
    assert frames[0].json() == {"content": "Hi"}


def test_spec_example_layout_matches_the_documented_offsets():
    assert len(HI_FRAME) == 124
    assert HI_FRAME[:12] == bytes.fromhex("0000007c0000005c3bddcf78")
    assert HI_FRAME[104:120] == b'{"content":"Hi"}'
    assert HI_FRAME[-4:] == bytes.fromhex("b02babdc")


def test_encode_reproduces_spec_example_exactly():
    assert eventstream.encode(HI_HEADERS, b'{"content":"Hi"}') == HI_FRAME


def test_event_helper_writes_compact_json_like_kiro():
    assert eventstream.event("assistantResponseEvent", {"content": "Hi"}) == HI_FRAME


def test_spec_exception_example():
    raw = eventstream.encode(THROTTLE_HEADERS, THROTTLE_PAYLOAD)

    assert len(raw) == 136
    assert raw[8:12] == bytes.fromhex("de0175f4")
    assert raw[-4:] == bytes.fromhex("5b4bbb49")
    assert eventstream.exception("ThrottlingException", "slow down") == raw
    (frame,) = Decoder().feed(raw)
    assert frame.message_type == "exception"
    assert frame.exception_type == "ThrottlingException"
    assert frame.event_type == ""
    assert frame.json() == {"message": "slow down"}


def test_hand_built_exception_frame_matches_documented_crcs():
    block = b"".join(string_header(name, value) for name, value in THROTTLE_HEADERS.items())
    raw = frame_bytes(block, THROTTLE_PAYLOAD)

    assert (len(raw), raw[8:12].hex(), raw[-4:].hex()) == (136, "de0175f4", "5b4bbb49")
    assert Decoder().feed(raw) == [Frame(THROTTLE_HEADERS, THROTTLE_PAYLOAD)]


def test_generic_error_frame_exposes_error_code():
    block = string_header(":message-type", "error") + string_header(":error-code", "InternalFailure")
    (frame,) = Decoder().feed(frame_bytes(block, b""))

    assert frame.message_type == "error"
    assert frame.exception_type == "InternalFailure"


def test_missing_message_type_defaults_to_event():
    (frame,) = Decoder().feed(frame_bytes(string_header(":event-type", "x"), b"{}"))

    assert frame.message_type == "event"


def test_bad_prelude_crc():
    raw = bytearray(HI_FRAME)
    raw[8] ^= 0xFF

    with pytest.raises(CrcError, match="prelude"):
        Decoder().feed(bytes(raw))


def test_bad_prelude_crc_is_detected_before_the_rest_of_the_frame_arrives():
    raw = bytearray(HI_FRAME)
    raw[11] ^= 0x01
    decoder = Decoder()

    with pytest.raises(CrcError):
        decoder.feed(bytes(raw[:12]))


def test_corrupted_length_fails_the_prelude_crc():
    raw = bytearray(HI_FRAME)
    raw[3] = 0x7B  # total 123 instead of 124, CRC left as it was

    with pytest.raises(CrcError):
        Decoder().feed(bytes(raw))


@pytest.mark.parametrize("offset", [12, 50, 104, 119, 120, 123])
def test_bad_message_crc(offset):
    raw = bytearray(HI_FRAME)
    raw[offset] ^= 0x20

    with pytest.raises(CrcError, match="message"):
        Decoder().feed(bytes(raw))


def test_crc_errors_are_decode_errors():
    assert issubclass(CrcError, DecodeError)
    assert issubclass(FrameLengthError, DecodeError)
    assert issubclass(HeaderError, DecodeError)
    assert issubclass(DecodeError, ValueError)


def test_frame_longer_than_max_frame_is_rejected_from_the_prelude_alone():
    prelude = struct.pack(">II", 1024 + 1, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))

    with pytest.raises(FrameLengthError):
        Decoder(max_frame=1024).feed(prelude)


def test_default_max_frame_is_16_mib():
    prelude = struct.pack(">II", 16 * 2**20 + 1, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))

    with pytest.raises(FrameLengthError):
        Decoder().feed(prelude)


def test_frame_of_exactly_max_frame_is_accepted():
    payload = b"x" * (200 - 16)
    raw = frame_bytes(b"", payload)

    assert Decoder(max_frame=200).feed(raw) == [Frame({}, payload)]


@pytest.mark.parametrize("total", [0, 12, 15])
def test_frame_shorter_than_16_bytes_is_rejected(total):
    raw = frame_bytes(b"", b"", total=total)

    with pytest.raises(FrameLengthError):
        Decoder().feed(raw)


def test_smallest_frame_has_no_headers_and_no_payload():
    raw = frame_bytes(b"", b"")

    assert len(raw) == 16
    assert Decoder().feed(raw) == [Frame({}, b"")]


def test_headers_length_beyond_the_frame_is_rejected():
    block = string_header(":event-type", "x")
    raw = frame_bytes(block, b"{}", headers_len=len(block) + 3)

    with pytest.raises(FrameLengthError, match="headers length"):
        Decoder().feed(raw)


def test_header_value_running_past_the_header_block_is_rejected():
    # The string claims 40 bytes, but the header block (and what follows) is shorter.
    block = header(":event-type", 7, struct.pack(">H", 40) + b"abc")
    raw = frame_bytes(block, b"{}")

    with pytest.raises(HeaderError):
        Decoder().feed(raw)


def test_header_block_cut_inside_a_name_is_rejected():
    raw = frame_bytes(b"\x0a:event", b"")

    with pytest.raises(HeaderError):
        Decoder().feed(raw)


@pytest.mark.parametrize("kind,value", [(2, b""), (3, b"\x01"), (4, b"\x00\x01"), (5, b"\x00" * 7),
                                        (8, b"\x00" * 7), (9, b"\x00" * 15), (6, b"\x00")])
def test_truncated_header_values_are_rejected(kind, value):
    raw = frame_bytes(header("h", kind, value), b"")

    with pytest.raises(HeaderError):
        Decoder().feed(raw)


def test_unknown_header_type_is_rejected():
    raw = frame_bytes(header("h", 10, b"\x00"), b"")

    with pytest.raises(HeaderError, match="type 10"):
        Decoder().feed(raw)


def test_invalid_utf8_header_is_rejected():
    raw = frame_bytes(header("h", 7, b"\x00\x02\xff\xfe"), b"")

    with pytest.raises(HeaderError):
        Decoder().feed(raw)


STAMP = datetime.datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=datetime.timezone.utc)
STAMP_MS = 1767225600123
ID = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")

# (header type, value bytes on the wire, decoded value)
WIRE_VALUES = [
    (0, b"", True),
    (1, b"", False),
    (2, struct.pack(">b", -7), -7),
    (3, struct.pack(">h", -300), -300),
    (4, struct.pack(">i", 2**31 - 1), 2**31 - 1),
    (5, struct.pack(">q", -(2**40)), -(2**40)),
    (6, b"\x00\x03\x00\xffA", b"\x00\xffA"),
    (7, b"\x00\x06caf\xc3\xa9!", "café!"),
    (8, struct.pack(">q", STAMP_MS), STAMP),
    (9, ID.bytes, ID),
]


@pytest.mark.parametrize("kind,wire,expected", WIRE_VALUES, ids=[f"type{w[0]}" for w in WIRE_VALUES])
def test_every_header_type_decodes(kind, wire, expected):
    block = header("h", kind, wire) + string_header("after", "ok")
    (frame,) = Decoder().feed(frame_bytes(block, b"payload"))

    assert frame.headers == {"h": expected, "after": "ok"}
    assert type(frame.headers["h"]) is type(expected)
    assert frame.payload == b"payload"


# Types 2 and 3 are read but never written: the encoder widens small ints to int32.
ENCODED = [w for w in WIRE_VALUES if w[0] not in (2, 3)] + [
    (4, struct.pack(">i", -5), -5),
    (5, struct.pack(">q", 2**31), 2**31),
]


@pytest.mark.parametrize("kind,wire,value", ENCODED, ids=[f"type{w[0]}-{i}" for i, w in enumerate(ENCODED)])
def test_every_written_header_type_encodes_to_the_wire_format(kind, wire, value):
    raw = eventstream.encode({"h": value}, b"p")

    assert raw == frame_bytes(header("h", kind, wire), b"p")
    assert Decoder().feed(raw) == [Frame({"h": value}, b"p")]


def test_all_header_types_round_trip_together():
    headers = {"t": True, "f": False, "i32": -123456, "i64": 2**50, "b": b"\x01\x02", "s": "ünï",
               "ts": STAMP, "id": ID}
    (frame,) = Decoder().feed(eventstream.encode(headers, b"{}"))

    assert frame.headers == headers


@pytest.mark.parametrize("ms", [0, 1, 999, 547641621915, 2178489544595, -544483292614, -1])
def test_timestamps_round_trip_to_the_millisecond(ms):
    stamp = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=ms)
    raw = eventstream.encode({"ts": stamp}, b"")

    assert raw == frame_bytes(header("ts", 8, struct.pack(">q", ms)), b"")
    assert Decoder().feed(raw)[0].headers["ts"] == stamp


def test_naive_timestamp_is_written_as_utc():
    naive = datetime.datetime(2026, 1, 1, 0, 0, 0, 123000)

    assert eventstream.encode({"ts": naive}, b"") == frame_bytes(
        header("ts", 8, struct.pack(">q", STAMP_MS)), b"")


def test_out_of_range_timestamp_is_a_header_error():
    raw = frame_bytes(header("ts", 8, struct.pack(">q", 2**62)), b"")

    with pytest.raises(HeaderError):
        Decoder().feed(raw)


def test_encode_rejects_unknown_value_types():
    with pytest.raises(TypeError):
        eventstream.encode({"x": 1.5}, b"")


def multi_frame_buffer() -> tuple:
    """Four frames of different sizes (hand built) and what they decode to."""
    big = b'{"content":"' + b"z" * 300 + b'"}'
    parts = [
        (string_header(":event-type", "assistantResponseEvent"), b'{"content":"a"}'),
        (b"", b""),
        (string_header(":event-type", "toolUseEvent") + header("n", 4, struct.pack(">i", 7)), big),
        (b"".join(string_header(k, v) for k, v in THROTTLE_HEADERS.items()), THROTTLE_PAYLOAD),
    ]
    raw = b"".join(frame_bytes(block, payload) for block, payload in parts)
    expected = [
        Frame({":event-type": "assistantResponseEvent"}, b'{"content":"a"}'),
        Frame({}, b""),
        Frame({":event-type": "toolUseEvent", "n": 7}, big),
        Frame(THROTTLE_HEADERS, THROTTLE_PAYLOAD),
    ]
    return raw, expected


def test_multi_frame_buffer_in_one_piece():
    raw, expected = multi_frame_buffer()

    decoder = Decoder()
    assert decoder.feed(raw) == expected
    assert decoder.pending == 0


def test_multi_frame_buffer_split_at_every_point():
    raw, expected = multi_frame_buffer()

    for cut in range(len(raw) + 1):
        decoder = Decoder()
        frames = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:])
        assert frames == expected, f"split at {cut}"
        assert decoder.pending == 0


def test_multi_frame_buffer_byte_by_byte():
    raw, expected = multi_frame_buffer()
    decoder = Decoder()
    frames = []
    completed_at = []

    for index in range(len(raw)):
        got = decoder.feed(raw[index:index + 1])
        frames += got
        completed_at += [index + 1] * len(got)

    assert frames == expected
    ends = []
    offset = 0
    while offset < len(raw):
        offset += struct.unpack_from(">I", raw, offset)[0]
        ends.append(offset)
    assert completed_at == ends


def test_pending_counts_the_incomplete_tail():
    decoder = Decoder()

    assert decoder.feed(HI_FRAME + HI_FRAME[:30]) == [Frame(HI_HEADERS, b'{"content":"Hi"}')]
    assert decoder.pending == 30
    assert decoder.feed(b"") == []
    assert decoder.feed(HI_FRAME[30:]) == [Frame(HI_HEADERS, b'{"content":"Hi"}')]
    assert decoder.pending == 0


def test_a_bad_frame_after_good_ones_still_raises():
    bad = bytearray(HI_FRAME)
    bad[-1] ^= 1
    decoder = Decoder()

    assert len(decoder.feed(HI_FRAME)) == 1
    with pytest.raises(CrcError):
        decoder.feed(bytes(bad))


def bad_crc_frame() -> bytes:
    bad = bytearray(HI_FRAME)
    bad[-1] ^= 1
    return bytes(bad)


def test_good_frames_before_a_corrupt_one_in_the_same_chunk_are_returned_first():
    decoder = Decoder()

    assert decoder.feed(HI_FRAME + HI_FRAME + bad_crc_frame()) == [Frame(HI_HEADERS, b'{"content":"Hi"}')] * 2
    with pytest.raises(CrcError, match="message CRC"):
        decoder.feed(b"")
    with pytest.raises(CrcError):
        decoder.feed(HI_FRAME)  # nothing after a corrupt frame can be trusted
    with pytest.raises(CrcError):
        decoder.finish()


def test_finish_raises_the_held_back_error_when_the_stream_ends_after_the_corrupt_frame():
    decoder = Decoder()

    assert len(decoder.feed(HI_FRAME + bad_crc_frame())) == 1
    assert decoder.pending == len(HI_FRAME)  # the corrupt frame is not silently consumed
    with pytest.raises(CrcError):
        decoder.finish()


def test_corrupt_prelude_after_a_good_frame_is_held_back_too():
    raw = bytearray(HI_FRAME)
    raw[8] ^= 0xFF
    decoder = Decoder()

    assert len(decoder.feed(HI_FRAME + bytes(raw))) == 1
    with pytest.raises(CrcError, match="prelude"):
        decoder.feed(b"")


def test_finish_after_a_clean_stream_does_nothing():
    decoder = Decoder()
    decoder.feed(HI_FRAME)
    decoder.finish()


@pytest.mark.parametrize("payload", [b"", b"  \n"])
def test_frame_json_of_empty_payload_is_empty_object(payload):
    assert Frame({}, payload).json() == {}


@pytest.mark.parametrize("payload", [b"{", b"not json", b'{"a":1}x', b"\xff\xfe"])
def test_frame_json_of_bad_payload_raises_decode_error(payload):
    with pytest.raises(DecodeError, match="not JSON"):
        Frame({}, payload).json()


def test_frame_json_returns_non_object_values():
    assert Frame({}, b"[1,2]").json() == [1, 2]
