"""Tests for the flow store on disk: caps (count, bytes at all times, age, also on an idle server),
index writes in proportion to what changed, write order, crashes, reopening."""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import List

import pytest

from kiroproxy.exchange import Exchange
from kiroproxy.store.flows import store as flows_module
from kiroproxy.store.flows.queries import Filter
from tests.unit.store.flows.test_flows import DAY, add, bodies_on_disk, ids, on_disk, read_body
from tests.unit.store.flows.test_records import T0, exchange

ALL = Filter()


def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll until predicate() holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.01)


# ----- count and age caps ------------------------------------------------------------------------

def test_eviction_by_count_keeps_the_newest(open_store, tmp_path):
    store = open_store(max_flows=3)
    made = add(store, 5)
    store.flush()
    kept = [ex.id for ex in made[2:]]
    assert ids(store.query(ALL)) == kept[::-1]
    assert bodies_on_disk(tmp_path) == sorted(kept)


def test_bookmarked_flows_survive_even_past_the_cap(open_store, tmp_path):
    store = open_store(max_flows=2)
    made = add(store, 3)
    for ex in made:
        store.update(ex.id, bookmarked=True)
    store.flush()
    newer = add(store, 3, start=T0 + 10)
    store.flush()
    assert store.counts()["flows"] == 3
    assert sorted(ids(store.query(ALL))) == sorted(ex.id for ex in made)
    assert bodies_on_disk(tmp_path) == sorted(ex.id for ex in made)
    assert not set(bodies_on_disk(tmp_path)) & {ex.id for ex in newer}


def test_eviction_by_age(open_store, clock, tmp_path):
    store = open_store(max_age_days=1)
    old = add(store, 3)
    store.update(old[1].id, bookmarked=True)
    store.flush()
    assert store.counts()["flows"] == 3
    clock.now = T0 + DAY + 1.5  # old[0] and old[1] are now older than a day; old[2] (T0 + 2) is not
    recent = add(store, 1, start=clock.now)
    store.flush()
    assert sorted(ids(store.query(ALL))) == sorted([old[1].id, old[2].id, recent[0].id])
    clock.now += DAY
    store.flush()  # an empty batch still enforces the caps
    assert sorted(ids(store.query(ALL))) == sorted([old[1].id, recent[0].id])
    assert bodies_on_disk(tmp_path) == sorted([old[1].id, recent[0].id])


def test_an_idle_writer_wakes_up_to_evict_by_age(open_store, clock, tmp_path):
    store = open_store(max_age_days=1, sweep_seconds=0.02)
    old = add(store, 2)
    store.start()
    assert store.flush(10)
    clock.now = T0 + DAY + 0.5  # old[0] is now too old
    wait_until(lambda: store.counts()["flows"] == 1)  # nobody flushes, nothing new arrives
    assert ids(store.query(ALL)) == [old[1].id]
    wait_until(lambda: bodies_on_disk(tmp_path) == [old[1].id])


def test_a_flow_evicted_before_it_was_written_is_never_written(open_store, tmp_path):
    store = open_store(max_flows=1)
    (keeper,) = add(store, 1)
    store.update(keeper.id, bookmarked=True)
    store.flush()
    (late,) = add(store, 1, start=T0 + 5)
    assert ids(store.query(ALL)) == [late.id, keeper.id]  # shown while queued
    store.flush()  # over the count cap, the older flow bookmarked: the newcomer is not written
    assert ids(store.query(ALL)) == [keeper.id]
    store.close()
    assert bodies_on_disk(tmp_path) == [keeper.id]
    assert ids(open_store().query(ALL)) == [keeper.id]


# ----- the byte cap, at all times ----------------------------------------------------------------

def one_flow_bytes(open_store) -> int:
    probe = open_store()
    add(probe, 1)
    probe.flush()
    size = probe.counts()["bytes"]
    probe.close()
    return size


def test_eviction_by_bytes(open_store, tmp_path):
    store = open_store(max_bytes=1)
    keeper, *others = add(store, 4)
    store.update(keeper.id, bookmarked=True)
    store.flush()
    assert ids(store.query(ALL)) == [keeper.id]
    assert bodies_on_disk(tmp_path) == [keeper.id]


def test_the_disk_never_goes_past_the_byte_cap(open_store, tmp_path):
    cap = int(one_flow_bytes(open_store) * 3.5)
    (tmp_path / "flows").rename(tmp_path / "probe")
    store = open_store(max_bytes=cap)
    seen: List[int] = []
    real_write = store.disk.write_body

    def checked_write(segment: int, flow_id: str, data: bytes, sync: bool = True) -> int:
        seen.append(on_disk(tmp_path) + len(data))  # what the disk will hold once this file is there
        return real_write(segment, flow_id, data, sync)

    store.disk.write_body = checked_write
    for batch in range(4):
        add(store, 3, start=T0 + 10 * batch)
        store.flush()
    assert len(seen) == 12 and max(seen) <= cap
    assert on_disk(tmp_path) <= cap and store.counts()["bytes"] == on_disk(tmp_path)
    assert 2 <= store.counts()["flows"] < 12
    assert store.query(ALL)["flows"][0]["received_at"] == T0 + 32  # the newest is kept


