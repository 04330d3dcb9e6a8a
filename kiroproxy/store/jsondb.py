"""TinyDB behind a lock, written atomically (temp file, fsync, rename) with a chosen file mode.

TinyDB is not thread-safe and rewrites its file in place; this wrapper fixes both. Every
operation holds the lock for the in-memory change and the write; keep documents small.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from tinydb import Query, TinyDB
from tinydb.storages import Storage

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A store file cannot be read; the message names the file. Nothing is overwritten."""


def write_atomic(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never half.
    With `durable` False the file is renamed into place unsynced: the caller fsyncs it (and its
    folder) later, once for a batch of files."""
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so the names created or replaced in it survive a crash (best effort)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def make_folder(folder: Path) -> None:
    """Create `folder` and its missing parents, each 0700 (mkdir(parents=True) makes parents 0755)."""
    if folder.is_dir():
        return
    make_folder(folder.parent)
    folder.mkdir(mode=0o700, exist_ok=True)


def tidy(root: Path) -> None:
    """At start: remove the temp files a crash left behind (write_atomic's `.<name>.*.tmp`; they
    may hold whole token files) and make every folder 0700 and every file 0600 under `root`.
    Symbolic links are neither followed nor changed. One stat per file: a full flow store holds
    ten thousand of them, and this runs before the server answers."""
    if os.path.isdir(root):
        _chmod(str(root), os.stat(root).st_mode, 0o700)
        _tidy_folder(str(root))


def _tidy_folder(folder: str) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.warning("could not read the folder %s: %s", folder, exc)
        return
    for entry in entries:
        try:
            if entry.is_dir():  # a link to a folder counts as one, as in os.walk: left alone
                if not entry.is_symlink():
                    _chmod(entry.path, entry.stat(follow_symlinks=False).st_mode, 0o700)
                    _tidy_folder(entry.path)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                os.unlink(entry.path)
            elif not entry.is_symlink():
                _chmod(entry.path, entry.stat(follow_symlinks=False).st_mode, 0o600)
        except OSError as exc:
            log.warning("could not tidy %s: %s", entry.path, exc)


def _chmod(path: str, current: int, mode: int) -> None:
    if current & 0o777 != mode:
        os.chmod(path, mode)


class AtomicStorage(Storage):
    """TinyDB storage: JSON file replaced atomically on every write, cached in memory."""

    def __init__(self, path: str, mode: int = 0o600) -> None:
        self.path = Path(path)
        self.mode = mode
        self._cache: Optional[Dict[str, Any]] = None

    def read(self) -> Optional[Dict[str, Any]]:
        if self._cache is not None:
            return self._cache
        if not self.path.exists():
            return None
        raw = self.path.read_bytes()
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"{self.path} is not valid JSON ({exc}); fix or move it away") from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.path} does not hold a TinyDB document")
        self._cache = data
        return data

    def write(self, data: Dict[str, Any]) -> None:
        try:
            encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            write_atomic(self.path, encoded, self.mode)
        except BaseException:
            self._cache = None  # the in-memory copy may be ahead of the disk: reload next time
            raise
        self._cache = data

    def close(self) -> None:
        self._cache = None


class JsonDB:
    """A TinyDB file guarded by one lock. Documents are keyed by a string field (default 'id')."""

    def __init__(self, path: Path, mode: int = 0o600, key: str = "id") -> None:
        self.path = Path(path)
        self.key = key
        self.lock = threading.RLock()
        self._db = TinyDB(str(self.path), storage=AtomicStorage, mode=mode)
        if self.path.exists():
            os.chmod(self.path, mode)

    def all(self, table: str = "_default") -> List[Dict[str, Any]]:
        with self.lock:
            return [dict(doc) for doc in self._db.table(table).all()]

    def get(self, value: str, table: str = "_default") -> Optional[Dict[str, Any]]:
        with self.lock:
            doc = self._db.table(table).get(Query()[self.key] == value)
            return dict(doc) if doc is not None else None

    def upsert(self, doc: Dict[str, Any], table: str = "_default") -> None:
        with self.lock:
            self._db.table(table).upsert(doc, Query()[self.key] == doc[self.key])

    def remove(self, value: str, table: str = "_default") -> bool:
        with self.lock:
            return bool(self._db.table(table).remove(Query()[self.key] == value))

    def replace_all(self, docs: List[Dict[str, Any]], table: str = "_default") -> None:
        with self.lock:
            tbl = self._db.table(table)
            tbl.truncate()
            if docs:
                tbl.insert_multiple(docs)

    def update(self, value: str, change: Callable[[Dict[str, Any]], None], table: str = "_default") -> bool:
        """Apply `change` to the document in place under the lock; False if it does not exist."""
        with self.lock:
            tbl = self._db.table(table)
            doc = tbl.get(Query()[self.key] == value)
            if doc is None:
                return False
            updated = dict(doc)
            change(updated)
            tbl.update(updated, doc_ids=[doc.doc_id])
            return True

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.all())

    def close(self) -> None:
        with self.lock:
            self._db.close()
