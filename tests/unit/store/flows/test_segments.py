"""Tests for store.flows.segments: body files (search text + record) and append-only index logs."""
from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import zlib

import pytest

from kiroproxy.store.flows import segments
from kiroproxy.store.flows.segments import Disk, encode_body


def fid(n: int) -> str:
    return f"{n:032x}"


def entry(n: int, **extra) -> dict:
    return {"id": fid(n), "seq": n, "protocol": "anthropic", "state": "completed", **extra}


def record(n: int) -> dict:
    return {"flow": entry(n), "request": {"body": {"n": n}}, "response": None}


def members(raw: bytes) -> list:
    """Every gzip member of a file, decompressed (independently of the code under test)."""
    out = []
    while raw:
        unpacker = zlib.decompressobj(31)
        out.append(unpacker.decompress(raw))
        assert unpacker.eof
        raw = unpacker.unused_data
    return out


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def disk(tmp_path):
    return Disk(tmp_path / "flows")


# ----- bodies ------------------------------------------------------------------------------------

def test_folders_are_private(disk):
    for folder in (disk.root, disk.index_dir, disk.bodies_dir):
        assert folder.is_dir() and mode(folder) == 0o700


def test_a_body_file_is_the_search_text_then_the_record(disk):
    size = disk.write_body(3, fid(1), encode_body("ünïcode search text", record(1)))
    path = disk.bodies_dir / "000003" / f"{fid(1)}.json.gz"
    raw = path.read_bytes()
    assert size == len(raw) and mode(path) == 0o600
    first, second = members(raw)
    assert first.decode() == "ünïcode search text" and json.loads(second) == record(1)
    assert gzip.decompress(raw).startswith("ünïcode search text".encode())  # plain gzip tools read it
    assert disk.read_record(3, fid(1)) == record(1)
    assert disk.read_search(3, fid(1)) == ("ünïcode search text", len("ünïcode search text".encode()))
    assert disk.body_ids(3) == {fid(1): size}


def test_reading_the_search_text_stops_after_the_first_member(disk):
    path = disk.bodies_dir / "000001" / f"{fid(1)}.json.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"the text") + b"\x1f\x8b not a valid second member")
    assert disk.read_search(1, fid(1)) == ("the text", 8)
    assert disk.read_record(1, fid(1)) is None


def test_lone_surrogates_are_stored_as_replacement_characters(disk):
    text = "broken \ud800 pair"
    disk.write_body(1, fid(1), encode_body(text, {"flow": entry(1), "request": {"body": text}}))
    assert disk.read_search(1, fid(1))[0] == "broken \ufffd pair"
    assert disk.read_record(1, fid(1))["request"]["body"] == "broken \ufffd pair"
    json.dumps(disk.read_record(1, fid(1)), ensure_ascii=False).encode("utf-8")  # an answer can carry it


def test_encoded_surrogates_written_by_an_older_version_read_as_replacement_characters(disk):
    """ED A0 80 is what "surrogatepass" wrote for U+D800: no UTF-8 reader accepts it."""
    record = b'{"flow":{"id":"' + fid(1).encode() + b'"},"request":{"body":"x\xed\xa0\x80"}}'
    path = disk.bodies_dir / "000001" / f"{fid(1)}.json.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"x\xed\xa0\x80") + gzip.compress(record))
    assert disk.read_search(1, fid(1))[0] == "x\ufffd\ufffd\ufffd"
    assert disk.read_record(1, fid(1))["request"]["body"] == "x\ufffd\ufffd\ufffd"


def test_missing_body_reads_as_none(disk):
    assert disk.read_record(1, fid(9)) is None and disk.read_search(1, fid(9)) == (None, 0)
    assert disk.body_ids(1) == {}
    disk.remove_body(1, fid(9))  # removing what is not there is fine


@pytest.mark.parametrize("damage", [b"not gzip at all", gzip.compress(b"text") + gzip.compress(b"{not json"),
                                    b"\x1f\x8b\x08\x00trunc", gzip.compress(b"text")[:-6]])
