"""The flow store: every request's record, searchable in memory, persisted by one writer thread.

As an exchange observer it adds the flow's index entry on the request thread (a dict copy) and
queues the rest; the writer thread redacts, compresses and writes bodies, rewrites the touched
index segments, enforces the caps (count, bytes, age; bookmarked flows are kept) and saves the
stats. Queries read the in-memory index under a lock, never the disk (except one flow's body).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..errors import BadRequest, NotFound
from ..exchange import Exchange
from ..redaction import redact
from . import records
from .queries import Filter, summarize
from .segments import SEGMENT_SIZE, Disk
from .stats import Stats

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.5
BATCH_MAX = 200


class FlowStore:
    def __init__(self, root: Path, stats: Stats, *, max_flows: int = 10_000, max_bytes: int = 512 * 2**20,
                 max_age_days: float = 30.0, secrets: Callable[[], Iterable[str]] = tuple,
                 account_name: Callable[[Optional[str]], str] = lambda account_id: "",
                 clock: Callable[[], float] = time.time) -> None:
        self.disk = Disk(root)
        self.stats = stats
        self.max_flows = max_flows
        self.max_bytes = max_bytes
        self.max_age = max_age_days * 86400
        self.secrets = secrets
        self.account_name = account_name
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Dict[str, Any]] = OrderedDict()  # seq order, oldest first
        self._segments: Dict[int, Set[str]] = {}
        self._live: Dict[str, Exchange] = {}
        self._unwritten: Dict[str, Exchange] = {}  # finished, body not on disk yet
        self._bytes = 0                       # body files
        self._index_bytes: Dict[int, int] = {}  # segment files
        self._index_entries: Dict[int, int] = {}  # how many entries each segment file holds
        self._queue: queue.Queue[Tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.repaired_segments = 0
        self._load()

    # ----- start-up ----------------------------------------------------------------------

    def _load(self) -> None:
        loaded: List[Dict[str, Any]] = []
        for segment, entries, repaired in self.disk.load():
            self.repaired_segments += int(repaired)
            for entry in entries:
                entry["segment"] = segment
                if not entry.get("size"):  # rebuilt from its body, or indexed before the body was written
                    entry["size"] = self.disk.body_size(segment, entry["id"])
                loaded.append(entry)
        loaded.sort(key=lambda e: e.get("seq", 0))
        for segment in {e["segment"] for e in loaded}:
            path = self.disk.segment_path(segment)
            self._index_bytes[segment] = path.stat().st_size if path.exists() else 0
            self._index_entries[segment] = sum(1 for e in loaded if e["segment"] == segment)
        for entry in loaded:
            self._entries[entry["id"]] = entry
            self._segments.setdefault(entry["segment"], set()).add(entry["id"])
            self._bytes += entry.get("size") or 0
        self._seq = max((e.get("seq", 0) for e in loaded), default=0)
        if self.repaired_segments:
            log.warning("flow store: %d index segment(s) rebuilt from flow bodies", self.repaired_segments)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kiroproxy-flows", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the writer thread."""
        if self._thread is None:
            self._write_batch(self._drain(block=False))
            return
        self.flush(timeout)
        self._stop.set()
        self._queue.put(("stop", None))  # wakes the writer at once instead of after its poll
        self._thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is on disk."""
        if self._thread is None:
            self._write_batch(self._drain(block=False))
            return True
        done = threading.Event()
        self._queue.put(("flush", done))
        return done.wait(timeout)

    # ----- observer (request threads) ----------------------------------------------------

    def started(self, exchange: Exchange) -> None:
        with self._lock:
            self._live[exchange.id] = exchange

    def finished(self, exchange: Exchange) -> None:
        name = self.account_name(exchange.account_id) if exchange.account_id else ""
        secrets = list(self.secrets())  # gathered outside the lock: it reads the account pool
        with self._lock:
            self._live.pop(exchange.id, None)
            self._seq += 1
            entry = records.index_entry(exchange, self._seq, name)
            records.redact_entry(entry, secrets)  # before any reader can see the entry
            segment = self._current_segment()
            entry["segment"], entry["size"] = segment, 0
            self._entries[entry["id"]] = entry
            self._segments.setdefault(segment, set()).add(entry["id"])
            self._unwritten[entry["id"]] = exchange
        self.stats.record(entry)
        self._queue.put(("flow", (exchange, entry)))

    def _current_segment(self) -> int:
        if not self._segments:
            return 1
        newest = max(self._segments)
        return newest if len(self._segments[newest]) < SEGMENT_SIZE else newest + 1

    # ----- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._drain(block=True)
            if batch:
                try:
                    self._write_batch(batch)
                except Exception:  # the writer must outlive one bad batch (disk full...)
                    log.exception("flow store: writing a batch failed")

    def _drain(self, block: bool) -> List[Tuple[str, Any]]:
        items: List[Tuple[str, Any]] = []
        deadline = time.monotonic() + BATCH_SECONDS
        while len(items) < BATCH_MAX:
            timeout = deadline - time.monotonic()
            try:
                if block and not items:
                    items.append(self._queue.get(timeout=BATCH_SECONDS))
                elif block and timeout > 0 and items[-1][0] not in ("flush", "stop"):
                    items.append(self._queue.get(timeout=timeout))
                else:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _write_batch(self, batch: List[Tuple[str, Any]]) -> None:
        dirty: Set[int] = set()
        flushes = []
        secrets = list(self.secrets())
        for kind, payload in batch:
            if kind == "flow":
                exchange, entry = payload
                dirty.add(self._write_flow(exchange, entry, secrets))
            elif kind == "update":
                dirty.update(self._rewrite_meta(payload, secrets))
            elif kind == "flush":
                flushes.append(payload)
        dirty.update(self._evict())
        while dirty:
            self._write_segments(dirty)
            # The byte cap counts the index files as last written: rewriting them may have grown
            # them past the cap, so evict again until what is on disk fits.
            dirty = self._evict()
        self.stats.save()
        for done in flushes:
            done.set()

    def _write_segments(self, dirty: Set[int]) -> None:
        for segment in sorted(dirty):
            with self._lock:
                entries = [dict(self._entries[i]) for i in self._segments.get(segment, ())
                           if i in self._entries]
            entries.sort(key=lambda e: e["seq"])
            written = self.disk.write_segment(segment, [{k: v for k, v in e.items() if k != "segment"}
                                                        for e in entries])
            with self._lock:
                self._index_bytes[segment] = written
                self._index_entries[segment] = len(entries)

    def _write_flow(self, exchange: Exchange, entry: Dict[str, Any], secrets: List[str]) -> int:
        with self._lock:
            if entry["id"] not in self._entries:  # evicted before the writer got to it: write nothing
                self._unwritten.pop(entry["id"], None)
                return entry["segment"]
            current = dict(entry)
        size = self.disk.write_body(current["segment"], current["id"],
                                    records.body_record(exchange, current, secrets))
        with self._lock:
            self._unwritten.pop(entry["id"], None)
            if entry["id"] in self._entries:  # not evicted meanwhile
                entry["size"] = size
                self._bytes += size
        return current["segment"]

    def _rewrite_meta(self, flow_id: str, secrets: List[str]) -> List[int]:
        with self._lock:
            entry = self._entries.get(flow_id)
            current = dict(entry) if entry else None
        if current is None:
            return []
        record = self.disk.read_body(current["segment"], flow_id)
        if record is not None:
            record["flow"] = redact(records.public(current), secrets)
            self.disk.write_body(current["segment"], flow_id, record)
        return [current["segment"]]

    def _total_bytes(self) -> int:
        """Body files plus index files. A segment file is counted as it will be once rewritten:
        scaled by its entries now over its entries when written (flows added or evicted since)."""
        total = self._bytes
        for segment, written in self._index_bytes.items():
            before = self._index_entries.get(segment, 0)
            total += written * len(self._segments.get(segment, ())) // before if before else written
        return total

    def _evict(self) -> Set[int]:
        now = self.clock()
        removed: List[Dict[str, Any]] = []
        with self._lock:
            for flow_id, entry in list(self._entries.items()):
                over = (len(self._entries) > self.max_flows or self._total_bytes() > self.max_bytes
                        or (self.max_age and (entry.get("received_at") or now) < now - self.max_age))
                if not over:
                    break
                if entry.get("bookmarked"):
                    continue
                del self._entries[flow_id]
                self._segments[entry["segment"]].discard(flow_id)
                self._bytes -= entry.get("size") or 0
                removed.append(entry)
        for entry in removed:
            self.disk.remove_body(entry["segment"], entry["id"])
        if removed:
            log.info("flow store: evicted %d old flow(s)", len(removed))
        return {e["segment"] for e in removed}

    # ----- queries -----------------------------------------------------------------------

    def _live_entries(self, flt: Filter) -> List[Dict[str, Any]]:
        """In-flight flows matching `flt`, newest first. Called without the store lock: naming an
        account takes the pool's lock, and locks are never nested."""
        with self._lock:
            live = list(self._live.values())
        entries = [records.index_entry(ex, 0, self.account_name(ex.account_id) if ex.account_id else "")
                   for ex in reversed(live)]
        return [e for e in entries if flt.matches(e)]

    def query(self, flt: Filter, limit: int = 50, offset: int = 0,
              cursor: Optional[int] = None) -> Dict[str, Any]:
        """Newest first. In-flight flows (pending / streaming) come first when they match."""
        live = self._live_entries(flt)
        with self._lock:
            matched = [e for e in reversed(self._entries.values())
                       if (cursor is None or e["seq"] < cursor) and flt.matches(e)]
        rows = (live if cursor is None else []) + matched
        page = rows[offset:offset + limit]
        next_cursor = page[-1]["seq"] if page and offset + limit < len(rows) and page[-1]["seq"] else None
        return {"flows": [records.public(e) for e in page], "total": len(rows), "next_cursor": next_cursor,
                "limit": limit, "offset": offset}

    def get(self, flow_id: str) -> Dict[str, Any]:
        with self._lock:
            entry = self._entries.get(flow_id)
            live = self._live.get(flow_id)
            unwritten = self._unwritten.get(flow_id)
            current = dict(entry) if entry else None
        if current is None:
            if live is not None:
                return {**records.public(records.index_entry(live, 0)), "request": None, "response": None,
                        "in_flight": True}
            raise NotFound(f"no flow with id '{flow_id}'")
        record = self._record(current, unwritten)
        detail = records.public(current)
        detail.pop("segment", None)
        detail["request"] = record.get("request") if record else None
        detail["response"] = record.get("response") if record else None
        detail["body_missing"] = record is None
        return detail

    def _record(self, entry: Dict[str, Any], unwritten: Optional[Exchange]) -> Optional[Dict[str, Any]]:
        if unwritten is not None:  # finished moments ago: the writer has not stored it yet
            return records.body_record(unwritten, entry, list(self.secrets()))
        return self.disk.read_body(entry["segment"], entry["id"])

    def update(self, flow_id: str, *, bookmarked: Optional[bool] = None, note: Optional[str] = None,
               tags: Optional[List[str]] = None) -> Dict[str, Any]:
        with self._lock:
            entry = self._entries.get(flow_id)
            if entry is None:
                raise NotFound(f"no flow with id '{flow_id}' (in-flight flows can be marked once finished)")
            if bookmarked is not None:
                entry["bookmarked"] = bookmarked
            if note is not None:
                entry["note"] = note[:2000]
            if tags is not None:
                entry["tags"] = sorted({t.strip()[:40] for t in tags if t.strip()})[:20]
            current = records.public(entry)
        self._queue.put(("update", flow_id))
        current.pop("segment", None)
        return current

    def summary(self, flt: Filter) -> Dict[str, Any]:
        entries = self._live_entries(flt)
        with self._lock:
            entries += [e for e in self._entries.values() if flt.matches(e)]
        return summarize(entries)

    def recent(self, flt: Filter, limit: int) -> List[Dict[str, Any]]:
        with self._lock:
            out = []
            for entry in reversed(self._entries.values()):
                if flt.matches(entry):
                    out.append(dict(entry))
                    if len(out) >= limit:
                        break
            return out

    def export(self, flt: Filter, fmt: str, include_bodies: bool = True) -> Iterator[bytes]:
        """The matching flows (newest first) as JSON or JSONL, streamed. Bodies come from disk,
        already redacted at write time and redacted again with today's secrets."""
        if fmt not in ("json", "jsonl"):
            raise BadRequest("format must be json or jsonl", param="format")
        with self._lock:
            chosen = [(dict(e), self._unwritten.get(e["id"])) for e in reversed(self._entries.values())
                      if flt.matches(e)]
        return self._export(chosen, fmt, include_bodies)

    def _export(self, chosen: List[Tuple[Dict[str, Any], Optional[Exchange]]], fmt: str,
                include_bodies: bool) -> Iterator[bytes]:
        secrets = list(self.secrets())
        yield b"[" if fmt == "json" else b""
        for n, (entry, unwritten) in enumerate(chosen):
            item = records.public(entry)
            item.pop("segment", None)
            if include_bodies:
                record = self._record(entry, unwritten) or {}
                item["request"], item["response"] = record.get("request"), record.get("response")
            text = json.dumps(redact(item, secrets), ensure_ascii=False, separators=(",", ":"))
            if fmt == "json":
                yield (("," if n else "") + text).encode("utf-8")
            else:
                yield (text + "\n").encode("utf-8")
        yield b"]" if fmt == "json" else b""

    def counts(self) -> Dict[str, Any]:
        with self._lock:
            return {"flows": len(self._entries), "in_flight": len(self._live), "bytes": self._total_bytes(),
                    "segments": len([s for s in self._segments.values() if s]), "queued": self._queue.qsize()}

    def account_of(self, flow_id: str) -> Optional[str]:
        with self._lock:
            entry = self._entries.get(flow_id)
            return entry.get("account_id") if entry else None
