"""Tests for store.flows.recovery: replaying index logs and reconciling them with body files."""
from __future__ import annotations

import gzip
import json
import logging

import pytest

from kiroproxy.store.flows import recovery
from kiroproxy.store.flows.segments import Disk, encode_body


def fid(n: int) -> str:
    return f"{n:032x}"


def entry(n: int, **extra) -> dict:
    return {"id": fid(n), "seq": n, "protocol": "anthropic", "state": "completed", "size": 0, **extra}


@pytest.fixture
def disk(tmp_path):
    return Disk(tmp_path / "flows")


def store_flow(disk: Disk, segment: int, n: int, *, logged: bool = True, **extra) -> int:
    """A flow as the writer leaves it: body first, then its add line."""
    size = disk.write_body(segment, fid(n), encode_body(f"search {n}", {"flow": entry(n, **extra),
                                                                         "request": {}, "response": None}))
    if logged:
        disk.append(segment, [{"add": entry(n, size=size, **extra)}])
    return size


def loaded(disk: Disk) -> list:
    return [(s.number, [e["id"] for e in s.entries], s.repaired) for s in recovery.load(disk).segments]


def log_records(disk: Disk, segment: int) -> list:
    return [json.loads(line) for line in disk.segment_path(segment).read_bytes().splitlines()]


def test_replay_applies_adds_marks_and_deletes_in_order():
    records = [{"add": entry(1)}, {"add": entry(2)}, {"set": fid(1), "bookmarked": True, "note": "n", "tags": ["t"],
                                                      "seq": 99}, {"del": [fid(2)]}, {"set": fid(2), "note": "gone"},
               {"add": entry(3)}, {"junk": 1}, {"add": "not an entry"}, {"del": "not a list"}]
    entries, deleted, adds = recovery.replay(records)
    assert list(entries) == [fid(1), fid(3)] and deleted == {fid(2)} and adds == 3
    assert entries[fid(1)] == {**entry(1), "bookmarked": True, "note": "n", "tags": ["t"]}  # seq is not a mark


def test_an_intact_store_loads_without_repair(disk):
    sizes = [store_flow(disk, 1, n) for n in (1, 2)] + [store_flow(disk, 2, 3)]
    disk.append(1, [{"set": fid(2), "bookmarked": True}])
    result = recovery.load(disk)
    assert [(s.number, s.lines, s.adds, s.repaired) for s in result.segments] == [(1, 3, 2, False), (2, 1, 1, False)]
    first = result.segments[0]
    assert [e["size"] for e in first.entries] == sizes[:2] and first.entries[1]["bookmarked"] is True
    assert first.size == disk.log_size(1)
    assert (result.dropped, result.recovered) == (0, 0)


def test_an_entry_whose_body_is_missing_is_dropped_and_the_log_rewritten(disk, caplog):
    for n in (1, 2, 3):
        store_flow(disk, 1, n)
    disk.remove_body(1, fid(2))
    with caplog.at_level(logging.WARNING):
        result = recovery.load(disk)
    assert [e["id"] for e in result.segments[0].entries] == [fid(1), fid(3)] and result.dropped == 1
    assert [r["add"]["id"] for r in log_records(disk, 1)] == [fid(1), fid(3)]
    assert "dropped 1" in caplog.text
    assert loaded(disk) == [(1, [fid(1), fid(3)], False)]  # nothing left to repair


def test_a_body_the_log_never_named_is_indexed_again(disk):
    store_flow(disk, 1, 1)
    size = store_flow(disk, 1, 2, logged=False, note="kept")  # a kill between the body and its line
    result = recovery.load(disk)
    assert result.recovered == 1 and result.segments[0].repaired
    recovered = result.segments[0].entries[1]
    assert recovered["id"] == fid(2) and recovered["size"] == size and recovered["note"] == "kept"
    assert loaded(disk) == [(1, [fid(1), fid(2)], False)]


def test_a_body_of_an_evicted_flow_is_removed_not_revived(disk):
    store_flow(disk, 1, 1)
    store_flow(disk, 1, 2)
    disk.append(1, [{"del": [fid(2)]}])  # evicted, but the body outlived a crash
    assert loaded(disk) == [(1, [fid(1)], False)]
    assert list(disk.body_ids(1)) == [fid(1)]


def test_unreadable_bodies_nobody_names_are_removed(disk):
    store_flow(disk, 1, 1)
    folder = disk.bodies_dir / "000001"
    (folder / f"{fid(2)}.json.gz").write_bytes(b"\x1f\x8b\x08\x00half")
    (folder / f"{fid(3)}.json.gz").write_bytes(gzip.compress(b"t") + gzip.compress(b'{"no": "flow"}'))
    assert loaded(disk) == [(1, [fid(1)], False)]
    assert list(disk.body_ids(1)) == [fid(1)]


def test_a_log_cut_mid_line_keeps_every_flow(disk):
    for n in (1, 2, 3):
        store_flow(disk, 1, n)
    raw = disk.segment_path(1).read_bytes()
    disk.segment_path(1).write_bytes(raw[: len(raw) // 2])
    assert loaded(disk) == [(1, [fid(1), fid(2), fid(3)], True)]
    assert [r["add"]["id"] for r in log_records(disk, 1)] == [fid(1), fid(2), fid(3)]


def test_a_lost_log_is_rebuilt_from_the_bodies(disk):
    for n in (3, 1, 2):
        store_flow(disk, 4, n)
    disk.segment_path(4).unlink()
    assert loaded(disk) == [(4, [fid(1), fid(2), fid(3)], True)]
    assert loaded(disk) == [(4, [fid(1), fid(2), fid(3)], False)]


def test_an_empty_body_folder_is_cleaned_up(disk):
    (disk.bodies_dir / "000009").mkdir()
    assert loaded(disk) == []
    assert not (disk.bodies_dir / "000009").exists()


def test_temp_files_are_swept(disk):
    store_flow(disk, 1, 1)
    temp = disk.bodies_dir / "000001" / f".{fid(2)}.json.gz.1.2.tmp"
    temp.write_bytes(b"partial")
    assert loaded(disk) == [(1, [fid(1)], False)]
    assert not temp.exists()




def test_entries_share_their_repeated_strings_whether_written_now_or_read_from_a_log():
    def fresh(n: int) -> dict:
        # Each request parses its own copies: equal strings, distinct objects.
        return {"id": f"{n:032x}", "seq": n, "path": "".join(["/v1/", "messages"]), "requested_model": "".join(
            ["claude-", "sonnet"]), "user_agent": "".join(["claude-cli/", "2.0"]), "snippet": "".join(["hi ", "x"])}

    written = [recovery.share(fresh(n)) for n in (1, 2)]
    for key in ("path", "requested_model", "user_agent"):
        assert written[0][key] is written[1][key]
    assert written[0]["snippet"] is not written[1]["snippet"]  # unique texts are left alone
    lines = [json.loads(json.dumps({"add": fresh(n)})) for n in (3, 4)]
    entries, _, _ = recovery.replay(lines)
    read = list(entries.values())
    for key in ("path", "requested_model", "user_agent"):
        assert read[0][key] is read[1][key] is written[0][key]
    keys = [[k for k in e if k == "path"][0] for e in read]
    assert keys[0] is keys[1]  # keys parsed from a log are shared too
