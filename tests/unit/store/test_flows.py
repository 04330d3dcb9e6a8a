"""Tests for store.flows: the FlowStore (in-memory index, writer, caps, crash recovery, export).

Most tests leave the writer thread unstarted: flush() then writes the queued batch on the calling
thread, which makes "written" and "not yet written" states exact without any waiting.
"""
from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from kiroproxy.errors import BadRequest, NotFound
from kiroproxy.exchange import PENDING, STREAMING, Exchange
from kiroproxy.redaction import MASK
from kiroproxy.store import flows as flows_module
from kiroproxy.store.flows import FlowStore
from kiroproxy.store.queries import Filter
from kiroproxy.store.stats import Stats
from tests.unit.store.test_records import T0, exchange

DAY = 86400.0
ALL = Filter()


class FakeClock:
    def __init__(self, now: float = T0 + 60) -> None:
        self.now = now
        self.hook: Optional[Callable[[], None]] = None  # runs once, the next time the clock is read

    def __call__(self) -> float:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def open_store(tmp_path, clock):
    """open_store(**options) -> a FlowStore on tmp_path/flows; every one is closed at the end."""
    made: List[FlowStore] = []

    def make(**options) -> FlowStore:
        stats = Stats(tmp_path / "stats.json", clock=clock)
        store = FlowStore(tmp_path / "flows", stats, clock=clock, **options)
        made.append(store)
        return store

    make.kill = made.remove  # a killed store is never closed: it just stops
    yield make
    for store in made:
        store.close()


def ids(page: dict) -> List[str]:
    return [flow["id"] for flow in page["flows"]]


def add(store: FlowStore, count: int, *, start: float = T0, **kw) -> List[Exchange]:
    """`count` finished exchanges, one second apart (oldest first)."""
    made = [exchange(f"question {n}", f"answer {n}", at=start + n, **kw) for n in range(count)]
    for ex in made:
        store.started(ex)
        store.finished(ex)
    return made


def bodies_on_disk(root: Path) -> List[str]:
    return sorted(p.name[:-len(".json.gz")] for p in (root / "flows" / "bodies").rglob("*.json.gz"))


def read_body(root: Path, flow_id: str) -> dict:
    (path,) = (root / "flows" / "bodies").rglob(f"{flow_id}.json.gz")
    return json.loads(gzip.decompress(path.read_bytes()))


# ----- finishing and reading ---------------------------------------------------------------------

