"""Stored Responses API answers, so `previous_response_id` and `GET /v1/responses/{id}` work.

One gzip-compressed JSON file per response in a private directory, bounded by count and by
total (compressed) size, oldest evicted first. An in-memory index of ids and file sizes is built
once at start; no save rescans the directory. Never lets a client-supplied id name a path
outside that directory.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from ..redaction import Redactor, has_shapes
from . import encoding
from .encoding import utf8
from .jsondb import write_atomic

log = logging.getLogger(__name__)

SUFFIX = ".json.gz"
# "resp_" plus URL-safe characters only: no dots or slashes, so an id can never leave the directory.
ID_PATTERN = re.compile(r"resp_[A-Za-z0-9_-]{1,200}")
# Each record holds its whole conversation, so a long chain of follow-ups grows quadratically:
# bound the bytes too, not just the count. Compressed bytes on disk, over all stored records.
DEFAULT_MAX_BYTES = 256 * 2**20


def is_valid_id(response_id: object) -> bool:
    return isinstance(response_id, str) and ID_PATTERN.fullmatch(response_id) is not None


class ResponseStore:
    """Thread-safe and bounded: at most max_entries records and max_bytes compressed bytes.
    Either bound 0 stores nothing (and empties the directory at start); a single record larger
    than max_bytes is not stored (logged).

    get() answers None for unknown, invalid, evicted or unreadable ids; save() logs and drops a
    record it cannot write, so neither ever turns into a 500 for the client.
    """

    def __init__(self, path: Path, max_entries: int = 1000, max_bytes: int = DEFAULT_MAX_BYTES,
                 secrets: Callable[[], Iterable[str]] = tuple) -> None:
        self.path = Path(path)
        self.secrets = secrets
        self._redactor = Redactor()
        self.max_entries = max(0, int(max_entries))
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        self._index: OrderedDict[str, int] = OrderedDict(self._scan())  # id -> file size, oldest first
        self._bytes = sum(self._index.values())
        with self._lock:
            evicted = self._over_limit()
        self._delete(evicted)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    @property
    def total_bytes(self) -> int:
        """Compressed bytes of the stored records."""
        with self._lock:
            return self._bytes

    def ids(self) -> List[str]:
        """Stored ids, oldest first."""
        with self._lock:
            return list(self._index)

    def get(self, response_id: str) -> Optional[dict]:
        if not is_valid_id(response_id):
            log.debug("refusing to look up malformed response id %r", str(response_id)[:80])
            return None
        file = self._file(response_id)
        try:
            with gzip.open(file, "rb") as handle:
                record = json.loads(encoding.text(handle.read()))
        except FileNotFoundError:
            return None
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            # gzip.BadGzipFile is an OSError; a bad JSON or UTF-8 payload is a ValueError.
            log.warning("stored response %s is unreadable (%s); treating it as missing", file.name, exc)
            return None
        if not isinstance(record, dict):
            log.warning("stored response %s does not hold an object; treating it as missing", file.name)
            return None
        return record

    def save(self, response_id: str, record: dict) -> None:
        """Store `record` under `response_id` (a programming error raises ValueError if invalid)."""
        if not is_valid_id(response_id):
            raise ValueError(f"not a storable response id: {str(response_id)[:80]!r}")
        if self.max_entries == 0 or self.max_bytes == 0:
            return
        data = gzip.compress(utf8(self._masked(record)), compresslevel=6, mtime=0)
        if len(data) > self.max_bytes:
            log.warning("response %s is not stored: %d compressed bytes exceed the store's bound of %d",
                        response_id, len(data), self.max_bytes)
            return
        try:
            write_atomic(self._file(response_id), data, 0o600)
        except OSError as exc:
            log.error("could not store response %s: %s", response_id, exc)
            return
        with self._lock:
            self._bytes += len(data) - self._index.pop(response_id, 0)
            self._index[response_id] = len(data)
            evicted = self._over_limit()
        self._delete(evicted)

    def _masked(self, record: dict) -> str:
        """The record as JSON with secrets masked as in flows (known secrets and key shapes): a
        follow-up then replays the conversation with them masked too."""
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self._redactor = redactor = self._redactor.refreshed(list(self.secrets()))
        present = redactor.present_in_json(utf8(text))
        if not present and not has_shapes(text):
            return text
        return json.dumps(redactor.redact(record, present), ensure_ascii=False, separators=(",", ":"))

    def _file(self, response_id: str) -> Path:
        return self.path / (response_id + SUFFIX)

    def _scan(self) -> List[Tuple[str, int]]:
        """(id, file size) of the stored records, oldest first (by modification time, then name)."""
        found = []
        for entry in os.scandir(self.path):
            name = entry.name
            if not name.endswith(SUFFIX) or not entry.is_file():
                continue  # temp files of interrupted writes, strays
            response_id = name[:-len(SUFFIX)]
            if not is_valid_id(response_id):
                continue
            try:
                info = entry.stat()
            except FileNotFoundError:
                continue
            found.append((info.st_mtime_ns, response_id, info.st_size))
        found.sort()
        return [(response_id, size) for _, response_id, size in found]

    def _over_limit(self) -> List[str]:
        """Pop the oldest ids beyond max_entries or max_bytes from the index; the caller deletes
        their files. Called with the lock held."""
        evicted = []
        while self._index and (len(self._index) > self.max_entries or self._bytes > self.max_bytes):
            response_id, size = self._index.popitem(last=False)
            self._bytes -= size
            evicted.append(response_id)
        return evicted

    def _delete(self, response_ids: List[str]) -> None:
        for response_id in response_ids:
            try:
                self._file(response_id).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove evicted response %s: %s", response_id, exc)
