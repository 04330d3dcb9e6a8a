"""Opening the flow store: replay each segment's index log, check it against the body files on
disk and repair what a crash left behind.

A flow counts only when its body file exists: an index line whose body is gone is dropped, and a
body the index never heard of (a crash between the two writes) is indexed again from the copy of
its entry the body holds. Runs once, before anything reads or writes the index: on the writer
thread as it starts (not on the server's start-up), or on the first caller that needs the index.
Logs what it repaired.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Set, Tuple

from .segments import FLOW_ID, Disk

log = logging.getLogger(__name__)

MARKS = ("bookmarked", "note", "tags")


@dataclass(frozen=True)
class Segment:
    number: int
    entries: List[Dict[str, Any]]  # live entries, seq order
    lines: int                     # lines in its log file now
    adds: int                      # flows ever added to it
    size: int                      # bytes of its log file
    repaired: bool


@dataclass(frozen=True)
class Loaded:
    segments: List[Segment]
    dropped: int    # index entries whose body was missing
    recovered: int  # bodies indexed again


def load(disk: Disk) -> Loaded:
    disk.sweep_temp_files()
    found: List[Segment] = []
    totals = [0, 0]
    for number in disk.segments():
        segment, counts = _load_segment(disk, number)
        totals = [a + b for a, b in zip(totals, counts)]
        if segment is not None:
            found.append(segment)
    loaded = Loaded(found, *totals)
    if loaded.dropped or loaded.recovered:
        log.warning("flow store: dropped %d index entr(ies) whose body was missing, re-indexed %d body file(s)",
                    loaded.dropped, loaded.recovered)
    return loaded


def compact(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The same entry holding shared strings. Entries parsed from the index logs each carry their
    own copies of the keys and of repeated values (protocol, model, account, state...), which
    would more than double the memory the index takes."""
    out = {}
    for key, value in entry.items():
        if isinstance(value, str) and len(value) <= 64:
            value = sys.intern(value)
        elif key == "attempts" and isinstance(value, list):
            value = [compact(a) if isinstance(a, dict) else a for a in value]
        out[sys.intern(key)] = value
    return out


# The fields whose values repeat from flow to flow (the rest are numbers, or unique texts).
SHARED = ("protocol", "path", "requested_model", "model", "account_id", "account_name", "state", "client",
          "user_agent", "stop_reason", "error_kind")


def share(entry: Dict[str, Any]) -> Dict[str, Any]:
    """compact() for an entry the writer built (returned, changed in place): its keys are shared
    already (they come from the code), so only the values that repeat need sharing; each request
    parsed its own copy of its path, model name and user agent."""
    for key in SHARED:
        value = entry.get(key)
        if isinstance(value, str) and len(value) <= 64:
            entry[key] = sys.intern(value)
    return entry


_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
_OPTIONAL_TEXT = (str, type(None))
# What every reader of an index entry relies on: field -> (accepted types, value used instead).
FIELDS: Dict[str, Tuple[tuple, Any]] = {
    "seq": ((int,), 0), "protocol": ((str,), ""), "path": ((str,), ""), "requested_model": ((str,), ""),
    "model": ((str,), ""), "account_id": (_OPTIONAL_TEXT, None), "account_name": ((str,), ""),
    "stream": ((bool,), False), "state": ((str,), "error"), "status": ((int,), 0),
    "received_at": (_NUMBER, 0.0), "first_byte_at": (_OPTIONAL_NUMBER, None),
    "completed_at": (_OPTIONAL_NUMBER, None), "ttfb_ms": (_OPTIONAL_NUMBER, None),
    "duration_ms": (_OPTIONAL_NUMBER, None), "input_tokens": ((int,), 0), "output_tokens": ((int,), 0),
    "cache_read_tokens": (_OPTIONAL_NUMBER, None), "cache_write_tokens": (_OPTIONAL_NUMBER, None),
    "reasoning_tokens": (_OPTIONAL_NUMBER, None), "credits": (_OPTIONAL_NUMBER, None),
    "attempts": ((list,), []), "retries": ((int,), 0), "error": ((dict, type(None)), None),
    "error_kind": (_OPTIONAL_TEXT, None), "stop_reason": (_OPTIONAL_TEXT, None), "tool_calls": ((int,), 0),
    "client": ((str,), ""), "user_agent": ((str,), ""), "tags": ((list,), []), "note": ((str,), ""),
    "bookmarked": ((bool,), False), "snippet": ((str,), ""), "size": ((int,), 0),
}


