"""Client keys for /v1: keys.json in the data directory holds only their SHA-256 hashes.

A key is shown once, when it is created. The file is shared by the server and the command line:
every change is a read-modify-write under an exclusive lock on keys.json.lock, written atomically
(0600), and a reader notices another process's change by the file's identity (inode, size, mtime),
checked on every lookup, so a created or revoked key counts at once without a restart.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import BadRequest, NotFound, ProxyError
from .jsondb import write_atomic

try:
    import fcntl
except ImportError:  # Windows: one process at a time is the user's business there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

KEYS_FILE = "keys.json"
KEY_PREFIX = "sk-kp-"
SHOWN_PREFIX = len(KEY_PREFIX) + 6  # "sk-kp-" and six characters of the random part
LAST_USED_EVERY = 60.0  # seconds between writes of a key's last use
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    name: str
    prefix: str
    hash: str
    created: float
    last_used: Optional[float] = None

    def public(self) -> Dict[str, object]:
        """What may be shown: everything but the hash."""
        return {k: v for k, v in asdict(self).items() if k != "hash"}


class KeyStore:
    def __init__(self, home: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(home) / KEYS_FILE
        self.clock = clock
        self._lock = threading.Lock()
        self._records: Dict[str, KeyRecord] = {}  # by hash
        self._seen: Optional[Tuple[int, int, int]] = None
        self._last_written: Dict[str, float] = {}
        self._unwritten: Dict[str, float] = {}  # hash -> last use not yet in the file (see flush_usage)

    def _identity(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _read(self) -> Dict[str, KeyRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            rows = data["keys"]
            records = [KeyRecord(name=str(r["name"]), prefix=str(r["prefix"]), hash=str(r["hash"]),
                                 created=float(r["created"]), last_used=r.get("last_used")) for r in rows]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Refusing every client is safer than accepting any: the file exists, so keys were meant.
            raise ProxyError(f"{self.path} cannot be read ({type(exc).__name__}); fix or remove it",
                             status=500, kind="config_error") from None
        return {r.hash: r for r in records}

    def _current(self) -> Dict[str, KeyRecord]:
        """The records, re-read when another process (or thread) replaced the file."""
        identity = self._identity()
        with self._lock:
            if identity != self._seen:
                self._records = self._read() if identity is not None else {}
                self._seen = identity
            return self._records

    def any(self) -> bool:
        """Whether at least one key exists (then every /v1 call needs one)."""
        return bool(self._current())

    def list(self) -> List[KeyRecord]:
        """Every key, with its last use as this process knows it (also what is not written yet)."""
        with self._lock:
            unwritten = dict(self._unwritten)
        rows = [replace(r, last_used=round(unwritten[r.hash], 3)) if r.hash in unwritten else r
                for r in self._current().values()]
        return sorted(rows, key=lambda r: (r.created, r.name))

    def verify(self, key: str) -> Optional[str]:
        """The name of the key, or None when it is not one of ours. Notes its use in memory: the
        file is written by flush_usage() on the background thread, never on the request's."""
        if not key:
            return None
        hashed = digest(key)
        record = self._current().get(hashed)
        if record is None:
            return None
        now = self.clock()
        with self._lock:
            self._unwritten[hashed] = now
        return record.name

    def flush_usage(self, everything: bool = False) -> None:
        """Write the last uses noted since the previous flush, at most once a minute per key (the
        refresher's background pass calls this), or `everything` noted (at shutdown)."""
        now = self.clock()
        with self._lock:
            due = {h: at for h, at in self._unwritten.items()
                   if everything or now - self._last_written.get(h, float("-inf")) >= LAST_USED_EVERY}
            if not due:
                return
            for hashed in due:
                del self._unwritten[hashed]
                self._last_written[hashed] = now
        try:
            self._change(lambda rows: [_touch(rows, hashed, at) for hashed, at in due.items()])
        except (OSError, ProxyError) as exc:  # a read-only disk must not stop the background pass
            log.warning("could not note the use of %d client key(s): %s", len(due), exc)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(KEYS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _change(self, change: Callable[[Dict[str, KeyRecord]], object]) -> object:
        with self._exclusive():
            rows = self._read()
            result = change(rows)
            document = {"keys": [asdict(r) for r in sorted(rows.values(), key=lambda r: r.created)]}
            write_atomic(self.path, json.dumps(document, indent=1).encode("utf-8"), 0o600)
        self._current()
        return result

    def create(self, name: Optional[str] = None) -> Tuple[str, KeyRecord]:
        """(key, record): the key itself exists only in this answer."""
        if name is not None and not NAME.match(name):
            raise BadRequest("name must be 1-64 letters, digits or . _ @ - (starting with a letter or digit)",
                             param="name")
        key = KEY_PREFIX + secrets.token_urlsafe(32)

        def add(rows: Dict[str, KeyRecord]) -> KeyRecord:
            taken = {r.name for r in rows.values()}
            chosen = name or next(f"key-{n}" for n in range(1, len(taken) + 2) if f"key-{n}" not in taken)
            if chosen in taken:
                raise BadRequest(f"a key named '{chosen}' exists already; pick another name", param="name")
            record = KeyRecord(chosen, key[:SHOWN_PREFIX], digest(key), round(self.clock(), 3))
            rows[record.hash] = record
            return record

        return key, self._change(add)  # type: ignore[return-value]

    def revoke(self, name: str) -> KeyRecord:
        """Remove the key named `name` (or whose shown prefix is `name`); NotFound otherwise."""
        def drop(rows: Dict[str, KeyRecord]) -> KeyRecord:
            found = [r for r in rows.values() if r.name == name] or \
                    [r for r in rows.values() if len(name) >= SHOWN_PREFIX and r.prefix == name]
            if len(found) != 1:
                raise NotFound(f"no key named '{name}'" if not found else
                               f"'{name}' matches {len(found)} keys; revoke by name")
            return rows.pop(found[0].hash)

        return self._change(drop)  # type: ignore[return-value]


def _touch(rows: Dict[str, KeyRecord], hashed: str, now: float) -> None:
    record = rows.get(hashed)
    if record is not None:
        rows[hashed] = KeyRecord(record.name, record.prefix, record.hash, record.created, round(now, 3))
