"""The queue of finished flows waiting for the writer is bounded in bytes: flows finished faster
than the disk takes them keep their metadata but not their bodies, and the request thread never
waits for the disk."""
from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from dataclasses import replace

from kiroproxy.store.flows import records, segments
from kiroproxy.store.flows.queries import Filter
from tests.unit.store.flows.test_records import exchange

BODY = 400_000  # bytes of each client body, as in the measurement


class SlowDisk(segments.Disk):
    """A disk whose body writes wait until the test opens the gate (a writer that cannot keep up)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.writing = threading.Event()

    def write_body(self, segment, flow_id, data, sync=True):
        self.writing.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().write_body(segment, flow_id, data, sync)


def big_exchange(n: int):
    ex = exchange(f"question {n} " + "x" * BODY, f"answer {n}")
    return replace(ex, raw_body=json.dumps(ex.body).encode())  # as the body reader leaves it


def test_flows_finished_faster_than_the_writer_stores_them_keep_memory_flat(open_store, tmp_path):
    disk = SlowDisk(tmp_path / "flows")
    store = open_store(backlog_bytes=8 * 2**20, disk=disk)
    store.start()
    first = big_exchange(0)
    store.started(first)
    store.finished(first)
    assert disk.writing.wait(10)  # the writer is stuck on the disk from now on
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        peak_backlog = 0
        for n in range(1, 300):  # 120 MB of bodies, pushed while the writer is stuck
            ex = big_exchange(n)
            store.started(ex)
            store.finished(ex)  # returns at once: nothing on the request path waits for the disk
            del ex
            peak_backlog = max(peak_backlog, store.counts()["backlog_bytes"])
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counts = store.counts()
    assert peak_backlog <= 8 * 2**20 + 3 * BODY  # one flow past the bound at most
    assert grown < 16 * 2**20, grown  # not 120 MB
    assert counts["bodies_dropped"] > 250 and counts["flows_dropped"] == 0
    assert counts["queued"] == 300  # every flow is still there, most with metadata only
    newest = store.query(Filter(), limit=1)["flows"][0]
    assert newest["body_dropped"] is True and newest["snippet"].startswith("question 299")
    detail = store.get(newest["id"])
    assert detail["request"]["body"] is None and detail["response"] is None
    disk.gate.set()
    assert store.flush(60)
    assert store.counts()["backlog_bytes"] == 0 and store.counts()["flows"] == 300
    stored = store.get(newest["id"])
    assert stored["body_dropped"] is True and stored["model"] == "claude-sonnet-4.5"
    kept = store.get(first.id)
    assert "body_dropped" not in kept and kept["request"]["body"]["messages"][0]["content"].startswith("question 0")


def test_past_twice_the_bound_flows_are_counted_in_stats_but_not_kept(open_store, tmp_path):
    disk = SlowDisk(tmp_path / "flows")
    store = open_store(backlog_bytes=64 * 1024, disk=disk)
    store.start()
    for n in range(200):  # metadata alone fills twice the bound after some 60 flows
        ex = exchange(f"question {n}")
        store.started(ex)
        store.finished(ex)
    counts = store.counts()
    assert counts["flows_dropped"] > 100 and counts["bodies_dropped"] > 0
    assert counts["backlog_bytes"] <= 2 * 64 * 1024 + records.META_COST
    assert store.stats.summary()["since_start"]["requests"] == 200
    assert counts["in_flight"] == 0
    disk.gate.set()
    assert store.flush(60)
    assert store.counts()["flows"] == 200 - counts["flows_dropped"]