def sound(entry: Any) -> Any:
    """An index entry every view can show: a field of the wrong type (a log edited by hand, or
    damaged) gets its empty value, logged; None when it names no flow (skipped, logged). Absent
    fields stay absent (readers use .get()), but for seq."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not FLOW_ID.match(entry["id"]):
        log.warning("flow index: skipped an entry without a valid flow id")
        return None
    fixed = []
    for name, (types, empty) in FIELDS.items():
        value = entry.get(name, empty)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            entry[name] = list(empty) if isinstance(empty, list) else empty
            fixed.append(name)
    entry.setdefault("seq", 0)  # the index orders and pages by it
    for name, kind in (("attempts", dict), ("tags", str)):
        if name in entry and not all(isinstance(item, kind) for item in entry[name]):
            entry[name] = [item for item in entry[name] if isinstance(item, kind)]
            fixed.append(name)
    if fixed:
        log.warning("flow index: entry %s had field(s) of the wrong type (%s); shown empty", entry["id"],
                    ", ".join(fixed))
    return entry


def replay(records: List[Dict[str, Any]]) -> Tuple[Dict[str, Dict[str, Any]], Set[str], int]:
    """(live entries by id, ids deleted, add lines) from a log's records, in order."""
    entries: Dict[str, Dict[str, Any]] = {}
    deleted: Set[str] = set()
    adds = 0
    for record in records:
        if isinstance(record.get("add"), dict):
            entry = sound(record["add"])
            if entry is None:
                continue
            entry = compact(entry)
            entries[entry["id"]] = entry
            deleted.discard(entry["id"])
            adds += 1
        elif isinstance(record.get("set"), str):
            entry = entries.get(record["set"])
            if entry is not None:
                entry.update({k: record[k] for k in MARKS if k in record})
                sound(entry)
        elif isinstance(record.get("del"), list):
            for flow_id in record["del"]:
                if isinstance(flow_id, str):
                    entries.pop(flow_id, None)
                    deleted.add(flow_id)
    return entries, deleted, adds


def _load_segment(disk: Disk, number: int) -> Tuple[Any, Tuple[int, int, int]]:
    # No log (bodies whose log was lost) reads as empty: each flow comes back from its body below.
    records, damaged = disk.read_log(number)
    entries, deleted, adds = replay(records)
    lines = len(records)
    bodies = disk.body_ids(number)
    missing = [flow_id for flow_id in entries if flow_id not in bodies]
    for flow_id in missing:
        del entries[flow_id]
    recovered = 0
    for flow_id, size in bodies.items():
        if flow_id in entries:
            if not entries[flow_id].get("size"):
                entries[flow_id]["size"] = size
            continue
        entry = _from_body(disk, number, flow_id, size) if flow_id not in deleted else None
        if entry is None:  # evicted (the crash came before its log line) or unreadable
            disk.remove_body(number, flow_id)
            continue
        entries[flow_id] = entry
        recovered += 1
    ordered = sorted(entries.values(), key=lambda e: e.get("seq", 0))
    repaired = bool(damaged or missing or recovered)
    if repaired:
        size = disk.rewrite(number, [{"add": e} for e in ordered])
        lines = len(ordered)
        adds = max(adds, len(ordered))
    else:
        size = disk.log_size(number)
    if not ordered and not disk.segment_path(number).exists():
        disk.remove_segment(number)
        return None, (len(missing), recovered)
    return Segment(number, ordered, lines, adds, size, repaired), (len(missing), recovered)


def _from_body(disk: Disk, number: int, flow_id: str, size: int) -> Any:
    record = disk.read_record(number, flow_id)
    flow = record.get("flow") if record else None
    if not isinstance(flow, dict) or flow.get("id") != flow_id:
        return None
    entry = sound(dict(flow))
    if entry is not None:
        entry["size"] = size
    return entry
