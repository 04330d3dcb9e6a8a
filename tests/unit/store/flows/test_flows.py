"""Tests for store.flows (FlowStore): recording, reading, querying, marking and exporting flows.

Most tests leave the writer thread unstarted: flush() then writes the queued batch on the calling
thread, which makes "written" and "not yet written" states exact without any waiting. Caps,
crashes and the disk layout are in test_flows_disk.py; full-text search in test_flows_search.py.
"""
from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path
from typing import List, Tuple

import pytest

from kiroproxy import chat
from kiroproxy.errors import BadRequest, NotFound
from kiroproxy.exchange import Attempt, Exchange, ExchangeSnapshot
from kiroproxy.redaction import MASK
from kiroproxy.store.flows import FlowStore
from kiroproxy.store.flows import records as flows_records
from kiroproxy.store.flows.queries import Filter
from kiroproxy.store.flows.segments import encode_body
from tests import factories
from tests.unit.store.flows.test_records import T0, exchange, failed

DAY = 86400.0
ALL = Filter()


def ids(page: dict) -> List[str]:
    return [flow["id"] for flow in page["flows"]]


def add(store: FlowStore, count: int, *, start: float = T0, **kw) -> List[ExchangeSnapshot]:
    """`count` finished exchanges, one second apart (oldest first)."""
    made = [exchange(f"question {n}", f"answer {n}", at=start + n, **kw) for n in range(count)]
    for ex in made:
        store.started(ex)
        store.finished(ex)
    return made


def in_flight(at: float, question: str = "the question") -> Exchange:
    """A live exchange as the web layer leaves it, before the relay connects."""
    ex = Exchange("anthropic", "/v1/messages", client="tests", headers={"user-agent": "tests/1.0"}, received_at=at)
    ex.read(factories.anthropic_body(question), None)
    ex.accepted(factories.request(question))
    ex.routed("claude-sonnet-4.5")
    return ex


def bodies_on_disk(root: Path) -> List[str]:
    return sorted(p.name[:-len(".json.gz")] for p in (root / "flows" / "bodies").rglob("*.json.gz"))


def body_file(root: Path, flow_id: str) -> Tuple[str, dict]:
    """(search text, whole record) of a body file, read without the code under test."""
    (path,) = (root / "flows" / "bodies").rglob(f"{flow_id}.json.gz")
    first = zlib.decompressobj(31)
    search = first.decompress(path.read_bytes())
    second = zlib.decompressobj(31)
    text, record = search.decode(), json.loads(second.decompress(first.unused_data))
    for *path, key, start, length in record.pop("texts"):  # long strings are kept once, in the text
        target = record
        for step in path:
            target = target[step]
        target[key] = text[start:start + length]
    return text, record


def read_body(root: Path, flow_id: str) -> dict:
    return body_file(root, flow_id)[1]


def on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "flows").rglob("*") if p.is_file())


# ----- finishing and reading ---------------------------------------------------------------------

