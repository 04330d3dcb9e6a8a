"""The flow store on disk: small TinyDB index segments plus one compressed body file per flow.

    flows/index/seg-000042.json     TinyDB: the index entries of up to SEGMENT_SIZE flows
    flows/bodies/000042/<id>.json.gz  the whole flow (entry + redacted bodies), gzip

Only the newest segment is rewritten as flows arrive, so a write costs at most one segment, not
the whole history. Every file is replaced atomically. Body files repeat their index entry, so a
segment lost to a crash or corruption is rebuilt from its bodies when the store opens.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from tinydb import TinyDB

from .jsondb import AtomicStorage, StoreError, write_atomic

log = logging.getLogger(__name__)

SEGMENT_SIZE = 100
_SEGMENT_FILE = re.compile(r"^seg-(\d{6})\.json$")
_FLOW_ID = re.compile(r"^[0-9a-f]{32}\Z")  # \Z: "$" would accept a trailing newline


class Disk:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.index_dir = self.root / "index"
        self.bodies_dir = self.root / "bodies"
        for folder in (self.root, self.index_dir, self.bodies_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    # ----- paths -------------------------------------------------------------------------

    def segment_path(self, segment: int) -> Path:
        return self.index_dir / f"seg-{segment:06d}.json"

    def body_path(self, segment: int, flow_id: str) -> Path:
        if not _FLOW_ID.match(flow_id):
            raise ValueError(f"not a flow id: {flow_id!r}")
        return self.bodies_dir / f"{segment:06d}" / f"{flow_id}.json.gz"

    # ----- writing -----------------------------------------------------------------------

    def write_body(self, segment: int, flow_id: str, record: Dict[str, Any]) -> int:
        """Write one flow's body file atomically; returns its size in bytes."""
        path = self.body_path(segment, flow_id)
        path.parent.mkdir(exist_ok=True)
        data = gzip.compress(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                             compresslevel=5)
        write_atomic(path, data, 0o600)
        return len(data)

    def write_segment(self, segment: int, entries: List[Dict[str, Any]]) -> int:
        """Replace a segment's index with `entries` (deleting it when empty); returns bytes written."""
        path = self.segment_path(segment)
        if not entries:
            self.remove_segment(segment)
            return 0
        storage = AtomicStorage(str(path))
        document = {"_default": {str(n + 1): entry for n, entry in enumerate(entries)}}
        storage.write(document)
        return path.stat().st_size

    def remove_body(self, segment: int, flow_id: str) -> None:
        try:
            self.body_path(segment, flow_id).unlink()
        except FileNotFoundError:
            pass

    def remove_segment(self, segment: int) -> None:
        try:
            self.segment_path(segment).unlink()
        except FileNotFoundError:
            pass
        folder = self.bodies_dir / f"{segment:06d}"
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    # ----- reading -----------------------------------------------------------------------

    def read_body(self, segment: int, flow_id: str) -> Optional[Dict[str, Any]]:
        try:
            raw = self.body_path(segment, flow_id).read_bytes()
            return json.loads(gzip.decompress(raw))
        except FileNotFoundError:
            return None
        except (OSError, EOFError, ValueError) as exc:
            log.warning("flow body %s is unreadable: %s", flow_id, exc)
            return None

    def body_size(self, segment: int, flow_id: str) -> int:
        try:
            return self.body_path(segment, flow_id).stat().st_size
        except OSError:
            return 0

    def segments(self) -> List[int]:
        found = set()
        for name in os.listdir(self.index_dir):
            match = _SEGMENT_FILE.match(name)
            if match:
                found.add(int(match.group(1)))
        for name in os.listdir(self.bodies_dir):
            if name.isdigit():
                found.add(int(name))
        return sorted(found)

    def load(self) -> Iterator[Tuple[int, List[Dict[str, Any]], bool]]:
        """Every segment's entries, oldest first: (segment, entries, repaired).

        A segment that is missing, truncated or corrupt is rebuilt from its body files; body
        files the index does not know (a crash between the two writes) are added back."""
        self._sweep_temp_files()
        for segment in self.segments():
            entries, repaired = self._read_segment(segment)
            known = {e["id"] for e in entries}
            folder = self.bodies_dir / f"{segment:06d}"
            if folder.is_dir():
                for name in os.listdir(folder):
                    flow_id = name[:-len(".json.gz")] if name.endswith(".json.gz") else ""
                    if flow_id and flow_id not in known and _FLOW_ID.match(flow_id):
                        entry = self._entry_from_body(segment, flow_id)
                        if entry is not None:
                            entries.append(entry)
                            repaired = True
            entries.sort(key=lambda e: e.get("seq", 0))
            if repaired:
                self.write_segment(segment, entries)
            yield segment, entries, repaired

    def _read_segment(self, segment: int) -> Tuple[List[Dict[str, Any]], bool]:
        path = self.segment_path(segment)
        if not path.exists():
            return [], True
        try:
            db = TinyDB(str(path), storage=AtomicStorage)
            entries = [dict(doc) for doc in db.all()]
            db.close()
            return entries, False
        except (StoreError, ValueError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("flow index %s was damaged (%s); moved to %s and rebuilt from flow bodies",
                        path.name, exc, aside.name)
            return [], True

    def _entry_from_body(self, segment: int, flow_id: str) -> Optional[Dict[str, Any]]:
        record = self.read_body(segment, flow_id)
        if not record or not isinstance(record.get("flow"), dict):
            return None
        entry = dict(record["flow"])
        entry["search"] = record.get("search", "")
        return entry

    def _sweep_temp_files(self) -> None:
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
