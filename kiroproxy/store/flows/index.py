"""The flow store's in-memory index of written flows: entries in seq order, which segment holds
each, and the bytes every file takes, so caps are decided before anything is written.

No I/O and no lock of its own: the flow store calls it under its lock.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set

from .recovery import Segment, share

DEL_LINE = 48       # log bytes an evicted flow adds to its segment ({"del":[...]}), rounded up
DEL_OVERHEAD = 16   # per del line


@dataclass(frozen=True)
class Caps:
    max_flows: int
    max_bytes: int
    max_age: float  # seconds; 0: no age limit


@dataclass(frozen=True)
class Incoming:
    """A flow about to be written: `size` counts its body file and its index line."""

    id: str
    received_at: float
    bookmarked: bool
    size: int


@dataclass(frozen=True)
class Plan:
    victims: List[Dict[str, Any]]  # written flows to evict, oldest first
    dropped: Set[str]              # incoming flows not to write at all
    too_big: Set[str]              # of those, the ones that cannot fit beside the bookmarked flows


class Index:
    def __init__(self, segment_size: int) -> None:
        self.segment_size = segment_size
        self.entries: OrderedDict[str, Dict[str, Any]] = OrderedDict()  # seq order, oldest first
        self.seq = 0
        self.body_bytes = 0
        self._ids: Dict[int, Set[str]] = {}
        self._log_size: Dict[int, int] = {}
        self._lines: Dict[int, int] = {}
        self._adds: Dict[int, int] = {}
        self._newest = 1

    def load(self, segments: Iterable[Segment]) -> None:
        loaded = []
        for segment in segments:
            self._log_size[segment.number] = segment.size
            self._lines[segment.number] = segment.lines
            self._adds[segment.number] = segment.adds
            self._ids[segment.number] = set()
            self._newest = max(self._newest, segment.number)
            loaded += [(entry, segment.number) for entry in segment.entries]
        loaded.sort(key=lambda pair: pair[0].get("seq", 0))
        for entry, number in loaded:
            entry["segment"] = number
            self._put(entry)
        self.seq = max((e.get("seq", 0) for e, _ in loaded), default=0)

    def _put(self, entry: Dict[str, Any]) -> None:
        self.entries[entry["id"]] = entry
        self._ids[entry["segment"]].add(entry["id"])
        self.body_bytes += entry.get("size") or 0

    def total_bytes(self) -> int:
        """Body files plus index logs, as they are on disk now."""
        return self.body_bytes + sum(self._log_size.values())

    def segment_count(self) -> int:
        return len(self._log_size)

    def segment_ids(self, segment: int) -> List[str]:
        return sorted(self._ids.get(segment, ()), key=lambda i: self.entries[i]["seq"])

    def segment_for_new(self) -> int:
        if self._adds.get(self._newest, 0) >= self.segment_size:
            self._newest += 1
        return self._newest

    def commit(self, entry: Dict[str, Any], segment: int) -> Dict[str, Any]:
        """A flow whose body file is written (its index line follows); returns the entry kept."""
        entry["segment"] = segment
        self._ids.setdefault(segment, set())
        self._log_size.setdefault(segment, 0)
        self._lines.setdefault(segment, 0)
        self._adds[segment] = self._adds.get(segment, 0) + 1
        self._put(share(entry))  # entries read from the logs are compacted as they are read
        return entry

    def logged(self, segment: int, size: int, lines: int, rewritten: bool = False) -> None:
        self._log_size[segment] = size
        self._lines[segment] = lines if rewritten else self._lines.get(segment, 0) + lines

    def needs_compaction(self, segment: int, adding: int) -> bool:
        """Rewrite rather than append once most of a log's lines describe flows long gone."""
        live = len(self._ids.get(segment, ()))
        return self._lines.get(segment, 0) + adding > 2 * live + 16

    def forget(self, segment: int) -> None:
        """A segment whose last flow is gone (its files are removed)."""
        for table in (self._ids, self._log_size, self._lines):
            table.pop(segment, None)
        if segment != self._newest:
            self._adds.pop(segment, None)

    def plan(self, incoming: List[Incoming], now: float, caps: Caps, extra: int = 0) -> Plan:
        """Which flows go so that, after this batch is written (`incoming`, plus `extra` bytes
        of other index lines), every cap holds: oldest first, bookmarked flows never. An
        incoming flow that could not fit even with every other flow gone is not written."""
        count = len(self.entries) + len(incoming)
        total = self.total_bytes() + extra + sum(i.size for i in incoming)
        room = caps.max_bytes - self.total_bytes() + sum(e.get("size") or 0 for e in self.entries.values()
                                                         if not e.get("bookmarked"))
        too_big = {i.id for i in incoming if not i.bookmarked and i.size > room}
        dropped = set(too_big)
        count -= len(too_big)
        total -= sum(i.size for i in incoming if i.id in too_big)
        cutoff = now - caps.max_age if caps.max_age else None
        live = {segment: len(ids) for segment, ids in self._ids.items()}
        victims: List[Dict[str, Any]] = []
        for entry in self.entries.values():
            aged = cutoff is not None and (entry.get("received_at") or now) < cutoff
            if not aged and count <= caps.max_flows and total <= caps.max_bytes:
                return Plan(victims, dropped, too_big)
            if entry.get("bookmarked"):
                continue
            victims.append(entry)
            count -= 1
            segment = entry["segment"]
            live[segment] -= 1
            total -= entry.get("size") or 0
            total += DEL_LINE + (DEL_OVERHEAD if live[segment] + 1 == len(self._ids[segment]) else 0)
            if not live[segment]:  # the whole segment goes: its log and the del lines counted for it
                gone = len(self._ids[segment])
                total -= self._log_size.get(segment, 0) + gone * DEL_LINE + DEL_OVERHEAD
        for item in incoming:
            if item.id in dropped:
                continue
            aged = cutoff is not None and item.received_at < cutoff
            if not aged and count <= caps.max_flows and total <= caps.max_bytes:
                break
            if item.bookmarked:
                continue
            dropped.add(item.id)
            count -= 1
            total -= item.size
        return Plan(victims, dropped, too_big)

    def remove(self, victims: List[Dict[str, Any]]) -> Set[int]:
        """Forget evicted flows; returns the segments left empty."""
        emptied: Set[int] = set()
        for entry in victims:
            if self.entries.pop(entry["id"], None) is None:
                continue
            self.body_bytes -= entry.get("size") or 0
            ids = self._ids.get(entry["segment"])
            if ids is not None:
                ids.discard(entry["id"])
                if not ids:
                    emptied.add(entry["segment"])
        return emptied

    def get(self, flow_id: str) -> Optional[Dict[str, Any]]:
        return self.entries.get(flow_id)