def test_a_flow_larger_than_the_cap_is_not_stored_and_evicts_nothing(open_store, tmp_path, caplog):
    cap = int(one_flow_bytes(open_store) * 4)
    (tmp_path / "flows").rename(tmp_path / "probe")
    store = open_store(max_bytes=cap)
    kept = add(store, 2)
    store.flush()
    huge = exchange("".join(f"{n:06d} {n * 7919 % 1000003:07d} " for n in range(40000)), at=T0 + 10)
    store.finished(huge)
    with caplog.at_level(logging.WARNING):
        store.flush()
    assert sorted(ids(store.query(ALL))) == sorted(ex.id for ex in kept)
    assert bodies_on_disk(tmp_path) == sorted(ex.id for ex in kept)
    assert "not stored" in caplog.text


# ----- index writes ------------------------------------------------------------------------------

def test_index_writes_grow_with_the_flows_written_not_with_the_segment(open_store, tmp_path):
    store = open_store()
    written: List[int] = []
    real_append, real_rewrite = store.disk.append, store.disk.rewrite

    def counted_append(segment, records):
        before = store.disk.log_size(segment)
        size = real_append(segment, records)
        written.append(size - before)
        return size

    def counted_rewrite(segment, records):
        size = real_rewrite(segment, records)
        written.append(size)
        return size

    store.disk.append, store.disk.rewrite = counted_append, counted_rewrite
    for n in range(60):  # one flow per batch, as under light load
        add(store, 1, start=T0 + n)
        store.flush()
    assert len(written) == 60
    assert max(written) < 2 * min(written)  # the 60th costs what the 1st did
    assert sum(written) == sum(p.stat().st_size for p in (tmp_path / "flows" / "index").glob("*.jsonl"))


def test_segments_roll_over(open_store, tmp_path, monkeypatch):
    monkeypatch.setattr(flows_module, "SEGMENT_SIZE", 3)
    store = open_store()
    made = add(store, 7)
    store.flush()
    index = tmp_path / "flows" / "index"
    assert sorted(p.name for p in index.glob("seg-*")) == ["seg-000001.jsonl", "seg-000002.jsonl",
                                                           "seg-000003.jsonl"]
    assert [len(list((tmp_path / "flows" / "bodies" / f"00000{n}").iterdir())) for n in (1, 2, 3)] == [3, 3, 1]
    assert store.counts()["segments"] == 3
    assert read_body(tmp_path, made[6].id)["flow"]["seq"] == 7


def test_an_emptied_segment_is_removed_and_a_mostly_dead_one_compacted(open_store, tmp_path, monkeypatch):
    monkeypatch.setattr(flows_module, "SEGMENT_SIZE", 3)
    store = open_store(max_flows=4)
    made = add(store, 3)
    store.update(made[1].id, bookmarked=True)
    store.flush()
    for n in range(3):
        add(store, 3, start=T0 + 10 * (n + 1))
        store.flush()
    for n in range(30):  # each change of a mark appends a line to the first segment's log
        store.update(made[1].id, note=f"note {n}")
        store.flush()
    index = tmp_path / "flows" / "index"
    first_log = [json.loads(line) for line in (index / "seg-000001.jsonl").read_text().splitlines()]
    assert len(first_log) < 20  # rewritten along the way, not 3 adds + a del + 30 marks
    assert [r["add"]["id"] for r in first_log if "add" in r] == [made[1].id]
    assert not (index / "seg-000002.jsonl").exists() and not (tmp_path / "flows" / "bodies" / "000002").exists()
    assert store.counts()["bytes"] == on_disk(tmp_path)
    store.close()
    assert open_store().get(made[1].id)["note"] == "note 29"


# ----- write order, crashes, reopening -----------------------------------------------------------

def test_every_index_line_names_a_body_already_on_disk(open_store, tmp_path):
    store = open_store()
    late: List[Exchange] = []
    real_write, real_append = store.disk.write_body, store.disk.append
    missing: List[str] = []

    def write_then_finish_another(segment, flow_id, data, sync=True):
        if not late:  # a request finishes while the writer is storing this batch
            late.extend(add(store, 1, start=T0 + 50))
        return real_write(segment, flow_id, data, sync)

    def checked_append(segment, records):
        named = [r["add"]["id"] for r in records if "add" in r]
        missing.extend(i for i in named if i not in bodies_on_disk(tmp_path))
        return real_append(segment, records)

    store.disk.write_body, store.disk.append = write_then_finish_another, checked_append
    add(store, 3)
    store.flush()
    assert late and missing == []
    open_store.kill(store)  # kill -9 before the late flow was written
    survivor = open_store()
    assert survivor.repaired_segments == 0
    listed = survivor.query(ALL, limit=10)["flows"]
    assert len(listed) == 3 and all(not survivor.get(f["id"])["body_missing"] for f in listed)