def test_unreadable_body_reads_as_none(disk, damage):
    disk.write_body(1, fid(1), encode_body("x", record(1)))
    (disk.bodies_dir / "000001" / f"{fid(1)}.json.gz").write_bytes(damage)
    assert disk.read_record(1, fid(1)) is None


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "..", "", "ABCDEF" + fid(1)[6:], fid(1)[:-1], fid(1) + "0",
                                 f"{fid(1)[:-1]}/", "g" * 32, f"{fid(1)}\n"])
def test_non_hex_flow_ids_are_rejected(disk, bad):
    with pytest.raises(ValueError):
        disk.body_path(1, bad)
    with pytest.raises(ValueError):
        disk.write_body(1, bad, b"x")
    assert not list(disk.root.parent.rglob("passwd"))


def test_body_ids_skip_foreign_files(disk):
    disk.write_body(1, fid(1), encode_body("x", record(1)))
    folder = disk.bodies_dir / "000001"
    (folder / "not-a-flow.json.gz").write_bytes(b"x")
    (folder / f"{fid(2)}.json").write_text("{}")
    assert list(disk.body_ids(1)) == [fid(1)]


# ----- index logs --------------------------------------------------------------------------------

def log_lines(disk, segment):
    return [json.loads(line) for line in disk.segment_path(segment).read_bytes().splitlines()]


def test_append_adds_lines_and_returns_the_size(disk):
    first = disk.append(7, [{"add": entry(1)}])
    path = disk.index_dir / "seg-000007.jsonl"
    assert first == path.stat().st_size and mode(path) == 0o600
    second = disk.append(7, [{"add": entry(2)}, {"del": [fid(1)]}])
    assert second == path.stat().st_size and second > first
    assert log_lines(disk, 7) == [{"add": entry(1)}, {"add": entry(2)}, {"del": [fid(1)]}]
    assert path.read_bytes().endswith(b"\n")


def test_an_append_after_a_fragment_starts_a_new_line(disk):
    disk.append(1, [{"add": entry(1)}])
    with open(disk.segment_path(1), "ab") as handle:
        handle.write(b'{"add": {"id"')  # what a failed write may leave
    disk.append(1, [{"add": entry(2)}])
    lines = disk.segment_path(1).read_bytes().splitlines()
    assert json.loads(lines[-1]) == {"add": entry(2)} and lines[1] == b'{"add": {"id"'


def test_a_failed_append_leaves_no_half_line(disk, monkeypatch):
    disk.append(1, [{"add": entry(1)}])
    before = disk.segment_path(1).read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments.os, "write", half_then_full)
    with pytest.raises(OSError):
        disk.append(1, [{"add": entry(2)}])
    monkeypatch.undo()
    assert disk.segment_path(1).read_bytes() == before


def test_rewrite_replaces_and_an_empty_rewrite_removes(disk):
    disk.append(1, [{"add": entry(1)}, {"add": entry(2)}, {"del": [fid(1)]}])
    size = disk.rewrite(1, [{"add": entry(2)}])
    assert size == disk.log_size(1) and log_lines(disk, 1) == [{"add": entry(2)}]
    disk.write_body(1, fid(2), b"x")
    disk.remove_body(1, fid(2))
    assert disk.rewrite(1, []) == 0
    assert not disk.segment_path(1).exists() and not (disk.bodies_dir / "000001").exists()


def test_a_body_folder_that_still_holds_bodies_is_kept(disk):
    disk.write_body(1, fid(1), b"x")
    disk.remove_segment(1)
    assert (disk.bodies_dir / "000001" / f"{fid(1)}.json.gz").exists()


def test_read_log_cuts_off_a_torn_last_line(disk):
    disk.append(1, [{"add": entry(1)}, {"add": entry(2)}])
    whole = disk.segment_path(1).read_bytes()
    disk.segment_path(1).write_bytes(whole + b'{"add":{"id":"000')
    records, damaged = disk.read_log(1)
    assert records == [{"add": entry(1)}, {"add": entry(2)}] and damaged is False
    assert disk.segment_path(1).read_bytes() == whole
    assert not list(disk.index_dir.glob("*.corrupt-*"))


