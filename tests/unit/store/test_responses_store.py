"""Tests for store.responses: round trip, bounds and eviction order, restart, hostile ids,
corrupt files, concurrency and file modes."""
from __future__ import annotations

import gzip
import json
import logging
import os
import random
import stat
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

from kiroproxy.store import responses as store_module
from kiroproxy.store.responses import ResponseStore


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def a_record(n: int, size: int = 0) -> Dict[str, Any]:
    """A record shaped like protocols.responses.record(); `size` pads it to roughly that many bytes."""
    return {"response": {"id": f"resp_{n}", "object": "response", "status": "completed", "output": []},
            "items": [{"type": "message", "role": "user", "content": f"question {n} " + "x" * size}],
            "instructions": None}


def files_in(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def age(directory: Path, ids: List[str]) -> None:
    """Give the files of `ids` increasing modification times, oldest first (no sleeping)."""
    for offset, response_id in enumerate(ids):
        stamp = 1_700_000_000 + offset
        os.utime(directory / f"{response_id}.json.gz", (stamp, stamp))


@pytest.fixture
def permissive_umask():
    """A umask that would make new files world-readable, so 0600/0700 must be deliberate."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_round_trip_through_a_gzip_file(tmp_path):
    store = ResponseStore(tmp_path / "responses")
    record = a_record(1)
    record["items"].append({"type": "message", "role": "assistant", "content": "héllo ✓"})
    store.save("resp_1", record)
    assert store.get("resp_1") == record
    with gzip.open(tmp_path / "responses" / "resp_1.json.gz", "rb") as handle:
        assert json.loads(handle.read()) == record
    assert store.get("resp_2") is None


def test_large_records_are_compressed(tmp_path):
    store = ResponseStore(tmp_path / "responses")
    store.save("resp_big", a_record(1, size=400_000))
    assert (tmp_path / "responses" / "resp_big.json.gz").stat().st_size < 20_000
    assert len(store.get("resp_big")["items"][0]["content"]) > 400_000


def test_modes_are_private(tmp_path, permissive_umask):
    store = ResponseStore(tmp_path / "data" / "responses")
    store.save("resp_1", a_record(1))
    assert mode_of(tmp_path / "data" / "responses") == 0o700
    assert mode_of(tmp_path / "data" / "responses" / "resp_1.json.gz") == 0o600


def test_an_existing_open_directory_is_tightened(tmp_path):
    directory = tmp_path / "responses"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    ResponseStore(directory)
    assert mode_of(directory) == 0o700


def test_oldest_are_evicted_beyond_the_limit(tmp_path):
    directory = tmp_path / "responses"
    store = ResponseStore(directory, max_entries=3)
    for n in range(1, 6):
        store.save(f"resp_{n}", a_record(n))
    assert store.ids() == ["resp_3", "resp_4", "resp_5"]
    assert files_in(directory) == ["resp_3.json.gz", "resp_4.json.gz", "resp_5.json.gz"]
    assert store.get("resp_1") is None and store.get("resp_2") is None
    assert store.get("resp_5") == a_record(5)


def test_saving_again_makes_an_entry_newest(tmp_path):
    store = ResponseStore(tmp_path / "responses", max_entries=2)
    store.save("resp_a", a_record(1))
    store.save("resp_b", a_record(2))
    store.save("resp_a", a_record(3))
    store.save("resp_c", a_record(4))
    assert store.ids() == ["resp_a", "resp_c"]
    assert store.get("resp_a") == a_record(3)


def test_max_entries_zero_stores_nothing(tmp_path):
    directory = tmp_path / "responses"
    store = ResponseStore(directory, max_entries=0)
    store.save("resp_1", a_record(1))
    assert store.get("resp_1") is None and len(store) == 0 and files_in(directory) == []


def test_records_survive_a_restart_in_age_order(tmp_path):
    directory = tmp_path / "responses"
    first = ResponseStore(directory, max_entries=10)
    for name in ("resp_c", "resp_a", "resp_b"):
        first.save(name, a_record(ord(name[-1])))
    age(directory, ["resp_c", "resp_a", "resp_b"])
    second = ResponseStore(directory, max_entries=10)
    assert second.ids() == ["resp_c", "resp_a", "resp_b"]
    assert second.get("resp_a") == a_record(ord("a"))
    second.save("resp_d", a_record(4))
    assert second.ids()[-1] == "resp_d"


def test_a_lower_limit_at_restart_evicts_the_oldest(tmp_path):
    directory = tmp_path / "responses"
    first = ResponseStore(directory, max_entries=10)
    for n in range(4):
        first.save(f"resp_{n}", a_record(n))
    age(directory, ["resp_2", "resp_0", "resp_3", "resp_1"])
    second = ResponseStore(directory, max_entries=2)
    assert second.ids() == ["resp_3", "resp_1"]
    assert files_in(directory) == ["resp_1.json.gz", "resp_3.json.gz"]


def noisy_record(n: int, size: int = 4000) -> Dict[str, Any]:
    """A record that gzip cannot shrink much (seeded random hex), so its file size is predictable."""
    record = a_record(n)
    record["items"][0]["content"] = random.Random(n).getrandbits(size * 4).to_bytes(size // 2, "big").hex()
    return record


def stored_size(tmp_path: Path, record: Dict[str, Any]) -> int:
    """The compressed size of `record` as a store writes it."""
    probe = ResponseStore(tmp_path / "probe")
    probe.save("resp_probe", record)
    return (tmp_path / "probe" / "resp_probe.json.gz").stat().st_size


def test_oldest_are_evicted_beyond_the_byte_bound(tmp_path):
    directory = tmp_path / "responses"
    size = stored_size(tmp_path, noisy_record(1))
    assert size > 2000  # 2000 random bytes as hex: gzip cannot shrink them below that
    store = ResponseStore(directory, max_entries=100, max_bytes=size * 5 // 2)
    for n in range(1, 5):
        store.save(f"resp_{n}", noisy_record(n))
    assert store.ids() == ["resp_3", "resp_4"]
    assert files_in(directory) == ["resp_3.json.gz", "resp_4.json.gz"]
    assert store.total_bytes == sum(p.stat().st_size for p in directory.iterdir()) <= size * 5 // 2
    assert store.get("resp_1") is None and store.get("resp_4") == noisy_record(4)


def test_saving_again_counts_the_bytes_once(tmp_path):
    size = stored_size(tmp_path, noisy_record(1))
    store = ResponseStore(tmp_path / "responses", max_entries=100, max_bytes=size * 5 // 2)
    store.save("resp_a", noisy_record(1))
    store.save("resp_a", noisy_record(1))
    store.save("resp_b", noisy_record(2))
    assert store.ids() == ["resp_a", "resp_b"]


def test_a_record_larger_than_the_bound_is_not_stored(tmp_path, caplog):
    directory = tmp_path / "responses"
    small = stored_size(tmp_path, noisy_record(1, size=400))
    store = ResponseStore(directory, max_entries=100, max_bytes=small * 3)
    store.save("resp_small", noisy_record(1, size=400))
    with caplog.at_level(logging.WARNING, logger="kiroproxy.store.responses"):
        store.save("resp_huge", noisy_record(2, size=8000))
    assert store.get("resp_huge") is None and store.ids() == ["resp_small"]
    assert files_in(directory) == ["resp_small.json.gz"]
    assert "resp_huge" in caplog.text and "exceed" in caplog.text


def test_a_lower_byte_bound_at_restart_evicts_the_oldest(tmp_path):
    directory = tmp_path / "responses"
    size = stored_size(tmp_path, noisy_record(0))
    first = ResponseStore(directory)
    for n in range(4):
        first.save(f"resp_{n}", noisy_record(n))
    age(directory, ["resp_2", "resp_0", "resp_3", "resp_1"])
    second = ResponseStore(directory, max_bytes=size * 5 // 2)
    assert second.ids() == ["resp_3", "resp_1"]
    assert files_in(directory) == ["resp_1.json.gz", "resp_3.json.gz"]
    assert second.total_bytes == sum(p.stat().st_size for p in directory.iterdir())


def test_max_bytes_zero_stores_nothing(tmp_path, caplog):
    directory = tmp_path / "responses"
    ResponseStore(directory).save("resp_old", a_record(1))
    store = ResponseStore(directory, max_bytes=0)
    assert files_in(directory) == [] and len(store) == 0
    with caplog.at_level(logging.WARNING, logger="kiroproxy.store.responses"):
        store.save("resp_1", a_record(1))
    assert store.get("resp_1") is None and files_in(directory) == [] and caplog.text == ""


def test_the_default_byte_bound_is_finite(tmp_path):
    assert 0 < ResponseStore(tmp_path / "responses").max_bytes == store_module.DEFAULT_MAX_BYTES < 2**40


def test_strays_and_temp_files_are_not_entries(tmp_path):
    directory = tmp_path / "responses"
    directory.mkdir()
    (directory / ".resp_1.json.gz.123.456.tmp").write_bytes(b"half")
    (directory / "notes.txt").write_text("hi")
    (directory / "bad..id.json.gz").write_bytes(b"x")
    (directory / "resp_dir.json.gz").mkdir()
    store = ResponseStore(directory, max_entries=1)
    assert store.ids() == []
    store.save("resp_ok", a_record(1))
    assert "notes.txt" in files_in(directory) and store.ids() == ["resp_ok"]


HOSTILE = ["../resp_1", "resp_../../etc/passwd", "resp_a/b", "resp_a\\b", "resp_", "", "resp_a.json",
           "msg_123", "resp_\x00", "resp_" + "a" * 300, "/tmp/resp_1", "resp_a\n"]


@pytest.mark.parametrize("response_id", HOSTILE)
def test_hostile_ids_never_touch_the_filesystem(tmp_path, response_id):
    directory = tmp_path / "box" / "responses"
    store = ResponseStore(directory)
    (tmp_path / "box" / "resp_1.json.gz").write_bytes(gzip.compress(b'{"response": {}}'))
    assert store.get(response_id) is None
    with pytest.raises(ValueError):
        store.save(response_id, a_record(1))
    assert files_in(directory) == [] and files_in(tmp_path / "box") == ["resp_1.json.gz", "responses"]


def test_non_string_ids_are_missing(tmp_path):
    store = ResponseStore(tmp_path / "responses")
    assert store.get(None) is None and store.get(7) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("content", [
    b"not gzip at all", gzip.compress(b"{not json"), gzip.compress(b"[1, 2]"), gzip.compress(b"\xff\xfe"),
    gzip.compress(b'{"response": {}}')[:-6], b""])
def test_a_corrupt_file_reads_as_missing_and_is_logged(tmp_path, caplog, content):
    directory = tmp_path / "responses"
    store = ResponseStore(directory)
    (directory / "resp_bad.json.gz").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="kiroproxy.store.responses"):
        assert store.get("resp_bad") is None
    assert "resp_bad.json.gz" in caplog.text


def test_a_failed_write_is_logged_not_raised(tmp_path, caplog, monkeypatch):
    store = ResponseStore(tmp_path / "responses", max_entries=5)

    def disk_full(path, data, mode=0o600):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "write_atomic", disk_full)
    with caplog.at_level(logging.ERROR, logger="kiroproxy.store.responses"):
        store.save("resp_1", a_record(1))
    assert "resp_1" in caplog.text and "No space left" in caplog.text
    assert store.ids() == [] and store.get("resp_1") is None


def test_saves_never_rescan_the_directory(tmp_path, monkeypatch):
    store = ResponseStore(tmp_path / "responses", max_entries=3)

    def no_scans(*args, **kw):
        raise AssertionError("the directory was scanned after start")

    monkeypatch.setattr(os, "scandir", no_scans)
    monkeypatch.setattr(os, "listdir", no_scans)
    monkeypatch.setattr(Path, "iterdir", no_scans)
    monkeypatch.setattr(Path, "glob", no_scans)
    for n in range(6):
        store.save(f"resp_{n}", a_record(n))
        assert store.get(f"resp_{n}") == a_record(n)
    assert store.ids() == ["resp_3", "resp_4", "resp_5"]


def test_concurrent_saves_and_reads_stay_bounded_and_readable(tmp_path):
    directory = tmp_path / "responses"
    store = ResponseStore(directory, max_entries=40)
    threads_count, per_thread = 8, 30
    start = threading.Barrier(threads_count)
    failures: List[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(per_thread):
                response_id = f"resp_{worker}_{n}"
                store.save(response_id, a_record(worker * 1000 + n, size=2000))
                got = store.get(response_id)
                # It may already be evicted by the other writers, but never half-written.
                assert got is None or got == a_record(worker * 1000 + n, size=2000)
        except BaseException as exc:  # handed to the main thread, which fails the test
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures and not any(t.is_alive() for t in threads)
    ids = store.ids()
    assert len(ids) == 40 and len(set(ids)) == 40
    assert files_in(directory) == sorted(f"{i}.json.gz" for i in ids)
    for response_id in ids:
        worker, n = (int(x) for x in response_id[len("resp_"):].split("_"))
        assert store.get(response_id) == a_record(worker * 1000 + n, size=2000)
    # Each thread's own saves are evicted oldest first: what survives is a suffix of its sequence.
    for worker in range(threads_count):
        kept = sorted(int(i.split("_")[2]) for i in ids if i.startswith(f"resp_{worker}_"))
        assert kept == list(range(per_thread - len(kept), per_thread))
