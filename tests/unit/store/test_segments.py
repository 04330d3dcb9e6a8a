"""Tests for store.segments: body files, TinyDB index segments, and repair when the store opens."""
from __future__ import annotations

import gzip
import json
import os
import stat

import pytest
from tinydb import TinyDB

from kiroproxy.store.jsondb import AtomicStorage
from kiroproxy.store.segments import Disk


def fid(n: int) -> str:
    return f"{n:032x}"


def entry(n: int, **extra) -> dict:
    return {"id": fid(n), "seq": n, "protocol": "anthropic", "state": "completed", **extra}


def body(n: int, search: str = "") -> dict:
    """A body record as the flow store writes it: the entry (without search) plus the bodies."""
    return {"flow": entry(n), "search": search or f"flow {n}", "request": {"body": {"n": n}}, "response": None}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def disk(tmp_path):
    return Disk(tmp_path / "flows")


def loaded(disk: Disk) -> list:
    return [(segment, [e["id"] for e in entries], repaired) for segment, entries, repaired in disk.load()]


# ----- bodies ------------------------------------------------------------------------------------

def test_folders_are_private(disk):
    for folder in (disk.root, disk.index_dir, disk.bodies_dir):
        assert folder.is_dir() and mode(folder) == 0o700


def test_body_round_trip_gzip_and_mode(disk):
    record = body(1, "ünïcode search")
    size = disk.write_body(3, fid(1), record)
    path = disk.bodies_dir / "000003" / f"{fid(1)}.json.gz"
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(raw)) == record
    assert size == len(raw) == disk.body_size(3, fid(1))
    assert mode(path) == 0o600
    assert disk.read_body(3, fid(1)) == record


def test_missing_body_reads_as_none_and_size_zero(disk):
    assert disk.read_body(1, fid(9)) is None and disk.body_size(1, fid(9)) == 0
    disk.remove_body(1, fid(9))  # removing what is not there is fine


@pytest.mark.parametrize("damage", [b"not gzip at all", gzip.compress(b"{not json"), b"\x1f\x8b\x08\x00trunc"])
def test_unreadable_body_reads_as_none(disk, damage):
    disk.write_body(1, fid(1), body(1))
    (disk.bodies_dir / "000001" / f"{fid(1)}.json.gz").write_bytes(damage)
    assert disk.read_body(1, fid(1)) is None


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "..", "", "ABCDEF" + fid(1)[6:], fid(1)[:-1], fid(1) + "0",
                                 f"{fid(1)[:-1]}/", "g" * 32, f"{fid(1)}\n"])
def test_non_hex_flow_ids_are_rejected(disk, bad):
    with pytest.raises(ValueError):
        disk.body_path(1, bad)
    with pytest.raises(ValueError):
        disk.write_body(1, bad, body(1))
    assert not list(disk.root.parent.rglob("passwd"))


# ----- segments ----------------------------------------------------------------------------------

def test_segment_is_a_tinydb_document(disk):
    entries = [entry(1), entry(2, tags=["x"])]
    size = disk.write_segment(7, entries)
    path = disk.index_dir / "seg-000007.json"
    assert size == path.stat().st_size and mode(path) == 0o600
    assert set(json.loads(path.read_text())) == {"_default"}
    db = TinyDB(str(path), storage=AtomicStorage)
    try:
        assert [dict(doc) for doc in db.all()] == entries
    finally:
        db.close()


def test_rewriting_a_segment_replaces_its_entries(disk):
    disk.write_segment(1, [entry(1), entry(2), entry(3)])
    disk.write_segment(1, [entry(3)])
    assert loaded(disk) == [(1, [fid(3)], False)]


def test_removing_the_last_entry_removes_the_segment_and_its_body_folder(disk):
    disk.write_body(1, fid(1), body(1))
    disk.write_segment(1, [entry(1)])
    disk.remove_body(1, fid(1))
    assert disk.write_segment(1, []) == 0
    assert not (disk.index_dir / "seg-000001.json").exists()
    assert not (disk.bodies_dir / "000001").exists()
    assert disk.segments() == [] and loaded(disk) == []


def test_a_body_folder_that_still_holds_bodies_is_kept(disk):
    disk.write_body(1, fid(1), body(1))
    disk.remove_segment(1)
    assert (disk.bodies_dir / "000001" / f"{fid(1)}.json.gz").exists()


