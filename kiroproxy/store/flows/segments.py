"""The flow store's files: append-only index logs plus one compressed body file per flow.

    flows/index/seg-000042.jsonl      index log of up to SEGMENT_SIZE flows, one JSON object a line:
                                      {"add": entry} | {"set": id, <marks>} | {"del": [ids]}
    flows/bodies/000042/<id>.json.gz  body file, written once: two gzip members, the flow's
                                      search text, then its record JSON (whose long strings
                                      point into the search text instead of repeating it)

An index write appends a few lines (fsync'd), never rewrites history; a segment is rewritten
whole only when compacted or repaired, atomically. Body files are replaced atomically. No policy
here: what to write and when is the flow store's business.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

from .. import encoding
from ..encoding import utf8
from ..jsondb import sync_folder, write_atomic
from .records import restore

log = logging.getLogger(__name__)

SEGMENT_SIZE = 100
COMPRESSION = 5
_CHUNK = 64 * 1024
_SEGMENT_FILE = re.compile(r"^seg-(\d{6})\.jsonl$")
FLOW_ID = re.compile(r"^[0-9a-f]{32}\Z")  # \Z: "$" would accept a trailing newline
_BODY_SUFFIX = ".json.gz"


class DamagedBody(ValueError):
    """A body file that cannot be decoded."""


def line(record: Dict[str, Any]) -> bytes:
    """One index log line, newline included."""
    return utf8(json.dumps(record, ensure_ascii=False, separators=(",", ":"))) + b"\n"


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(COMPRESSION, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    return packer.compress(data) + packer.flush()


def encode_body(search: str, record: Dict[str, Any]) -> bytes:
    """A body file's bytes. Search text first, so a search stops reading after it."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    return _gzip(utf8(search)) + _gzip(utf8(text))


def _first_member(handle: BinaryIO) -> Tuple[bytes, bytes]:
    """(decompressed first gzip member, bytes read past it)."""
    unpacker = zlib.decompressobj(31)
    out: List[bytes] = []
    while not unpacker.eof:
        chunk = handle.read(_CHUNK)
        if not chunk:
            raise DamagedBody("cut short")
        out.append(unpacker.decompress(chunk))
    return b"".join(out), unpacker.unused_data


def _decode(data: bytes) -> str:
    return encoding.text(data)


def parse_record(data: bytes, search: str = "", flow_id: str = "") -> Optional[Dict[str, Any]]:
    """A body record from its JSON bytes and search text (see Disk.read_parts), its long
    strings put back; None when it is not one."""
    try:
        record = json.loads(_decode(data))
    except ValueError as exc:
        log.warning("flow body %s is unreadable: %s", flow_id, exc)
        return None
    if not isinstance(record, dict):
        return None
    return restore(record, search)