def test_a_finished_flow_is_visible_at_once_and_on_disk_after_flush(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    page = store.query(ALL)
    assert ids(page) == [ex.id] and page["total"] == 1
    assert page["flows"][0]["seq"] == 1 and "search" not in page["flows"][0]
    detail = store.get(ex.id)
    assert detail["response"]["text"] == "answer 0" and detail["body_missing"] is False
    assert bodies_on_disk(tmp_path) == []  # the request thread wrote nothing
    assert store.counts()["queued"] == 1
    assert store.flush()
    assert bodies_on_disk(tmp_path) == [ex.id]
    assert read_body(tmp_path, ex.id)["request"]["body"]["messages"][0]["content"] == "question 0"
    on_disk = sum(p.stat().st_size for p in (tmp_path / "flows").rglob("*") if p.is_file())
    assert store.counts() == {"flows": 1, "in_flight": 0, "bytes": on_disk, "segments": 1, "queued": 0}


def test_the_writer_thread_stores_flows_in_the_background(open_store, tmp_path):
    store = open_store()
    store.start()
    made = add(store, 3)
    assert store.flush(10)
    assert bodies_on_disk(tmp_path) == sorted(ex.id for ex in made)
    store.close()
    assert store.flush(0.1)  # after close, flush still works (on the calling thread)


def test_bodies_come_from_disk_once_written(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    store.disk.write_body(1, ex.id, {"flow": {}, "request": {"body": "from disk"}, "response": {"text": "disk"}})
    assert store.get(ex.id)["request"] == {"body": "from disk"}
    exported = json.loads(b"".join(store.export(ALL, "json")))
    assert exported[0]["response"] == {"text": "disk"}


def test_a_flow_whose_body_is_gone_says_so(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    store.disk.remove_body(1, ex.id)
    detail = store.get(ex.id)
    assert detail["body_missing"] is True and detail["request"] is None and detail["response"] is None


def test_unknown_flow_is_not_found(open_store):
    with pytest.raises(NotFound):
        open_store().get("0" * 32)


def test_finished_flows_are_counted_in_stats(open_store):
    store = open_store()
    add(store, 2)
    assert store.stats.summary()["since_start"]["requests"] == 2


def test_secrets_are_masked_before_the_entry_is_shown(open_store):
    secret = "account-refresh-token-0123456789"
    seen: List[str] = []
    store: FlowStore

    def secrets() -> List[str]:
        # A reader that looks at the store while the secrets are being gathered must not see the
        # flow with its secret still in it.
        seen.append(json.dumps(store.query(ALL)))
        return [secret]

    store = open_store(secrets=secrets)
    ex = exchange(attempts=[])
    ex.fail(502, "upstream", f"upstream said {secret}", now=T0 + 1)
    store.finished(ex)
    assert all(secret not in text for text in seen)
    shown = store.query(ALL)["flows"][0]
    assert shown["error"]["message"] == f"upstream said {MASK}"


# ----- in-flight flows ---------------------------------------------------------------------------

def test_live_flows_come_first_newest_first_and_leave_when_finished(open_store):
    store = open_store(account_name=lambda account_id: f"name of {account_id}")
    (done,) = add(store, 1)
    first = exchange(answer=None, state=PENDING, at=T0 + 10)
    second = exchange(answer=None, state=PENDING, at=T0 + 20)
    store.started(first)
    store.started(second)
    second.state = STREAMING
    page = store.query(ALL)
    assert ids(page) == [second.id, first.id, done.id] and page["total"] == 3
    assert [f["state"] for f in page["flows"]] == ["streaming", "pending", "completed"]
    assert page["flows"][0]["seq"] == 0 and page["flows"][0]["account_name"] == "name of acc-1"
    assert store.counts()["in_flight"] == 2
    assert store.get(first.id)["in_flight"] is True and store.get(first.id)["request"] is None
    assert store.query(Filter(state="pending"))["total"] == 1
    assert store.summary(ALL)["by_state"] == {"streaming": 1, "pending": 1, "completed": 1}
    with pytest.raises(NotFound):
        store.update(first.id, bookmarked=True)
    first.state = "completed"
    store.finished(first)
    assert ids(store.query(ALL)) == [second.id, first.id, done.id]
    assert store.query(ALL)["flows"][1]["seq"] == 2


def test_a_cursor_page_leaves_live_flows_out(open_store):
    store = open_store()
    add(store, 3)
    live = exchange(answer=None, state=PENDING)
    store.started(live)
    page = store.query(ALL, limit=2)
    assert [f["seq"] for f in page["flows"]] == [0, 3] and page["next_cursor"] == 3
    rest = store.query(ALL, limit=2, cursor=page["next_cursor"])
    assert [f["seq"] for f in rest["flows"]] == [2, 1] and rest["total"] == 2
    assert live.id not in ids(rest)
    assert store.query(ALL, limit=1)["next_cursor"] is None  # a live row has no seq to go on from


# ----- queries -----------------------------------------------------------------------------------

def test_filters_paging_and_cursor(open_store):
    store = open_store()
    made = add(store, 7)
    failed = exchange("broken zebra", answer=None, at=T0 + 100, protocol="openai")
    failed.fail(400, "invalid_request", "bad", now=T0 + 101)
    store.finished(failed)
    newest_first = [failed.id] + [ex.id for ex in reversed(made)]
    assert ids(store.query(ALL)) == newest_first
    assert ids(store.query(Filter(protocol="openai"))) == [failed.id]
    assert ids(store.query(Filter(has_error=True))) == [failed.id]
    assert ids(store.query(Filter(q="Zebra BROKEN"))) == [failed.id]
    assert ids(store.query(Filter(q=made[3].id))) == [made[3].id]
    assert store.query(Filter(since=T0 + 5, until=T0 + 6))["total"] == 2
    page = store.query(ALL, limit=3)
    assert ids(page) == newest_first[:3] and page["total"] == 8 and page["next_cursor"] == 6
    second = store.query(ALL, limit=3, cursor=page["next_cursor"])
    assert ids(second) == newest_first[3:6] and second["total"] == 5
    last = store.query(ALL, limit=3, cursor=second["next_cursor"])
    assert ids(last) == newest_first[6:] and last["next_cursor"] is None
    assert ids(store.query(ALL, limit=3, offset=3)) == newest_first[3:6]
    assert store.query(ALL, offset=50)["flows"] == []
    assert [e["id"] for e in store.recent(Filter(has_error=False), 2)] == newest_first[1:3]
    assert store.account_of(made[0].id) == "acc-1" and store.account_of("f" * 32) is None


# ----- bookmarks, notes, tags --------------------------------------------------------------------

def test_update_is_persisted_and_survives_a_reopen(open_store, tmp_path):
    store = open_store()
    made = add(store, 2)
    target = made[0].id
    shown = store.update(target, bookmarked=True, note="look " * 1000, tags=[" bug ", "bug", "", "a" * 60, "x"])
    assert shown["bookmarked"] is True and len(shown["note"]) == 2000
    assert shown["tags"] == ["a" * 40, "bug", "x"] and "segment" not in shown and "search" not in shown
    store.update(target, tags=[f"t{n:02d}" for n in range(30)])
    store.close()
    assert read_body(tmp_path, target)["flow"]["bookmarked"] is True
    reopened = open_store()
    again = reopened.get(target)
    assert again["bookmarked"] is True and again["note"] == ("look " * 1000)[:2000]
    assert again["tags"] == [f"t{n:02d}" for n in range(20)]
    assert ids(reopened.query(Filter(bookmarked=True))) == [target]
    assert ids(reopened.query(Filter(tag="t05"))) == [target]
    assert again["response"]["text"] == "answer 0"


def test_unknown_flow_cannot_be_updated(open_store):
    with pytest.raises(NotFound):
        open_store().update("a" * 32, bookmarked=True)


# ----- caps --------------------------------------------------------------------------------------

def test_eviction_by_count_keeps_the_newest(open_store, tmp_path):
    store = open_store(max_flows=3)
    made = add(store, 5)
    store.flush()
    kept = [ex.id for ex in made[2:]]
    assert ids(store.query(ALL)) == kept[::-1]
    assert bodies_on_disk(tmp_path) == sorted(kept)
    with pytest.raises(NotFound):
        store.get(made[0].id)


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


def test_eviction_by_bytes(open_store, tmp_path):
    store = open_store(max_bytes=1)
    keeper, *others = add(store, 4)
    store.update(keeper.id, bookmarked=True)
    store.flush()
    assert ids(store.query(ALL)) == [keeper.id]
    assert bodies_on_disk(tmp_path) == [keeper.id]


def test_eviction_by_bytes_stays_under_a_cap(open_store, tmp_path):
    probe = open_store()
    add(probe, 1)
    probe.flush()
    one = probe.counts()["bytes"]
    probe.close()
    store = open_store(max_bytes=int(one * 3.5))
    add(store, 8, start=T0 + 10)
    store.flush()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "flows").rglob("*") if p.is_file())
    assert on_disk <= one * 3.5 and store.counts()["bytes"] == on_disk
    assert 2 <= store.counts()["flows"] < 8
    assert store.query(ALL)["flows"][0]["received_at"] == T0 + 17  # the newest is kept


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


def test_a_flow_evicted_before_it_was_written_stays_gone(open_store, clock, tmp_path):
    store = open_store(max_flows=1)
    (keeper,) = add(store, 1)
    store.update(keeper.id, bookmarked=True)
    late: List[Exchange] = []
    # The next request finishes while the writer is busy: after the batch was taken, before the
    # caps run. Over the cap with the older flow bookmarked, it is evicted before it is written.
    clock.hook = lambda: late.extend(add(store, 1, start=T0 + 5))
    store.flush()
    assert len(late) == 1 and ids(store.query(ALL)) == [keeper.id]
    store.flush()  # the writer now reaches the evicted flow's queued body
    store.close()
    assert bodies_on_disk(tmp_path) == [keeper.id]
    assert ids(open_store().query(ALL)) == [keeper.id]


# ----- segments, reopening, crashes --------------------------------------------------------------

def test_segments_roll_over(open_store, tmp_path, monkeypatch):
    monkeypatch.setattr(flows_module, "SEGMENT_SIZE", 3)
    store = open_store()
    made = add(store, 7)
    store.flush()
    index = tmp_path / "flows" / "index"
    assert sorted(p.name for p in index.glob("seg-*.json")) == ["seg-000001.json", "seg-000002.json",
                                                                "seg-000003.json"]
    assert sorted(p.name for p in (tmp_path / "flows" / "bodies").iterdir()) == ["000001", "000002", "000003"]
    assert [len(list((tmp_path / "flows" / "bodies" / f"00000{n}").iterdir())) for n in (1, 2, 3)] == [3, 3, 1]
    assert store.counts()["segments"] == 3
    assert read_body(tmp_path, made[6].id)["flow"]["seq"] == 7


def test_reopen_keeps_everything_and_seq_continues(open_store, tmp_path):
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


def test_a_kill_loses_only_unflushed_flows(open_store, tmp_path):
    crashed = open_store()
    flushed = add(crashed, 3)
    crashed.flush()
    lost = add(crashed, 2, start=T0 + 10)  # finished, never written: then kill -9 (no close)
    survivor = open_store()
    assert survivor.repaired_segments == 0
    assert sorted(ids(survivor.query(ALL))) == sorted(ex.id for ex in flushed)
    assert not {ex.id for ex in lost} & set(bodies_on_disk(tmp_path))
    (ex,) = add(survivor, 1, start=T0 + 20)
    survivor.flush()
    assert survivor.get(ex.id)["seq"] == 4
    open_store.kill(crashed)


def test_a_kill_between_body_and_index_writes_recovers_the_flows(open_store, tmp_path):
    crashed = open_store()
    kept = add(crashed, 2)
    crashed.flush()
    in_the_batch = add(crashed, 2, start=T0 + 10)

    def killed(segment, entries):
        raise OSError("killed")

    crashed.disk.write_segment = killed  # the bodies are written, the index never is
    with pytest.raises(OSError):
        crashed.flush()
    open_store.kill(crashed)
    survivor = open_store()
    assert survivor.repaired_segments == 1
    assert ids(survivor.query(ALL)) == [ex.id for ex in reversed(kept + in_the_batch)]
    assert survivor.get(in_the_batch[1].id)["response"]["text"] == "answer 1"
    assert survivor.counts()["bytes"] == sum(p.stat().st_size for p in (tmp_path / "flows").rglob("*")
                                             if p.is_file())


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


# ----- export ------------------------------------------------------------------------------------

def test_export_json_and_jsonl(open_store):
    store = open_store()
    made = add(store, 3)
    store.flush()
    document = json.loads(b"".join(store.export(ALL, "json")))
    assert [f["id"] for f in document] == [ex.id for ex in reversed(made)]
    assert document[2]["request"]["body"]["messages"][0]["content"] == "question 0"
    assert document[2]["response"]["text"] == "answer 0"
    assert "search" not in document[0] and "segment" not in document[0]
    lines = b"".join(store.export(Filter(ids=(made[0].id, made[2].id)), "jsonl")).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [made[2].id, made[0].id]
    bare = json.loads(b"".join(store.export(ALL, "json", include_bodies=False)))
    assert "request" not in bare[0] and "response" not in bare[0] and bare[0]["id"] == made[2].id


def test_export_of_nothing_is_an_empty_document(open_store):
    store = open_store()
    assert json.loads(b"".join(store.export(ALL, "json"))) == []
    assert b"".join(store.export(ALL, "jsonl")) == b""


def test_export_takes_bodies_from_memory_before_the_writer_ran(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    chunks = store.export(ALL, "jsonl")
    assert bodies_on_disk(tmp_path) == []
    (line,) = b"".join(chunks).decode().splitlines()
    assert json.loads(line)["response"]["text"] == "answer 0"


def test_export_masks_secrets_known_today(open_store):
    secret = "a-token-added-after-the-flow-0123"
    known: List[str] = []
    store = open_store(secrets=lambda: list(known))
    ex = exchange(f"the secret is {secret}")
    store.finished(ex)
    store.flush()
    assert secret in b"".join(store.export(ALL, "json")).decode()  # not known when the flow was written
    known.append(secret)
    text = b"".join(store.export(ALL, "json")).decode()
    assert secret not in text and MASK in text


def test_export_rejects_an_unknown_format(open_store):
    with pytest.raises(BadRequest) as raised:
        open_store().export(ALL, "xml")
    assert raised.value.param == "format"
