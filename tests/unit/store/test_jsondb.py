"""Tests for store.jsondb: file mode, atomic replacement, thread safety, corrupt files."""
from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from kiroproxy.store import jsondb
from kiroproxy.store.jsondb import JsonDB, StoreError


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def on_disk(path: Path) -> dict:
    """The documents of the default table as stored in the file, by id."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {doc["id"]: doc for doc in raw.get("_default", {}).values()}


@pytest.fixture
def permissive_umask():
    """A umask that would make new files world-readable, so the 0600 mode must be deliberate."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_file_is_written_with_mode_0600(tmp_path, permissive_umask):
    path = tmp_path / "accounts.json"
    db = JsonDB(path)
    db.upsert({"id": "a", "secret": "s"})
    assert mode_of(path) == 0o600
    db.upsert({"id": "b"})
    assert mode_of(path) == 0o600


def test_existing_world_readable_file_is_tightened(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"_default": {"1": {"id": "a"}}}))
    os.chmod(path, 0o644)
    db = JsonDB(path)
    assert mode_of(path) == 0o600
    assert db.get("a") == {"id": "a"}


def test_custom_mode(tmp_path):
    path = tmp_path / "stats.json"
    JsonDB(path, mode=0o640).upsert({"id": "x"})
    assert mode_of(path) == 0o640


def test_parent_directories_are_created(tmp_path):
    path = tmp_path / "deep" / "er" / "db.json"
    JsonDB(path).upsert({"id": "x"})
    assert on_disk(path) == {"x": {"id": "x"}}


def test_writes_leave_no_temp_files(tmp_path):
    path = tmp_path / "db.json"
    db = JsonDB(path)
    for n in range(20):
        db.upsert({"id": str(n), "n": n})
    db.remove("3")
    db.update("4", lambda doc: doc.update(n=40))
    db.replace_all([{"id": "z"}], table="other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json"]


def test_failed_replace_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "db.json"
    db = JsonDB(path)
    db.upsert({"id": "a", "v": 1})
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(jsondb.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        db.upsert({"id": "a", "v": 2})
    with pytest.raises(OSError):
        db.upsert({"id": "b", "v": 3})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json"]
    # The in-memory copy did not run ahead of the disk.
    assert db.all() == [{"id": "a", "v": 1}]
    assert db.get("b") is None


def test_failed_write_then_success_writes_everything(tmp_path, monkeypatch):
    path = tmp_path / "db.json"
    db = JsonDB(path)
    db.upsert({"id": "a"})
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            raise OSError("transient")
        real_replace(src, dst)

    monkeypatch.setattr(jsondb.os, "replace", flaky)
    with pytest.raises(OSError):
        db.upsert({"id": "b"})
    db.upsert({"id": "c"})
    assert set(on_disk(path)) == {"a", "c"}


def test_write_atomic_failure_keeps_old_bytes(tmp_path, monkeypatch):
    path = tmp_path / "plain.bin"
    jsondb.write_atomic(path, b"old")
    monkeypatch.setattr(jsondb.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        jsondb.write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plain.bin"]


def test_concurrent_upserts_from_16_threads_lose_nothing(tmp_path):
    path = tmp_path / "db.json"
    db = JsonDB(path)
    start = threading.Barrier(16)
    failures = []

    def writer(worker: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(15):
                db.upsert({"id": f"{worker}-{n}", "worker": worker, "n": n})
                db.update(f"{worker}-{n}", lambda doc: doc.update(touched=True))
        except Exception as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    expected = {f"{w}-{n}" for w in range(16) for n in range(15)}
    assert {doc["id"] for doc in db.all()} == expected
    assert set(on_disk(path)) == expected
    assert all(doc["touched"] for doc in on_disk(path).values())
    assert {doc["id"] for doc in JsonDB(path).all()} == expected


@pytest.mark.parametrize("content", ['{"_default": {"1": {"id": "a"}', "not json at all", "[1, 2, 3]", '"text"'])
def test_corrupt_file_raises_and_is_not_overwritten(tmp_path, content):
    path = tmp_path / "db.json"
    path.write_text(content)
    db = JsonDB(path)
    with pytest.raises(StoreError) as caught:
        db.all()
    assert str(path) in str(caught.value)
    with pytest.raises(StoreError):
        db.upsert({"id": "new"})
    with pytest.raises(StoreError):
        db.replace_all([])
    assert path.read_text() == content


def test_empty_file_is_an_empty_database(tmp_path):
    path = tmp_path / "db.json"
    path.write_text("  \n")
    db = JsonDB(path)
    assert db.all() == []
    db.upsert({"id": "a"})
    assert on_disk(path) == {"a": {"id": "a"}}


def test_crud(tmp_path):
    db = JsonDB(tmp_path / "db.json")
    db.upsert({"id": "a", "v": 1})
    db.upsert({"id": "b", "v": 2})
    db.upsert({"id": "a", "v": 3})
    assert sorted((d["id"], d["v"]) for d in db) == [("a", 3), ("b", 2)]
    assert db.get("a") == {"id": "a", "v": 3}
    assert db.get("missing") is None
    assert db.update("b", lambda doc: doc.update(v=20)) is True
    assert db.update("missing", lambda doc: doc.update(v=0)) is False
    assert db.get("b") == {"id": "b", "v": 20}
    assert db.remove("a") is True
    assert db.remove("a") is False
    assert db.all() == [{"id": "b", "v": 20}]


def test_tables_are_separate_and_replace_all_swaps_one(tmp_path):
    path = tmp_path / "db.json"
    db = JsonDB(path)
    db.upsert({"id": "a"})
    db.replace_all([{"id": "x"}, {"id": "y"}], table="flows")
    db.replace_all([{"id": "z"}], table="flows")
    assert db.all() == [{"id": "a"}]
    assert db.all("flows") == [{"id": "z"}]
    db.replace_all([], table="flows")
    assert db.all("flows") == []


def test_custom_key(tmp_path):
    db = JsonDB(tmp_path / "db.json", key="name")
    db.upsert({"name": "n1", "v": 1})
    db.upsert({"name": "n1", "v": 2})
    assert db.all() == [{"name": "n1", "v": 2}]


def test_returned_documents_are_copies(tmp_path):
    db = JsonDB(tmp_path / "db.json")
    db.upsert({"id": "a", "v": 1})
    doc = db.get("a")
    doc["v"] = 99
    assert db.get("a") == {"id": "a", "v": 1}


def test_a_second_instance_reads_what_the_first_wrote(tmp_path):
    path = tmp_path / "db.json"
    first = JsonDB(path)
    first.upsert({"id": "a", "nested": {"k": [1, 2]}, "text": "ünïcode"})
    first.close()
    assert JsonDB(path).get("a") == {"id": "a", "nested": {"k": [1, 2]}, "text": "ünïcode"}
