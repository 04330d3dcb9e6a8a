"""The flow writer on its own: it owns the queue, the index and the marks behind its own lock, and
answers the store's questions (select, find, mark, counts) even while its thread is on the disk."""
from __future__ import annotations

import threading
from dataclasses import replace

from kiroproxy.redaction import Redactor
from kiroproxy.store.flows import records, segments
from kiroproxy.store.flows.index import Caps, Index
from kiroproxy.store.flows.writer import Writer
from kiroproxy.store.stats import Stats
from tests.unit.store.flows.test_flow_backlog import SlowDisk
from tests.unit.store.flows.test_records import T0, exchange, failed

EVERYTHING = lambda entry: True  # noqa: E731


def make_writer(tmp_path, disk=None) -> Writer:
    clock = lambda: T0 + 60  # noqa: E731
    return Writer(disk or segments.Disk(tmp_path / "flows"), lambda: Index(segments.SEGMENT_SIZE),
                  Stats(tmp_path / "stats.json", clock=clock), Caps(1000, 2**30, 0), Redactor,
                  lambda account_id: f"name of {account_id}", clock, 60.0)


def test_a_queued_flow_is_selected_as_queued_then_as_stored(tmp_path):
    writer = make_writer(tmp_path)
    snap = records.snapshot(exchange("hello"))
    assert writer.queue(snap) is True
    queued, stored = writer.select(EVERYTHING, None)
    assert [p.snap.id for p in queued] == [snap.id] and stored == [] and queued[0].seq == 1
    assert writer.find(snap.id) == (None, queued[0]) and writer.counts()["queued"] == 1
    assert writer.backlog_bytes == records.cost(snap)
    writer.cycle()  # not started: stores on the calling thread
    queued, stored = writer.select(EVERYTHING, None)
    assert queued == [] and [e["id"] for e in stored] == [snap.id] and stored[0]["account_name"] == "name of acc-1"
    entry, pending = writer.find(snap.id)
    assert pending is None and entry["seq"] == 1 and entry["segment"] == 1
    entry["note"] = "changed on a copy"
    assert writer.find(snap.id)[0]["note"] == ""
    assert writer.counts() == {"flows": 1, "bytes": writer.index.total_bytes(), "segments": 1, "queued": 0,
                               "backlog_bytes": 0, "oldest_at": T0}
    assert writer.account_of(snap.id) == "acc-1" and writer.newest() == 1


def test_a_flow_queued_twice_keeps_its_seq_and_the_later_state_and_once_stored_is_ignored(tmp_path):
    writer = make_writer(tmp_path)
    ex = exchange("hello")
    assert writer.queue(records.snapshot(ex)) is True
    assert writer.queue(records.snapshot(failed(ex, 500, "api_error", "later", T0 + 2))) is False
    (pending,) = writer.select(EVERYTHING, None)[0]
    assert pending.seq == 1 and pending.snap.meta["state"] == "error"
    writer.cycle()
    assert writer.queue(records.snapshot(ex)) is False
    assert writer.select(EVERYTHING, None)[0] == [] and writer.find(ex.id)[0]["state"] == "error"


def test_marks_on_a_queued_flow_go_into_its_stored_entry_and_unknown_flows_are_none(tmp_path):
    writer = make_writer(tmp_path)
    snap = records.snapshot(exchange("hello"))
    writer.queue(snap)
    shown, pending = writer.mark(snap.id, {"bookmarked": True, "note": "keep"})
    assert shown is None and writer.marks_of(pending) == {"bookmarked": True, "note": "keep"}
    writer.cycle()
    assert writer.find(snap.id)[0]["bookmarked"] is True and writer.find(snap.id)[0]["note"] == "keep"
    shown, pending = writer.mark(snap.id, {"tags": ["x"]})
    assert pending is None and shown["tags"] == ["x"] and "segment" not in shown
    assert writer.mark("f" * 32, {"note": "x"}) == (None, None)


def test_a_cursor_selects_older_flows_only(tmp_path):
    writer = make_writer(tmp_path)
    snaps = [records.snapshot(exchange(f"q{n}", at=T0 + n)) for n in range(4)]
    for snap in snaps[:2]:
        writer.queue(snap)
    writer.cycle()
    for snap in snaps[2:]:
        writer.queue(snap)
    queued, stored = writer.select(EVERYTHING, 3)
    assert [p.snap.id for p in queued] == [] and [e["id"] for e in stored] == [snaps[1].id, snaps[0].id]
    queued, stored = writer.select(lambda entry: entry["seq"] == 2, 4)
    assert [p.snap.id for p in queued] == [snaps[2].id] and [e["id"] for e in stored] == [snaps[1].id]


def test_the_writer_answers_while_its_thread_waits_on_the_disk(tmp_path):
    disk = SlowDisk(tmp_path / "flows")
    writer = make_writer(tmp_path, disk)
    writer.start()
    first = records.snapshot(exchange("first"))
    writer.queue(first)
    writer.wake(urgent=True)
    assert disk.writing.wait(10)  # the thread is inside a body write from now on
    answers = []

    def ask() -> None:
        later = records.snapshot(exchange("second"))
        answers.append(writer.queue(later))
        answers.append(writer.mark(first.id, {"note": "while writing"})[1] is not None)
        answers.append(len(writer.select(EVERYTHING, None)[0]))
        answers.append(writer.counts()["queued"])

    asker = threading.Thread(target=ask)
    asker.start()
    asker.join(10)
    assert not asker.is_alive() and answers == [True, True, 2, 2]  # no lock is held across the write
    disk.gate.set()
    assert writer.flush(10)
    assert writer.find(first.id)[0]["note"] == "while writing" and writer.counts()["queued"] == 0
    writer.close(10)


class SyncCountingDisk(segments.Disk):
    def __init__(self, root) -> None:
        super().__init__(root)
        self.syncs = 0
        self.synced_bodies = []
        self.unsynced_writes = 0

    def write_body(self, segment, flow_id, data, sync=True):
        self.unsynced_writes += not sync
        return super().write_body(segment, flow_id, data, sync)

    def sync(self) -> None:
        self.synced_bodies.append(len(self._unsynced))
        self.syncs += 1
        super().sync()


def test_a_batch_of_flows_is_made_durable_with_one_sync_before_its_index_lines(tmp_path):
    disk = SyncCountingDisk(tmp_path / "flows")
    writer = make_writer(tmp_path, disk)
    snaps = [records.snapshot(exchange(f"q{n}", at=T0 + n)) for n in range(5)]
    for snap in snaps:
        writer.queue(snap)
    logged_after = []
    real_append = disk.append
    disk.append = lambda segment, new: (logged_after.append(disk.syncs), real_append(segment, new))[1]
    writer.cycle()
    assert disk.unsynced_writes == 5 and disk.synced_bodies == [5] and logged_after == [1]
    assert [e["id"] for e in writer.select(EVERYTHING, None)[1]] == [s.id for s in reversed(snaps)]
    assert sorted(disk.body_ids(1)) == sorted(s.id for s in snaps)


def test_stored_entries_share_the_strings_each_request_parsed_anew(tmp_path):
    writer = make_writer(tmp_path)
    for n in range(2):
        ex = exchange(f"q{n}", at=T0 + n)
        writer.queue(replace(ex, path="".join(["/v1/", "messages"]), requested_model="".join(["claude-", "x"])))
    writer.cycle()
    first, second = writer.index.entries.values()
    assert first["path"] is second["path"] and first["requested_model"] is second["requested_model"]
