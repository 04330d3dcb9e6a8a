"""The flow writer: owns what is stored and what waits to be, and the thread that stores it.

The store hands it finished flows (queue), asks it about flows (select, find, mark, counts) and to
flush or close; the index of written flows, the queue and the unlogged marks change only here,
under the writer's own lock. Per batch: gather the known secrets once (the redactor is rebuilt
only when they changed), redact and serialise each flow, decide evictions for every cap
*counting the incoming bytes*, remove the evicted bodies, write the new body files and make them
durable together (one sync for the batch), and only then append the index lines that name them
(one fsync per touched segment). So the disk never goes past its cap, and after a crash no index
line points at a body that was never written. Wakes on its own now and then to evict by age on
an idle server. Never stores on a request thread.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from ...exchange import ExchangeSnapshot
from ...redaction import Redactor
from ..stats import Stats
from . import records, segments
from .index import Caps, Incoming, Index

log = logging.getLogger(__name__)

# A batch gathers flows for this long (unless flushed): a finished flow is on disk within about
# a second, so a crash loses at most the last second of flows.
BATCH_SECONDS = 0.25
BATCH_MAX = 200

Source = Union[ExchangeSnapshot, records.Snapshot]


class Pending:
    """A finished flow not stored yet. `source` is what finished() queued: the exchange itself
    (immutable; the usual case, so the request thread copies nothing) or a Snapshot taken at once
    (a body without its raw bytes, or a backlog too full to keep bodies). `marks` (bookmark, note,
    tags given before it was stored) changes only under the writer's lock."""

    __slots__ = ("source", "seq", "marks", "cost", "_snap")

    def __init__(self, source: Source, seq: int, marks: Dict[str, Any], cost: int = 0) -> None:
        self.source, self.seq, self.marks = source, seq, marks
        self.cost = cost  # bytes of memory it holds (records.cost / records.deferred_cost)
        self._snap = source if isinstance(source, records.Snapshot) else None

    @property
    def id(self) -> str:
        return self.source.id

    @property
    def snap(self) -> records.Snapshot:
        """The flow's Snapshot, taken from the exchange the first time anyone reads it (the writer
        or a listing, off the request thread). Two threads taking it at once take equal ones."""
        snap = self._snap
        if snap is None:
            snap = self._snap = records.snapshot(self.source)
        return snap


