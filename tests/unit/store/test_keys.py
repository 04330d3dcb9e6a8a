"""The client key store: hashes only on disk, names, revocation, another process's change seen,
a damaged file refusing every key, and last-use writes at most once a minute per key."""
from __future__ import annotations

import json
import os

import pytest

from kiroproxy.errors import BadRequest, NotFound, ProxyError
from kiroproxy.store.keys import KeyStore, digest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_stored_as_its_hash_only(tmp_path):
    store = KeyStore(tmp_path)
    key, record = store.create("laptop")
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and digest(key) in text and record.prefix in text
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    assert store.verify(key) == "laptop" and store.verify(key + "x") is None and store.verify("") is None
    assert "hash" not in record.public()


def test_names_default_are_unique_and_checked(tmp_path):
    store = KeyStore(tmp_path)
    assert [store.create()[1].name for _ in range(3)] == ["key-1", "key-2", "key-3"]
    store.revoke("key-2")
    assert store.create()[1].name == "key-2"
    with pytest.raises(BadRequest):
        store.create("key-1")
    with pytest.raises(BadRequest):
        store.create("no spaces")


def test_revoke_by_name_or_prefix(tmp_path):
    store = KeyStore(tmp_path)
    key, record = store.create("a")
    store.create("b")
    assert store.revoke(record.prefix).name == "a"
    assert store.verify(key) is None
    with pytest.raises(NotFound):
        store.revoke("a")


def test_another_process_writing_the_file_is_seen(tmp_path):
    store = KeyStore(tmp_path)
    assert not store.any()
    key, _ = KeyStore(tmp_path).create("elsewhere")
    assert store.any() and store.verify(key) == "elsewhere"
    KeyStore(tmp_path).revoke("elsewhere")
    assert not store.any()


def test_a_damaged_file_refuses_instead_of_opening_up(tmp_path):
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(ProxyError) as raised:
        KeyStore(tmp_path).any()
    assert "keys.json" in raised.value.message


def test_last_use_is_noted_in_memory_and_written_at_most_once_a_minute(tmp_path):
    clock = Clock()
    store = KeyStore(tmp_path, clock=clock)
    key, _ = store.create("k")
    created = os.stat(tmp_path / "keys.json").st_mtime_ns
    store.verify(key)
    assert os.stat(tmp_path / "keys.json").st_mtime_ns == created  # never written on the request
    assert store.list()[0].last_used == clock.now  # but shown at once
    store.flush_usage()
    first = os.stat(tmp_path / "keys.json").st_mtime_ns
    (row,) = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert row["last_used"] == clock.now
    clock.now += 30
    store.verify(key)
    store.flush_usage()
    assert os.stat(tmp_path / "keys.json").st_mtime_ns == first  # less than a minute later
    assert store.list()[0].last_used == clock.now
    clock.now += 31
    store.flush_usage()
    (row,) = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert row["last_used"] == clock.now - 31  # the use noted 31 s ago, written now


def test_shutdown_writes_every_noted_use(tmp_path):
    clock = Clock()
    store = KeyStore(tmp_path, clock=clock)
    key, _ = store.create("k")
    store.verify(key)
    store.flush_usage()
    clock.now += 5
    store.verify(key)
    store.flush_usage(everything=True)
    (row,) = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert row["last_used"] == clock.now
    assert KeyStore(tmp_path).list()[0].last_used == clock.now  # another process reads it