class Disk:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.index_dir = self.root / "index"
        self.bodies_dir = self.root / "bodies"
        for folder in (self.root, self.index_dir, self.bodies_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        self._folders: Set[str] = set()          # body folders known to exist (writer thread only)
        self._unsynced: List[str] = []           # bodies written with sync=False since sync()
        self._unsynced_folders: Set[str] = set()

    def segment_path(self, segment: int) -> Path:
        return self.index_dir / f"seg-{segment:06d}.jsonl"

    def body_folder(self, segment: int) -> Path:
        return self.bodies_dir / f"{segment:06d}"

    def body_path(self, segment: int, flow_id: str) -> Path:
        if not FLOW_ID.match(flow_id):
            raise ValueError(f"not a flow id: {flow_id!r}")
        return self.body_folder(segment) / f"{flow_id}{_BODY_SUFFIX}"

    def write_body(self, segment: int, flow_id: str, data: bytes, sync: bool = True) -> int:
        """Write one body file atomically (see encode_body); returns its size in bytes. With
        `sync` False it is renamed into place but not yet durable: call sync() before writing
        anything that names it (its index line), so a batch of bodies costs one sync."""
        path = self.body_path(segment, flow_id)
        if sync:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            write_atomic(path, data, 0o600)
            return len(data)
        folder = str(path.parent)
        if folder not in self._folders:
            if not os.path.isdir(folder):
                os.mkdir(folder, 0o700)
                self._unsynced_folders.add(str(self.bodies_dir))
            self._folders.add(folder)
        target = str(path)
        write_atomic(path, data, 0o600, durable=False)
        self._unsynced.append(target)
        self._unsynced_folders.add(folder)
        return len(data)

    def sync(self) -> None:
        """Make the bodies written with sync=False durable, with their folders: an fsync of each
        file, then of each folder they changed (once per batch, not once per flow). Only our own
        files: syncfs would also flush every other program's writes on the same disk (an SD card
        shared with the rest of the system). Raises OSError when the data may not be on disk."""
        if not self._unsynced and not self._unsynced_folders:
            return
        written, self._unsynced = self._unsynced, []
        folders, self._unsynced_folders = self._unsynced_folders, set()
        for path in written:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # evicted since
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for folder in sorted(folders, key=len, reverse=True):
            sync_folder(Path(folder))

    def remove_body(self, segment: int, flow_id: str) -> None:
        try:
            self.body_path(segment, flow_id).unlink()
        except FileNotFoundError:
            pass

    def read_parts(self, segment: int, flow_id: str) -> Optional[Tuple[str, bytes]]:
        """(search text as stored, record JSON bytes) of a body file; None when missing or
        unreadable."""
        try:
            with open(self.body_path(segment, flow_id), "rb") as handle:
                first, rest = _first_member(handle)
                rest += handle.read()
            if not rest:
                raise DamagedBody("no record after the search text")
            unpacker = zlib.decompressobj(31)
            data = unpacker.decompress(rest)
            if not unpacker.eof:
                raise DamagedBody("record cut short")
            return _decode(first), data
        except FileNotFoundError:
            return None
        except (OSError, zlib.error, DamagedBody, ValueError) as exc:
            log.warning("flow body %s is unreadable: %s", flow_id, exc)
            return None

    def read_record(self, segment: int, flow_id: str) -> Optional[Dict[str, Any]]:
        parts = self.read_parts(segment, flow_id)
        return parse_record(parts[1], parts[0], flow_id) if parts is not None else None

    def read_search(self, segment: int, flow_id: str) -> Tuple[Optional[str], int]:
        """(the flow's search text lowercased, bytes decompressed); (None, 0) when unreadable.
        Reads only the first member of the file."""
        try:
            with open(self.body_path(segment, flow_id), "rb") as handle:
                first, rest = _first_member(handle)
                if rest or handle.read(1):
                    return _decode(first).lower(), len(first)
            raise DamagedBody("no record after the search text")
        except FileNotFoundError:
            return None, 0
        except (OSError, zlib.error, DamagedBody, ValueError, AttributeError) as exc:
            log.warning("flow body %s is unreadable: %s", flow_id, exc)
            return None, 0

    def body_ids(self, segment: int) -> Dict[str, int]:
        """The flow ids with a body file in a segment's folder, with their sizes."""
        folder = self.body_folder(segment)
        found: Dict[str, int] = {}
        try:
            with os.scandir(folder) as items:
                for item in items:
                    flow_id = item.name[:-len(_BODY_SUFFIX)] if item.name.endswith(_BODY_SUFFIX) else ""
                    if FLOW_ID.match(flow_id):
                        try:
                            found[flow_id] = item.stat().st_size
                        except OSError:
                            pass
        except FileNotFoundError:
            pass
        return found

    def append(self, segment: int, records: List[Dict[str, Any]]) -> int:
        """Append lines to a segment's log and fsync; returns the file's new size."""
        path = self.segment_path(segment)
        data = b"".join(line(r) for r in records)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            before = os.fstat(fd).st_size
            if before and os.pread(fd, 1, before - 1) != b"\n":
                data = b"\n" + data  # never glue a line onto a fragment a failed write left
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, before)  # leave no half line for the next append to follow
                except OSError:
                    pass
                raise
            if not before:
                sync_folder(self.index_dir)
            return before + len(data)
        finally:
            os.close(fd)

    def rewrite(self, segment: int, records: List[Dict[str, Any]]) -> int:
        """Replace a segment's log atomically (removing it when empty); returns its size."""
        if not records:
            self.remove_segment(segment)
            return 0
        data = b"".join(line(r) for r in records)
        write_atomic(self.segment_path(segment), data, 0o600)
        return len(data)

    def remove_segment(self, segment: int) -> None:
        try:
            self.segment_path(segment).unlink()
        except FileNotFoundError:
            pass
        folder = self.body_folder(segment)
        self._folders.discard(str(folder))
        try:
            folder.rmdir()  # only when empty: a folder that still holds bodies stays
        except OSError:
            pass

    def read_log(self, segment: int) -> Tuple[List[Dict[str, Any]], bool]:
        """(the log's records, damaged). A last line cut short by a crash is cut off the file; a
        damaged line elsewhere moves the file aside (the caller rewrites the segment)."""
        path = self.segment_path(segment)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return [], False
        records: List[Dict[str, Any]] = []
        bad = 0
        lines = raw.split(b"\n")
        for n, text in enumerate(lines):
            if not text.strip():
                continue
            try:
                record = json.loads(_decode(text))
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif n == len(lines) - 1:  # the torn tail of an interrupted append
                with open(path, "r+b") as handle:
                    handle.truncate(len(raw) - len(text))
                log.info("flow index %s: dropped a line cut short by a crash", path.name)
            else:
                bad += 1
        if bad:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("flow index %s had %d damaged line(s); moved to %s and rebuilt", path.name, bad, aside.name)
        return records, bool(bad)

    def log_size(self, segment: int) -> int:
        try:
            return self.segment_path(segment).stat().st_size
        except OSError:
            return 0

    def segments(self) -> List[int]:
        found: Set[int] = set()
        for name in os.listdir(self.index_dir):
            match = _SEGMENT_FILE.match(name)
            if match:
                found.add(int(match.group(1)))
        for name in os.listdir(self.bodies_dir):
            if name.isdigit():
                found.add(int(name))
        return sorted(found)

    def sweep_temp_files(self) -> None:
        for folder, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(folder, name))
                    except OSError:
                        pass

    def size(self) -> int:
        total = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                try:
                    total += os.stat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total