def test_a_finished_flow_is_visible_at_once_and_on_disk_after_flush(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    page = store.query(ALL)
    assert ids(page) == [ex.id] and page["total"] == 1 and page["partial"] is False
    assert page["flows"][0]["seq"] == 1 and page["flows"][0]["snippet"] == "question 0"
    detail = store.get(ex.id)
    assert detail["response"]["text"] == "answer 0" and detail["body_missing"] is False
    assert bodies_on_disk(tmp_path) == []  # the request thread wrote nothing
    assert store.counts()["queued"] == 1 and store.counts()["flows"] == 1
    assert store.flush()
    assert bodies_on_disk(tmp_path) == [ex.id]
    assert read_body(tmp_path, ex.id)["request"]["body"]["messages"][0]["content"] == "question 0"
    assert store.counts() == {"flows": 1, "in_flight": 0, "bytes": on_disk(tmp_path), "segments": 1, "queued": 0,
                              "backlog_bytes": 0, "backlog_max_bytes": 64 * 2**20, "bodies_dropped": 0,
                              "flows_dropped": 0,
                              "oldest_at": ex.received_at, "max_flows": 10_000, "max_bytes": 512 * 2**20,
                              "max_age_days": 30.0}
    assert store.get(ex.id) == {**detail, "size": store.query(ALL)["flows"][0]["size"]}


def test_the_writer_thread_stores_flows_in_the_background(open_store, tmp_path):
    store = open_store()
    store.start()
    made = add(store, 3)
    assert store.flush(10)
    assert bodies_on_disk(tmp_path) == sorted(ex.id for ex in made)
    store.close()
    assert store.flush(0.1)  # after close, flush still works (on the calling thread)


def test_bodies_come_from_disk_once_written(open_store):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    store.disk.write_body(1, ex.id, encode_body("", {"flow": {}, "request": {"body": "from disk"},
                                                     "response": {"text": "disk"}}))
    assert store.get(ex.id)["request"] == {"body": "from disk"}
    exported = json.loads(b"".join(store.export(ALL, "json")))
    assert exported[0]["response"] == {"text": "disk"}


def test_a_flow_whose_body_is_gone_says_so(open_store):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    store.disk.remove_body(1, ex.id)
    detail = store.get(ex.id)
    assert detail["body_missing"] is True and detail["request"] is None and detail["response"] is None


def test_unknown_flow_is_not_found(open_store):
    with pytest.raises(NotFound):
        open_store().get("0" * 32)


def test_finished_flows_are_counted_in_stats_at_once(open_store):
    store = open_store()
    add(store, 2)
    assert store.stats.summary()["since_start"]["requests"] == 2


def test_a_flow_finished_twice_is_recorded_once(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    ex = failed(ex, 500, "api_error", "failed after all", now=T0 + 3)
    store.finished(ex)  # again, before it was stored: the later state wins
    assert store.query(ALL)["total"] == 1 and store.query(ALL)["flows"][0]["state"] == "error"
    store.flush()
    size = on_disk(tmp_path)
    store.finished(ex)  # again, after it was stored: ignored
    store.flush()
    assert store.query(ALL)["total"] == 1 and on_disk(tmp_path) == size == store.counts()["bytes"]
    assert store.get(ex.id)["seq"] == 1 and store.get(ex.id)["error"]["message"] == "failed after all"


# ----- the request thread's share ----------------------------------------------------------------

def test_the_request_thread_neither_gathers_secrets_nor_names_accounts(open_store):
    callers: List[str] = []

    def secrets() -> List[str]:
        callers.append(threading.current_thread().name)
        return ["a-known-secret-value-123"]

    def account_name(account_id: str) -> str:
        callers.append(threading.current_thread().name)
        return "name"

    store = open_store(secrets=secrets, account_name=account_name)
    store.start()
    add(store, 3)
    assert callers == []  # finished() returned without either
    assert store.flush(10)
    assert callers and set(callers) == {"kiroproxy-flows"}


def test_what_the_request_does_after_finishing_never_reaches_the_record(open_store, tmp_path):
    store = open_store()
    ex = exchange("original question", reply=chat.Reply("m", [chat.Text("original answer")]), raw_body=None,
                  headers={"user-agent": "tests/1.0"})  # no raw bytes: snapshotted by finished()
    store.finished(ex)
    ex.body["messages"][0]["content"] = "changed question"
    ex.body["late"] = "added"
    ex.reply.parts.append(chat.Text(" and more"))
    ex.headers["user-agent"] = "changed"
    store.flush()
    record = read_body(tmp_path, ex.id)
    assert record["request"]["body"]["messages"][0]["content"] == "original question"
    assert "late" not in record["request"]["body"]
    assert record["response"]["text"] == "original answer"
    assert record["request"]["headers"] == {"user-agent": "tests/1.0"}
    assert [a["account_id"] for a in store.get(ex.id)["attempts"]] == ["acc-1"]


def test_secrets_are_masked_in_flows_not_written_yet(open_store):
    secret = "account-refresh-token-0123456789"
    store = open_store(secrets=lambda: [secret])
    ex = exchange(f"say {secret}", attempts=[Attempt("acc-1", "rotate", f"refresh {secret} failed")])
    ex = failed(ex, 502, "upstream", f"upstream said {secret}", now=T0 + 1)
    store.finished(ex)
    texts = [json.dumps(store.query(ALL)), json.dumps(store.get(ex.id)), json.dumps(store.recent(ALL, 5)),
             b"".join(store.export(ALL, "json")).decode()]
    for text in texts:
        assert secret not in text and MASK in text
    assert store.query(ALL)["flows"][0]["error"]["message"] == f"upstream said {MASK}"


def test_the_redactor_is_rebuilt_only_when_the_secrets_change(open_store, monkeypatch):
    from kiroproxy import redaction

    built: List[frozenset] = []
    real_init = redaction.Redactor.__init__

    def counting(self, secrets=()):
        real_init(self, secrets)
        built.append(self.key)

    monkeypatch.setattr(redaction.Redactor, "__init__", counting)
    known = ["first-secret-value-1"]
    store = open_store(secrets=lambda: list(known))
    built.clear()
    for n in range(3):
        add(store, 1, start=T0 + n)
        store.flush()
    assert built == [frozenset(known)]
    known.append("second-secret-value-2")
    add(store, 1, start=T0 + 10)
    store.flush()
    store.flush()
    assert built == [frozenset(known[:1]), frozenset(known)]


# ----- in-flight flows ---------------------------------------------------------------------------

def test_live_flows_come_first_newest_first_and_leave_when_finished(open_store):
    store = open_store(account_name=lambda account_id: f"name of {account_id}")
    (done,) = add(store, 1)
    first, second = in_flight(T0 + 10), in_flight(T0 + 20)
    store.started(first)
    store.started(second)
    second.streaming("acc-1", T0 + 21)
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
    first.completed()
    store.finished(first.ended(T0 + 11))
    assert ids(store.query(ALL)) == [second.id, first.id, done.id]
    assert store.query(ALL)["flows"][1]["seq"] == 2


def test_a_cursor_page_leaves_live_flows_out(open_store):
    store = open_store()
    add(store, 3)
    store.flush()
    live = in_flight(T0)
    store.started(live)
    page = store.query(ALL, limit=2)
    assert [f["seq"] for f in page["flows"]] == [0, 3] and page["next_cursor"] == 3
    rest = store.query(ALL, limit=2, cursor=page["next_cursor"])
    assert [f["seq"] for f in rest["flows"]] == [2, 1] and rest["total"] == 2
    assert live.id not in ids(rest)
    assert store.query(ALL, limit=1)["next_cursor"] is None  # a live row has no seq to go on from


# ----- queries -----------------------------------------------------------------------------------

@pytest.mark.parametrize("written", [False, True])
def test_filters_paging_and_cursor(open_store, written):
    store = open_store()
    made = add(store, 7)
    failed_one = exchange("broken zebra", answer=None, at=T0 + 100, protocol="openai")
    failed_one = failed(failed_one, 400, "invalid_request", "bad", now=T0 + 101)
    store.finished(failed_one)
    if written:
        store.flush()
    newest_first = [failed_one.id] + [ex.id for ex in reversed(made)]
    assert ids(store.query(ALL)) == newest_first
    assert ids(store.query(Filter(protocol="openai"))) == [failed_one.id]
    assert ids(store.query(Filter(has_error=True))) == [failed_one.id]
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


def test_stats_and_the_log_refuse_q(open_store):
    store = open_store()
    for call in (lambda: store.summary(Filter(q="x")), lambda: store.recent(Filter(q="x"), 5)):
        with pytest.raises(BadRequest) as raised:
            call()
        assert raised.value.param == "q"


# ----- bookmarks, notes, tags --------------------------------------------------------------------

def test_marks_before_the_flow_is_written_go_into_its_body(open_store, tmp_path):
    store = open_store()
    made = add(store, 2)
    target = made[0].id
    shown = store.update(target, bookmarked=True, note="look " * 1000, tags=[" bug ", "bug", "", "a" * 60, "x"])
    assert shown["bookmarked"] is True and len(shown["note"]) == 2000
    assert shown["tags"] == ["a" * 40, "bug", "x"] and "segment" not in shown
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


def test_marks_after_the_flow_is_written_leave_the_body_alone_and_survive_a_reopen(open_store, tmp_path):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    (path,) = (tmp_path / "flows" / "bodies").rglob(f"{ex.id}.json.gz")
    before = (path.read_bytes(), path.stat().st_ino)
    for n in range(5):
        store.update(ex.id, bookmarked=n % 2 == 0, note=f"note {n}")
        store.flush()
    assert (path.read_bytes(), path.stat().st_ino) == before  # a body file is written once
    store.close()
    again = open_store().get(ex.id)
    assert (again["bookmarked"], again["note"]) == (True, "note 4")


def test_unknown_flow_cannot_be_updated(open_store):
    with pytest.raises(NotFound):
        open_store().update("a" * 32, bookmarked=True)


# ----- export ------------------------------------------------------------------------------------

def test_export_json_and_jsonl(open_store):
    store = open_store()
    made = add(store, 3)
    store.flush()
    document = json.loads(b"".join(store.export(ALL, "json")))
    assert [f["id"] for f in document] == [ex.id for ex in reversed(made)]
    assert document[2]["request"]["body"]["messages"][0]["content"] == "question 0"
    assert document[2]["response"]["text"] == "answer 0"
    assert "segment" not in document[0]
    lines = b"".join(store.export(Filter(ids=(made[0].id, made[2].id)), "jsonl")).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [made[2].id, made[0].id]
    bare = json.loads(b"".join(store.export(ALL, "json", include_bodies=False)))
    assert "request" not in bare[0] and "response" not in bare[0] and bare[0]["id"] == made[2].id


def test_export_with_q_reads_the_flow_texts(open_store):
    store = open_store()
    made = [exchange(text, at=T0 + n) for n, text in enumerate(["Zebra one", "lion two", "zebra three"])]
    for ex in made:
        store.finished(ex)
    store.flush()
    later = exchange("a ZEBRA not written yet", at=T0 + 10)
    store.finished(later)
    lines = b"".join(store.export(Filter(q="zebra"), "jsonl")).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [later.id, made[2].id, made[0].id]


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


def test_finished_hands_over_the_exchange_and_the_writer_takes_its_snapshot(open_store, tmp_path, monkeypatch):
    store = open_store()
    taken: List[str] = []
    real_snapshot = flows_records.snapshot

    def snapshot(exchange, *args, **kwargs):
        taken.append(threading.current_thread().name)
        return real_snapshot(exchange, *args, **kwargs)

    monkeypatch.setattr(flows_records, "snapshot", snapshot)
    live = Exchange("anthropic", "/v1/messages", headers={"user-agent": "tests/1.0"}, received_at=T0)
    store.started(live)
    body = factories.anthropic_body("original question")
    live.read(body, json.dumps(body).encode())
    live.accepted(factories.request("original question"))
    live.answering()
    live.add(chat.TextDelta("original answer"))
    live.completed()
    store.finished(live.ended(T0 + 1))
    assert taken == []  # the request thread copied nothing
    body["messages"][0]["content"] = "changed question"  # the raw bytes are what is recorded
    live.add(chat.TextDelta(" and more"))
    live.fail(500, "api_error", "later")
    page = store.query(ALL)  # listed at once, as queued
    assert ids(page) == [live.id] and page["flows"][0]["state"] == "completed" and store.counts()["queued"] == 1
    assert page["flows"][0]["snippet"] == "original question" and store.counts()["in_flight"] == 0
    store.flush()
    assert len(taken) == 1  # once, by the listing; the writer used the same one
    record = read_body(tmp_path, live.id)
    assert record["request"]["body"]["messages"][0]["content"] == "original question"
    assert record["response"]["text"] == "original answer" and store.get(live.id)["state"] == "completed"
    assert store.counts()["queued"] == 0 and ids(store.query(ALL)) == [live.id]


def test_a_queued_exchange_counts_its_raw_body_in_the_backlog(open_store):
    store = open_store()
    small, large = exchange("q"), exchange("q" * 100_000)
    store.finished(small)
    after_small = store.counts()["backlog_bytes"]
    store.finished(large)
    assert after_small == flows_records.deferred_cost(small)
    assert store.counts()["backlog_bytes"] - after_small >= 3 * 100_000