class Backlog(Dict[str, Pending]):
    """The flows waiting for the writer, in seq order, and the bytes they hold (`bytes`). Set
    items with [] and remove them with pop(): both keep the count."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __setitem__(self, flow_id: str, pending: Pending) -> None:
        earlier = super().get(flow_id)
        self.bytes += pending.cost - (earlier.cost if earlier is not None else 0)
        super().__setitem__(flow_id, pending)

    def pop(self, flow_id: str, default: Any = None) -> Any:  # type: ignore[override]
        pending = super().pop(flow_id, None)
        if pending is None:
            return default
        self.bytes -= pending.cost
        return pending


@dataclass(frozen=True)
class Ready:
    """A pending flow prepared by the writer: its entry, body file bytes and index line."""

    pending: Pending
    entry: Dict[str, Any]
    data: bytes
    line: Dict[str, Any]
    line_size: int


def marks_line(entry: Dict[str, Any]) -> Dict[str, Any]:
    return {"set": entry["id"], "bookmarked": entry.get("bookmarked", False), "note": entry.get("note", ""),
            "tags": entry.get("tags", [])}


class Writer:
    """Thread-safe: request and admin threads call queue() and the readers, one thread writes.
    Its lock guards the index, the queue and the marks, never the disk."""

    def __init__(self, disk: segments.Disk, load: Callable[[], Index], stats: Stats, caps: Caps,
                 redactor: Callable[[], Redactor], account_name: Callable[[Optional[str]], str],
                 clock: Callable[[], float], sweep_seconds: float) -> None:
        """`load` reads the written flows from disk (the recovery); it runs once, before anything
        reads or writes the index: first thing on the writer's thread, so not on the server's
        start-up (a full store takes a third of a second), or sooner on whoever needs it first.
        From then on the index is this writer's alone."""
        self.disk, self.stats, self.caps = disk, stats, caps
        self._load = load
        self._index: Optional[Index] = None
        self._loading = threading.Lock()
        self.redactor, self.account_name, self.clock = redactor, account_name, clock
        self.sweep_seconds = sweep_seconds
        self._lock = threading.Lock()
        self._pending = Backlog()                # finished, not stored yet; seq order
        self._dirty: Set[str] = set()            # ids whose marks changed since their last index line
        self._waiters: List[threading.Event] = []
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def ready(self) -> Index:
        """The written flows, loaded first if nobody has yet (a load in progress is waited for)."""
        if self._index is not None:
            return self._index
        with self._loading:
            if self._index is None:
                self._index = self._load()
            return self._index

    @property
    def index(self) -> Index:
        return self._index if self._index is not None else self.ready()

    @property
    def backlog_bytes(self) -> int:
        """Bytes the queue holds, read without the lock: a bound, not an exact count."""
        return self._pending.bytes

    def queue(self, source: Source) -> bool:
        """Take a finished flow to store (the caller wakes the writer): its exchange, when it has
        the client's raw body (see records.deferred_cost), else its Snapshot. False when the flow
        was known: finished twice before it was stored (the later state wins), or stored already."""
        cost = records.cost(source) if isinstance(source, records.Snapshot) else records.deferred_cost(source)
        with self._lock:
            earlier = self._pending.get(source.id)
            if earlier is not None:
                self._pending[source.id] = Pending(source, earlier.seq, earlier.marks, cost)
                return False
            if source.id in self.index.entries:
                log.debug("flow %s finished again after it was stored; ignored", source.id)
                return False
            self.index.seq += 1
            self._pending[source.id] = Pending(source, self.index.seq, {}, cost)
            return True

    def mark(self, flow_id: str, marks: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[Pending]]:
        """Set marks on a stored or queued flow: (its entry as shown, None) when stored, (None,
        its Pending) when queued, (None, None) when unknown."""
        with self._lock:
            entry = self.index.get(flow_id)
            pending = self._pending.get(flow_id)
            if entry is None and pending is None:
                return None, None
            (entry if entry is not None else pending.marks).update(marks)
            self._dirty.add(flow_id)
            shown = records.public(entry) if entry is not None else None
        self.wake()
        return shown, (pending if shown is None else None)

    def marks_of(self, pending: Pending) -> Dict[str, Any]:
        with self._lock:
            return dict(pending.marks)

    def select(self, keep: Callable[[Dict[str, Any]], bool],
               cursor: Optional[int]) -> Tuple[List[Pending], List[Dict[str, Any]]]:
        """(queued flows, stored entries matching `keep` newest first), before `cursor` if given,
        taken at one moment. Stored entries change with their marks: copy them with copies()."""
        with self._lock:
            queued = [p for p in self._pending.values() if cursor is None or p.seq < cursor]
            stored = [e for e in reversed(self.index.entries.values())
                      if (cursor is None or e["seq"] < cursor) and keep(e)]
        return queued, stored

    def copies(self, entries: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in entries]

    def find(self, flow_id: str) -> Tuple[Optional[Dict[str, Any]], Optional[Pending]]:
        """(a copy of its entry, None) when stored, (None, its Pending) when queued."""
        with self._lock:
            entry = self.index.get(flow_id)
            if entry is not None:
                return dict(entry), None
            return None, self._pending.get(flow_id)

    def newest(self) -> int:
        with self._lock:
            return self.index.seq

    def account_of(self, flow_id: str) -> Optional[str]:
        with self._lock:
            entry = self.index.get(flow_id)
            if entry is not None:
                return entry.get("account_id")
            pending = self._pending.get(flow_id)
            return pending.snap.meta.get("account_id") if pending is not None else None

    def counts(self) -> Dict[str, Any]:
        with self._lock:
            oldest = next(iter(self.index.entries.values()), None)
            return {"flows": len(self.index.entries) + len(self._pending), "bytes": self.index.total_bytes(),
                    "segments": self.index.segment_count(), "queued": len(self._pending),
                    "backlog_bytes": self._pending.bytes,
                    "oldest_at": oldest.get("received_at") if oldest else None}

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="kiroproxy-flows", daemon=True)
            self._thread.start()

    def wake(self, urgent: bool = False) -> None:
        """Store soon; at once when `urgent` or a whole batch is queued."""
        self._wake.set()
        if urgent or len(self._pending) >= BATCH_MAX:
            self._urgent.set()

    def close(self, timeout: float) -> None:
        """Write everything queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            self.cycle()
            return
        self._stopping.set()
        self.wake(urgent=True)
        thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float) -> bool:
        if self._thread is None:  # not started: write on the calling thread
            self.cycle()
            return True
        done = threading.Event()
        with self._lock:
            self._waiters.append(done)
        self.wake(urgent=True)
        return done.wait(timeout)

    def _run(self) -> None:
        try:
            self.ready()  # now, off the thread that started us
        except Exception:  # retried by the next caller; the thread must live on
            log.exception("flow store: reading the stored flows failed")
        while True:
            if self._wake.wait(self.sweep_seconds) and not self._urgent.is_set():
                self._urgent.wait(BATCH_SECONDS)  # let the flows of the next moments join the batch
            self._wake.clear()
            self._urgent.clear()
            stopping = self._stopping.is_set()
            try:
                self.cycle()
            except Exception:  # the writer must outlive one bad batch (disk full...)
                log.exception("flow store: writing a batch failed")
            if stopping:
                return

    def cycle(self) -> None:
        """Write what is pending now (in batches), enforce the caps, then wake the flushers."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
            target = self.index.seq
        while True:
            with self._lock:
                batch = list(islice(self._pending.values(), BATCH_MAX))
            self._write_batch(batch)
            with self._lock:
                first = next(iter(self._pending.values()), None)
            if first is None or first.seq > target:
                break
        for done in waiters:
            done.set()

    def _write_batch(self, batch: List[Pending]) -> None:
        redactor = self.redactor()
        ready = [r for r in (self._prepare(p, redactor) for p in batch) if r is not None]
        with self._lock:
            marked = [self.index.entries[i] for i in self._dirty if i in self.index.entries]
            extra = sum(len(segments.line(marks_line(e))) for e in marked)
            plan = self.index.plan([Incoming(r.entry["id"], r.entry.get("received_at") or 0.0,
                                             bool(r.entry.get("bookmarked")), len(r.data) + r.line_size)
                                    for r in ready], self.clock(), self.caps, extra)
            emptied = self.index.remove(plan.victims)
            for flow_id in plan.dropped:
                self._pending.pop(flow_id, None)
        if plan.too_big:
            log.warning("flow store: %d flow(s) larger than the %d-byte cap allows were not stored",
                        len(plan.too_big), self.caps.max_bytes)
        for entry in plan.victims:  # evict first: the new bodies never take the disk past the cap
            self.disk.remove_body(entry["segment"], entry["id"])
        for segment in emptied:
            self.disk.remove_segment(segment)
            with self._lock:
                self.index.forget(segment)
        if plan.victims:
            log.info("flow store: evicted %d old flow(s)", len(plan.victims))
        lines: Dict[int, List[Dict[str, Any]]] = {}
        for item in ready:
            if item.entry["id"] not in plan.dropped:
                self._store(item, lines)
        try:
            self.disk.sync()  # the batch's bodies are durable before an index line names them
        except OSError as exc:
            log.error("flow store: syncing the new flow bodies failed: %s", exc)
        self._log(lines, [e for e in plan.victims if e["segment"] not in emptied])
        self.stats.save()

    def _prepare(self, pending: Pending, redactor: Redactor) -> Optional[Ready]:
        try:
            snap = pending.snap
            prepared = records.prepare(snap, pending.seq, self.account_name(snap.meta["account_id"]), redactor)
        except Exception:  # one flow that cannot be recorded must not stop the others
            log.exception("flow store: flow %s could not be recorded", pending.id)
            with self._lock:
                self._pending.pop(pending.id, None)
            return None
        with self._lock:
            marks = dict(pending.marks)
            self._dirty.discard(pending.id)  # its add line carries them
        prepared.entry.update(marks)
        prepared.record["flow"].update(marks)
        data = segments.encode_body(prepared.search, prepared.record)
        prepared.entry["size"] = len(data)
        line = {"add": records.public(prepared.entry)}
        return Ready(pending, prepared.entry, data, line, len(segments.line(line)))

    def _store(self, item: Ready, lines: Dict[int, List[Dict[str, Any]]]) -> None:
        """Write one body file, then make the flow a stored one (its index line is queued)."""
        flow_id = item.entry["id"]
        with self._lock:
            segment = self.index.segment_for_new()
        try:
            self.disk.write_body(segment, flow_id, item.data, sync=False)
        except OSError as exc:
            log.error("flow store: flow %s not stored: %s", flow_id, exc)
            with self._lock:
                self._pending.pop(flow_id, None)
            return
        with self._lock:
            marks = item.pending.marks
            if any(item.entry.get(k) != v for k, v in marks.items()):  # marked while being written
                item.entry.update(marks)
                self._dirty.add(flow_id)
            self.index.commit(item.entry, segment)
            self._pending.pop(flow_id, None)
        lines.setdefault(segment, []).append(item.line)

    def _log(self, lines: Dict[int, List[Dict[str, Any]]], victims: List[Dict[str, Any]]) -> None:
        """Append this batch's index lines (adds, marks, evictions); one fsync per segment."""
        with self._lock:
            dirty = set(self._dirty)
            self._dirty.clear()
            for flow_id in dirty:
                entry = self.index.entries.get(flow_id)
                if entry is not None:
                    lines.setdefault(entry["segment"], []).append(marks_line(entry))
                elif flow_id in self._pending:
                    self._dirty.add(flow_id)  # not stored yet: its add line will carry the marks
        gone: Dict[int, List[str]] = {}
        for entry in victims:
            gone.setdefault(entry["segment"], []).append(entry["id"])
        for segment, ids in gone.items():
            lines.setdefault(segment, []).append({"del": ids})
        for segment, new in sorted(lines.items()):
            self._append(segment, new)

    def _append(self, segment: int, new: List[Dict[str, Any]]) -> None:
        with self._lock:
            live: List[Dict[str, Any]] = []
            if self.index.needs_compaction(segment, len(new)):
                live = [{"add": records.public(self.index.entries[i])} for i in self.index.segment_ids(segment)]
            room = self.caps.max_bytes - self.index.total_bytes()
        # Compacting writes the whole log anew, briefly beside the old one: only when that fits.
        if live and sum(len(segments.line(r)) for r in live) <= room:
            size = self.disk.rewrite(segment, live)
            with self._lock:
                self.index.logged(segment, size, len(live), rewritten=True)
            return
        size = self.disk.append(segment, new)
        with self._lock:
            self.index.logged(segment, size, len(new))