def test_reopen_keeps_everything_and_seq_continues(open_store):
    store = open_store()
    made = add(store, 4)
    store.update(made[2].id, note="kept")
    store.close()
    before = store.query(ALL)
    assert before["flows"][1]["note"] == "kept" and all(f["size"] > 0 for f in before["flows"])
    reopened = open_store()
    assert reopened.repaired_segments == 0
    assert reopened.query(ALL) == before
    assert reopened.counts()["bytes"] == store.counts()["bytes"]
    (ex,) = add(reopened, 1, start=T0 + 50)
    assert reopened.get(ex.id)["seq"] == 5
    assert reopened.get(made[0].id)["response"]["text"] == "answer 0"


def test_reopen_drops_flows_whose_body_is_missing(open_store, tmp_path, caplog):
    store = open_store()
    made = add(store, 3)
    store.close()
    (path,) = (tmp_path / "flows" / "bodies").rglob(f"{made[1].id}.json.gz")
    path.unlink()
    with caplog.at_level(logging.WARNING):
        reopened = open_store()
    assert ids(reopened.query(ALL)) == [made[2].id, made[0].id] and reopened.repaired_segments == 1
    assert "dropped 1" in caplog.text
    assert reopened.counts()["bytes"] == on_disk(tmp_path)


def test_a_kill_loses_only_unflushed_flows(open_store, tmp_path):
    crashed = open_store()
    flushed = add(crashed, 3)
    crashed.flush()
    lost = add(crashed, 2, start=T0 + 10)  # finished, never written: then kill -9 (no close)
    open_store.kill(crashed)
    survivor = open_store()
    assert survivor.repaired_segments == 0
    assert sorted(ids(survivor.query(ALL))) == sorted(ex.id for ex in flushed)
    assert not {ex.id for ex in lost} & set(bodies_on_disk(tmp_path))
    (ex,) = add(survivor, 1, start=T0 + 20)
    survivor.flush()
    assert survivor.get(ex.id)["seq"] == 4


def test_a_kill_between_body_and_index_writes_recovers_the_flows(open_store, tmp_path):
    crashed = open_store()
    kept = add(crashed, 2)
    crashed.flush()
    in_the_batch = add(crashed, 2, start=T0 + 10)

    def killed(segment, records):
        raise OSError("killed")

    crashed.disk.append = killed  # the bodies are written, the index lines never are
    with pytest.raises(OSError):
        crashed.flush()
    open_store.kill(crashed)
    survivor = open_store()
    assert survivor.repaired_segments == 1
    assert ids(survivor.query(ALL)) == [ex.id for ex in reversed(kept + in_the_batch)]
    assert survivor.get(in_the_batch[1].id)["response"]["text"] == "answer 1"
    assert survivor.counts()["bytes"] == on_disk(tmp_path)


def test_a_log_cut_mid_line_reopens_with_every_flow(open_store, tmp_path):
    store = open_store()
    made = add(store, 4)
    store.close()
    (log,) = (tmp_path / "flows" / "index").glob("seg-*.jsonl")
    raw = log.read_bytes()
    log.write_bytes(raw[: len(raw) - 40])
    reopened = open_store()
    assert sorted(ids(reopened.query(ALL))) == sorted(ex.id for ex in made)
    assert log.read_bytes().endswith(b"\n")


def test_many_threads_finishing_at_once_lose_nothing(open_store, tmp_path):
    store = open_store()
    store.start()
    barrier = threading.Barrier(8)
    made: List[List[Exchange]] = [[] for _ in range(8)]

    def worker(n: int) -> None:
        barrier.wait()
        made[n].extend(add(store, 25, start=T0 + n * 100))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert store.flush(10)
    expected = sorted(ex.id for group in made for ex in group)
    assert len(expected) == 200
    assert sorted(ids(store.query(ALL, limit=500))) == expected
    assert sorted(f["seq"] for f in store.query(ALL, limit=500)["flows"]) == list(range(1, 201))
    store.close()
    assert bodies_on_disk(tmp_path) == expected
    reopened = open_store()
    assert sorted(ids(reopened.query(ALL, limit=500))) == expected
    assert reopened.stats.summary()["all_time"]["requests"] == 200


def test_the_stored_flows_are_read_by_the_writer_thread_not_when_the_store_is_built(open_store, monkeypatch):
    store = open_store()
    made = add(store, 3)
    store.close()
    loads: List[str] = []
    real_load = flows_module.recovery.load

    def recorded_load(disk):
        loads.append(threading.current_thread().name)
        return real_load(disk)

    monkeypatch.setattr(flows_module.recovery, "load", recorded_load)
    reopened = open_store()
    assert loads == []  # building it (at the server's start-up) reads nothing
    reopened.start()
    wait_until(lambda: loads)
    assert loads == ["kiroproxy-flows"]
    assert ids(reopened.query(ALL)) == [ex.id for ex in reversed(made)] and loads == ["kiroproxy-flows"]


def test_a_store_never_started_reads_its_flows_when_first_asked(open_store):
    store = open_store()
    made = add(store, 2)
    store.close()
    reopened = open_store()
    (ex,) = add(reopened, 1, start=T0 + 50)  # queued before anything was read: numbered after the stored
    assert reopened.get(ex.id)["seq"] == 3 and ids(reopened.query(ALL))[1:] == [m.id for m in reversed(made)]
