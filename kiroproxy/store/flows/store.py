"""The flow store: every request's record, listed from memory, searched and read from disk.

As an exchange observer, a request thread only queues its exchange's last snapshot (immutable)
and counts it in the stats; the writer thread (writer.py) copies, redacts, writes and enforces
the caps. Queries filter the small in-memory entries (written flows, plus queued and in-flight
ones rendered on the fly); `q` then reads search texts from disk, newest first, within a time
and byte budget.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ...errors import BadRequest, NotFound
from ...exchange import Exchange, ExchangeSnapshot
from ...redaction import Redactor
from ..encoding import utf8
from ..stats import Stats
from . import records, recovery, segments
from .index import Caps, Index
from .queries import Budget, Filter, scan, summarize, text_matches
from .writer import Pending, Writer

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0   # an idle writer still wakes this often to evict by age
SEGMENT_SIZE = segments.SEGMENT_SIZE
DEFAULT_BACKLOG = 64 * 2**20  # bytes of finished flows waiting for the writer before bodies are dropped


class FlowStore:
    """Thread-safe: request threads call started()/finished(), admin threads the queries, one
    writer thread stores. The store's lock guards the in-flight flows and the drop counters; the
    writer guards what is queued and stored with its own (taken inside the store's, never the
    other way round). Neither is held across disk I/O or a call to the pool."""

    def __init__(self, root: Path, stats: Stats, *, max_flows: int = 10_000, max_bytes: int = 512 * 2**20,
                 max_age_days: float = 30.0, secrets: Callable[[], Iterable[str]] = tuple,
                 account_name: Callable[[Optional[str]], str] = lambda account_id: "",
                 clock: Callable[[], float] = time.time, search: Optional[Budget] = None,
                 sweep_seconds: float = SWEEP_SECONDS, backlog_bytes: int = DEFAULT_BACKLOG,
                 disk: Optional[segments.Disk] = None) -> None:
        self.disk = disk or segments.Disk(root)
        self.stats = stats
        self.caps = Caps(max_flows, max_bytes, max_age_days * 86400)
        self.secrets = secrets
        self.account_name = account_name
        self.search_budget = search or Budget()  # ~1 s or 256 MB of text per `q` request
        self._lock = threading.Lock()
        self._live: Dict[str, Exchange] = {}
        self.backlog_bytes = backlog_bytes
        self.bodies_dropped = 0                  # flows queued without their bodies (backlog full)
        self.flows_dropped = 0                   # flows not kept at all (backlog twice full)
        self._redactor = Redactor()
        self._repaired = 0
        self._writer = Writer(self.disk, self._recover, stats, self.caps, self._redactor_now, self._name, clock,
                              sweep_seconds)

    def _recover(self) -> Index:
        """The stored flows, after repairing what a crash left (run once, by the writer)."""
        loaded = recovery.load(self.disk)
        self._repaired = sum(1 for s in loaded.segments if s.repaired)
        index = Index(SEGMENT_SIZE)
        index.load(loaded.segments)
        return index

    @property
    def repaired_segments(self) -> int:
        """Index segments the recovery had to repair (it runs first if it has not yet)."""
        self._writer.ready()
        return self._repaired

    def start(self) -> None:
        self._writer.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the writer thread."""
        self._writer.close(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is on disk (and the caps enforced)."""
        return self._writer.flush(timeout)

    def _redactor_now(self) -> Redactor:
        """The redactor for today's secrets, rebuilt only when they changed. Gathering them reads
        the account pool: never called under the store lock."""
        self._redactor = self._redactor.refreshed(list(self.secrets()))
        return self._redactor

    def started(self, exchange: Exchange) -> None:
        """Listed as in flight until finished(): rendered from exchange.snapshot() when read."""
        with self._lock:
            self._live[exchange.id] = exchange

    def finished(self, exchange: ExchangeSnapshot) -> None:
        """Queue the flow for the writer; never waits for the disk. The request thread hands over
        the immutable exchange itself (one lock, one append) and counts it in the stats; the
        writer takes its snapshot. While the queue holds more than backlog_bytes, the flow keeps
        its metadata only; past twice that, it is not kept."""
        backlog = self._writer.backlog_bytes
        if backlog >= 2 * self.backlog_bytes:
            with self._lock:
                self._live.pop(exchange.id, None)
                self.flows_dropped += 1
            self.stats.record(records.stats_entry(exchange))
            return
        keep = backlog < self.backlog_bytes
        source: Any = exchange
        if not keep:
            source = records.metadata_only(exchange)
        elif not isinstance(exchange.raw_body, bytes):
            source = records.snapshot(exchange)  # one pickle: the parsed body is all there is
        self._writer.ready()  # before our lock: a request starting meanwhile never waits for the recovery
        with self._lock:  # queued and no longer in flight at one moment, for the listings
            self._live.pop(exchange.id, None)
            if not keep:
                self.bodies_dropped += 1
            new = self._writer.queue(source)
        if new:
            self.stats.record(records.stats_entry(exchange))
            self._writer.wake()

    def update(self, flow_id: str, *, bookmarked: Optional[bool] = None, note: Optional[str] = None,
               tags: Optional[List[str]] = None) -> Dict[str, Any]:
        marks: Dict[str, Any] = {}
        if bookmarked is not None:
            marks["bookmarked"] = bookmarked
        if note is not None:
            marks["note"] = note[:2000]
        if tags is not None:
            marks["tags"] = sorted({t.strip()[:40] for t in tags if t.strip()})[:20]
        shown, pending = self._writer.mark(flow_id, marks)
        if pending is not None:
            return self._render_pending(pending, self._redactor_now())
        if shown is None:
            raise NotFound(f"no flow with id '{flow_id}' (in-flight flows can be marked once finished)")
        return shown

    def _name(self, account_id: Optional[str]) -> str:
        return self.account_name(account_id) if account_id else ""

    def _render_pending(self, pending: Pending, redactor: Redactor) -> Dict[str, Any]:
        entry = records.finish_entry(pending.snap.meta, pending.seq, self._name(pending.snap.meta["account_id"]),
                                     redactor)
        entry.update(self._writer.marks_of(pending))
        return entry

    def _render_live(self, exchange: ExchangeSnapshot, redactor: Redactor) -> Dict[str, Any]:
        entry = records.index_entry(exchange, 0, self._name(exchange.account_id))
        return records.finish_entry(entry, 0, entry["account_name"], redactor)

    def _text_of(self, entry: Dict[str, Any], source: Any, redactor: Redactor) -> Tuple[Optional[str], int]:
        """(a flow's search text lowercased, bytes it cost; None when unreadable): from disk when
        stored (source None), else from its Snapshot or an in-flight exchange's snapshot."""
        if source is None:
            return self.disk.read_search(entry["segment"], entry["id"])
        snap = source if isinstance(source, records.Snapshot) else records.snapshot(source, with_body=False)
        text = redactor.text(records.search_text(snap)).lower()
        return text, len(text)

    def _collect(self, keep: Callable[[Dict[str, Any]], bool], cursor: Optional[int],
                 live: bool = True) -> Tuple[List[Tuple[Dict[str, Any], Any]], List[Dict[str, Any]]]:
        """(fresh rows, stored entries) matching `keep`, newest first, taken at one moment (a flow
        being stored is in exactly one of them). Fresh rows are the in-flight flows (unless a
        cursor is given) then the queued ones, as (entry, source) where source is the in-flight
        exchange's snapshot or the queued Snapshot; their texts are masked (as every view shows
        them). Rendering them names accounts, which takes the pool's lock: done after the store
        lock is released."""
        self._writer.ready()
        with self._lock:
            running = list(self._live.values()) if live and cursor is None else []
            queued, stored = self._writer.select(keep, cursor)
        redactor = self._redactor_now() if running or queued else self._redactor
        now = [exchange.snapshot() for exchange in reversed(running)]
        rows = [(self._render_live(snapshot, redactor), snapshot) for snapshot in now]
        rows += [(self._render_pending(p, redactor), p.snap) for p in reversed(queued)]
        return [(entry, source) for entry, source in rows if keep(entry)], stored

    def query(self, flt: Filter, limit: int = 50, offset: int = 0,
              cursor: Optional[int] = None) -> Dict[str, Any]:
        """Newest first; in-flight flows first when they match (and no cursor is given).
        With `q`, see _search()."""
        if flt.words:
            return self._search(flt, limit, offset, cursor)
        rows, stored = self._collect(flt.predicate(), cursor)
        fresh = [entry for entry, _ in rows]
        total = len(fresh) + len(stored)
        page = (fresh + stored[:max(0, offset + limit - len(fresh))])[offset:offset + limit]
        shown = [records.public(e) for e in self._writer.copies(page)]
        last = page[-1]["seq"] if page else 0
        return {"flows": shown, "total": total, "next_cursor": last if last and offset + limit < total else None,
                "limit": limit, "offset": offset, "partial": False}

    def _search(self, flt: Filter, limit: int, offset: int, cursor: Optional[int]) -> Dict[str, Any]:
        """`q`: the metadata filters first (in memory), then the search texts of what is left,
        newest first, until `offset + limit` match or the budget is spent. `partial` says the
        budget ran out; `next_cursor` continues the scan where it stopped; `total` is known
        only when every candidate was read."""
        redactor = self._redactor_now()
        candidates, stored = self._collect(flt.predicate(), cursor)
        candidates += [(entry, None) for entry in stored]
        found = scan(candidates, flt.words, offset + limit,
                     lambda candidate: self._text_of(*candidate, redactor), self.search_budget)
        page = [entry for entry, _ in found.matched[offset:offset + limit]]
        shown = [records.public(e) for e in self._writer.copies(page)]
        newest = self._writer.newest()
        next_cursor = None
        if not found.complete and found.last is not None:
            next_cursor = found.last[0]["seq"] or newest + 1  # stopped among in-flight rows
        return {"flows": shown, "total": len(found.matched) if found.complete else None,
                "next_cursor": next_cursor, "limit": limit, "offset": offset, "partial": found.partial,
                "examined": found.examined}

    def get(self, flow_id: str) -> Dict[str, Any]:
        self._writer.ready()
        with self._lock:
            current, pending = self._writer.find(flow_id)
            live = self._live.get(flow_id)
        if current is not None:
            record = self.disk.read_record(current["segment"], flow_id)
            detail = records.public(current)
        elif pending is not None:
            redactor = self._redactor_now()
            detail = self._render_pending(pending, redactor)
            record = records.record_of(pending.snap, redactor)
        elif live is not None:
            return {**self._render_live(live.snapshot(), self._redactor_now()), "request": None, "response": None,
                    "in_flight": True}
        else:
            raise NotFound(f"no flow with id '{flow_id}'")
        detail["request"] = record.get("request") if record else None
        detail["response"] = record.get("response") if record else None
        detail["body_missing"] = record is None
        return detail

    def summary(self, flt: Filter) -> Dict[str, Any]:
        if flt.words:
            raise BadRequest("q works with GET /api/flows only; filter stats by fields", param="q")
        rows, stored = self._collect(flt.predicate(), None)
        return summarize([entry for entry, _ in rows] + stored)

    def recent(self, flt: Filter, limit: int) -> List[Dict[str, Any]]:
        """Finished flows, newest first (for the request log)."""
        if flt.words:
            raise BadRequest("q works with GET /api/flows only", param="q")
        rows, stored = self._collect(flt.predicate(), None, live=False)
        newest = [entry for entry, _ in rows][:limit]
        return newest + self._writer.copies(stored[:limit - len(newest)])

    def export(self, flt: Filter, fmt: str, include_bodies: bool = True) -> Iterator[bytes]:
        """The matching flows (newest first) as JSON or JSONL, streamed. Bodies come from disk,
        masked at write time and masked again with the secrets known today; `q` reads each
        candidate's search text (no budget: an export is asked for once)."""
        if fmt not in ("json", "jsonl"):
            raise BadRequest("format must be json or jsonl", param="format")
        chosen, stored = self._collect(flt.predicate(), None, live=False)
        chosen += [(entry, None) for entry in self._writer.copies(stored)]
        return self._export(chosen, flt.words, fmt, include_bodies)

    def _export(self, chosen: List[Tuple[Dict[str, Any], Any]], words: Tuple[str, ...], fmt: str,
                include_bodies: bool) -> Iterator[bytes]:
        redactor = self._redactor_now()
        yield b"[" if fmt == "json" else b""
        first = True
        for entry, snap in chosen:
            if words and not text_matches(words, self._text_of(entry, snap, redactor)[0]):
                continue
            item = redactor.redact(records.public(entry))
            if include_bodies:
                record = records.record_of(snap, redactor) if snap is not None else self._stored_record(entry, redactor)
                item["request"], item["response"] = (record or {}).get("request"), (record or {}).get("response")
            text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            if fmt == "json":
                yield utf8(("" if first else ",") + text)
            else:
                yield utf8(text + "\n")
            first = False
        yield b"]" if fmt == "json" else b""

    def _stored_record(self, entry: Dict[str, Any], redactor: Redactor) -> Optional[Dict[str, Any]]:
        """A body record from disk, masked again only if a secret known today occurs in it."""
        parts = self.disk.read_parts(entry["segment"], entry["id"])
        if parts is None:
            return None
        search, data = parts
        found = set(redactor.present_in_json(data)) | set(redactor.present(search))
        record = segments.parse_record(data, search, entry["id"])
        present = tuple(s for s in redactor.secrets if s in found)
        return redactor.redact(record, present) if present and record is not None else record

    def counts(self) -> Dict[str, Any]:
        stored = self._writer.counts()
        with self._lock:
            return {"flows": stored["flows"], "in_flight": len(self._live), "bytes": stored["bytes"],
                    "segments": stored["segments"], "queued": stored["queued"],
                    "backlog_bytes": stored["backlog_bytes"], "backlog_max_bytes": self.backlog_bytes,
                    "bodies_dropped": self.bodies_dropped, "flows_dropped": self.flows_dropped,
                    "oldest_at": stored["oldest_at"], "max_flows": self.caps.max_flows,
                    "max_bytes": self.caps.max_bytes, "max_age_days": self.caps.max_age / 86400}

    def account_of(self, flow_id: str) -> Optional[str]:
        return self._writer.account_of(flow_id)