def test_read_log_moves_a_damaged_file_aside(disk):
    disk.append(1, [{"add": entry(1)}])
    damaged_bytes = disk.segment_path(1).read_bytes() + b"garbage\n" + segments.line({"add": entry(2)})
    disk.segment_path(1).write_bytes(damaged_bytes)
    records, damaged = disk.read_log(1)
    assert records == [{"add": entry(1)}, {"add": entry(2)}] and damaged is True
    (aside,) = disk.index_dir.glob("seg-000001.jsonl.corrupt-*")
    assert aside.read_bytes() == damaged_bytes and not disk.segment_path(1).exists()
    assert disk.segments() == []  # the moved-aside file is not taken for a segment


def test_a_missing_log_reads_as_empty(disk):
    assert disk.read_log(4) == ([], False)


def test_segments_lists_logs_and_body_folders(disk):
    disk.append(2, [{"add": entry(1)}])
    (disk.index_dir / "seg-000004.json").write_text("{}")  # not a segment log
    disk.write_body(5, fid(2), b"x")
    (disk.index_dir / "notes.txt").write_text("x")
    (disk.index_dir / "seg-000003.jsonl.corrupt-1").write_text("x")
    (disk.bodies_dir / "stray").mkdir()
    assert disk.segments() == [2, 5]


def test_size_counts_every_file(disk):
    a = disk.write_body(1, fid(1), encode_body("x", record(1)))
    b = disk.append(1, [{"add": entry(1)}])
    assert disk.size() == a + b


def test_sweep_removes_our_temp_files_only(disk):
    disk.write_body(1, fid(1), b"x")
    temps = [disk.index_dir / ".seg-000001.jsonl.12.34.tmp", disk.bodies_dir / "000001" / f".{fid(2)}.json.gz.1.tmp",
             disk.root / ".stats.tmp"]
    for path in temps:
        path.write_bytes(b"partial")
    keep = disk.index_dir / "visible.tmp"
    keep.write_text("not ours")
    disk.sweep_temp_files()
    assert not any(path.exists() for path in temps) and keep.exists()


def test_a_record_gets_its_long_strings_back_from_the_search_text(disk):
    stored = {"flow": entry(1), "request": {"body": {"messages": ["", "short"]}},
              "texts": [["request", "body", "messages", 0, 6, 5]]}
    disk.write_body(1, fid(1), encode_body("hello world", stored))
    assert disk.read_record(1, fid(1)) == {"flow": entry(1), "request": {"body": {"messages": ["world", "short"]}}}
    assert disk.read_parts(1, fid(1))[0] == "hello world"
    assert disk.read_search(1, fid(1)) == ("hello world", 11)


def test_a_batch_of_unsynced_bodies_is_in_place_and_one_sync_fsyncs_each_body_and_folder_once(disk, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real_fsync(fd)

    monkeypatch.setattr(segments.os, "fsync", fsync)
    for n in range(1, 6):
        assert disk.write_body(7, fid(n), encode_body("x", record(n)), sync=False) > 0
    assert sorted(disk.body_ids(7)) == [fid(n) for n in range(1, 6)]
    assert disk.read_record(7, fid(3))["request"] == {"body": {"n": 3}}
    assert not [p for p in disk.body_folder(7).iterdir() if p.name.endswith(".tmp")]
    assert mode(disk.body_path(7, fid(1))) == 0o600 and mode(disk.body_folder(7)) == 0o700
    assert synced == []  # nothing synced per flow
    disk.remove_body(7, fid(2))  # evicted before the sync: skipped
    disk.sync()
    assert len(synced) == 6  # four bodies, their folder, and the bodies folder that gained it
    if os.path.exists("/proc/self/fd"):
        assert set(synced) == {*(str(disk.body_path(7, fid(n))) for n in (1, 3, 4, 5)),
                               str(disk.body_folder(7)), str(disk.bodies_dir)}
    disk.sync()  # nothing written since
    assert len(synced) == 6


def test_an_unsynced_body_goes_into_a_segment_folder_made_again_after_it_was_removed(disk):
    disk.write_body(4, fid(1), b"x", sync=False)
    disk.remove_body(4, fid(1))
    disk.remove_segment(4)
    assert not disk.body_folder(4).exists()
    disk.write_body(4, fid(2), b"y", sync=False)
    disk.sync()
    assert disk.body_ids(4) == {fid(2): 1}