def test_segments_lists_index_files_and_body_folders_only(disk):
    disk.write_segment(2, [entry(1)])
    disk.write_body(5, fid(2), body(2))
    (disk.index_dir / "notes.txt").write_text("x")
    (disk.index_dir / "seg-000003.json.corrupt-1").write_text("x")
    (disk.bodies_dir / "stray").mkdir()
    assert disk.segments() == [2, 5]


def test_size_counts_every_file(disk):
    a = disk.write_body(1, fid(1), body(1))
    b = disk.write_segment(1, [entry(1)])
    assert disk.size() == a + b


# ----- load: repair ------------------------------------------------------------------------------

def test_load_reads_intact_segments_in_order_without_repair(disk):
    for segment, numbers in ((1, (1, 2)), (2, (3,))):
        for n in numbers:
            disk.write_body(segment, fid(n), body(n))
        disk.write_segment(segment, [entry(n) for n in numbers])
    assert loaded(disk) == [(1, [fid(1), fid(2)], False), (2, [fid(3)], False)]


def test_a_missing_segment_is_rebuilt_from_its_bodies(disk):
    for n in (3, 1, 2):
        disk.write_body(4, fid(n), body(n, search=f"search {n}"))
    (segment, entries, repaired), = list(disk.load())
    assert (segment, repaired) == (4, True)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0] == {**entry(1), "search": "search 1"}
    assert [e["id"] for e in TinyDB(str(disk.segment_path(4)), storage=AtomicStorage).all()] == [fid(1), fid(2),
                                                                                                 fid(3)]
    assert loaded(disk) == [(4, [fid(1), fid(2), fid(3)], False)]  # written back: no repair next time


def test_a_truncated_segment_is_moved_aside_and_rebuilt(disk):
    for n in (1, 2):
        disk.write_body(1, fid(n), body(n))
    disk.write_segment(1, [entry(1), entry(2)])
    path = disk.segment_path(1)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert loaded(disk) == [(1, [fid(1), fid(2)], True)]
    aside = list(disk.index_dir.glob("seg-000001.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == raw[: len(raw) // 2]
    assert disk.segments() == [1]  # the moved-aside file is not taken for a segment


def test_a_segment_that_is_not_a_tinydb_document_is_rebuilt(disk):
    disk.write_body(1, fid(1), body(1))
    disk.segment_path(1).write_text("[1, 2, 3]")
    assert loaded(disk) == [(1, [fid(1)], True)]
    assert list(disk.index_dir.glob("seg-000001.json.corrupt-*"))


def test_orphan_bodies_are_added_back_to_their_segment(disk):
    for n in (1, 2, 3):
        disk.write_body(1, fid(n), body(n))
    disk.write_segment(1, [entry(1), entry(3)])  # a crash between the body write and the index write
    assert loaded(disk) == [(1, [fid(1), fid(2), fid(3)], True)]
    assert loaded(disk) == [(1, [fid(1), fid(2), fid(3)], False)]


def test_unreadable_and_foreign_body_files_are_not_added(disk):
    disk.write_body(1, fid(1), body(1))
    folder = disk.bodies_dir / "000001"
    (folder / f"{fid(2)}.json.gz").write_bytes(b"\x1f\x8b\x08\x00half")
    (folder / "not-a-flow.json.gz").write_bytes(gzip.compress(json.dumps(body(3)).encode()))
    (folder / f"{fid(4)}.json.gz").write_bytes(gzip.compress(b'{"no": "flow"}'))
    (folder / f"{fid(5)}.json").write_text("{}")
    assert [ids for _, ids, _ in loaded(disk)] == [[fid(1)]]


def test_load_sweeps_temp_files_everywhere(disk):
    disk.write_body(1, fid(1), body(1))
    disk.write_segment(1, [entry(1)])
    temps = [disk.index_dir / ".seg-000001.json.12.34.tmp", disk.bodies_dir / "000001" / f".{fid(2)}.json.gz.1.tmp",
             disk.root / ".stats.tmp"]
    for path in temps:
        path.write_bytes(b"partial")
    keep = disk.index_dir / "visible.tmp"
    keep.write_text("not ours")
    assert loaded(disk) == [(1, [fid(1)], False)]
    assert not any(path.exists() for path in temps) and keep.exists()


def test_an_empty_body_folder_is_cleaned_up(disk):
    (disk.bodies_dir / "000009").mkdir()
    assert loaded(disk) == [(9, [], True)]
    assert not (disk.bodies_dir / "000009").exists() and disk.segments() == []
