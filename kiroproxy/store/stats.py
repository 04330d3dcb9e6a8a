"""Request counters: since start (memory) and all-time (persisted), plus hourly buckets.

record() is cheap and runs on the request thread; save() writes the small stats file and is
called by the flow writer thread. Survives restarts; a damaged file starts the counters afresh
(after moving it aside), and damaged keys inside it are skipped: it never stops the server.

Bounded whatever clients send: each group keeps at most MAX_KEYS keys. A flow without an upstream
model (an unknown or unserved model name, a refused body) counts under OTHER, and so does any key
beyond the bound (the file and both stats views stay small: a client cannot grow them).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from copy import deepcopy
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

from .encoding import scrub
from .jsondb import write_atomic

log = logging.getLogger(__name__)

HOURS_KEPT = 7 * 24
MAX_KEYS = 100     # per group (models, accounts, protocols, error kinds); the rest count under OTHER
OTHER = "(other)"
FIELDS = ("requests", "errors", "input_tokens", "output_tokens")
_GROUPS = ("by_protocol", "by_model", "by_account", "errors_by_kind", "hourly")


def _blank() -> Dict[str, Any]:
    return {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}


def _counters() -> Dict[str, Any]:
    return {**_blank(), "by_protocol": {}, "by_model": {}, "by_account": {}, "errors_by_kind": {},
            "hourly": {}}


def _key(group: Dict[str, Any], key: str) -> str:
    """`key`, or OTHER when the group already holds MAX_KEYS - 1 other keys."""
    return key if key in group or len(group) - (OTHER in group) < MAX_KEYS - 1 else OTHER


def _add(target: Dict[str, Any], entry: Mapping[str, Any]) -> None:
    target["requests"] += 1
    target["errors"] += 1 if entry.get("error") else 0
    target["input_tokens"] += entry.get("input_tokens") or 0
    target["output_tokens"] += entry.get("output_tokens") or 0


def _hour_key(key: str) -> str:
    return str(int(float(key)))  # ValueError: not an hour


def _groups(data: Mapping[str, Any], key_of: Callable[[str], str]) -> Dict[str, Any]:
    """A group read back from the file, keys with damaged counters skipped (logged)."""
    out: Dict[str, Any] = {}
    skipped = 0
    for key, counters in data.items():
        try:
            if not isinstance(counters, dict) or not all(isinstance(counters.get(f, 0), int) for f in FIELDS):
                raise ValueError("not counters")
            out[key_of(scrub(key))] = {**_blank(), **{f: counters.get(f, 0) for f in FIELDS}}
        except (ValueError, OverflowError):
            skipped += 1
    if skipped:
        log.warning("stats file: skipped %d damaged entr(ies)", skipped)
    return out


def _bounded(group: Dict[str, Any]) -> Dict[str, Any]:
    """At most MAX_KEYS keys: the busiest kept, the rest added up under OTHER (a file written
    before the bound, or by hand)."""
    if len(group) <= MAX_KEYS:
        return group
    ranked = sorted(group.items(), key=lambda item: item[1]["requests"], reverse=True)
    kept = dict(item for item in ranked[:MAX_KEYS - 1] if item[0] != OTHER)
    other = _blank()
    for key, counters in group.items():
        if key not in kept:
            for field in other:
                other[field] += counters.get(field, 0)
    kept[OTHER] = other
    return kept


class Stats:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._session = _counters()
        self._all = self._load()
        self._dirty = False

    def _load(self) -> Dict[str, Any]:
        if not self.path.exists():
            return _counters()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "requests" not in data:
                raise ValueError("not a stats document")
            # Counters of the wrong type would make every record() raise on the request thread.
            if not all(isinstance(data.get(k, 0), int) for k in FIELDS) or not all(
                    isinstance(data.get(g, {}), dict) for g in _GROUPS):
                raise ValueError("a counter has the wrong type")
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.warning("stats file damaged (%s); moved to %s, counting from zero", exc, aside.name)
            return _counters()
        fresh = _counters()
        fresh.update({k: data.get(k, 0) for k in FIELDS})
        fresh["hourly"] = _groups(data.get("hourly", {}), _hour_key)
        for name in ("by_protocol", "by_model", "by_account"):
            fresh[name] = _bounded(_groups(data.get(name, {}), lambda key: key))
        kinds = sorted(((scrub(k), v) for k, v in data.get("errors_by_kind", {}).items() if isinstance(v, int)),
                       key=lambda item: item[1], reverse=True)
        fresh["errors_by_kind"] = dict(kinds[:MAX_KEYS])
        return fresh

    def record(self, entry: Mapping[str, Any]) -> None:
        hour = str(int((entry.get("received_at") or self.clock()) // 3600 * 3600))
        with self._lock:
            for counters in (self._session, self._all):
                _add(counters, entry)
                for name, key in (("by_protocol", entry.get("protocol") or ""), ("by_model", entry.get("model")
                                  or OTHER), ("by_account", entry.get("account_id") or "")):
                    group = counters[name]
                    _add(group.setdefault(_key(group, str(key)), _blank()), entry)
                if entry.get("error"):
                    kinds = counters["errors_by_kind"]
                    kind = _key(kinds, str(entry.get("error_kind") or "unknown"))
                    kinds[kind] = kinds.get(kind, 0) + 1
                _add(counters["hourly"].setdefault(hour, _blank()), entry)
            self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            self._prune()
            data = json.dumps(self._all, separators=(",", ":")).encode("utf-8")
            self._dirty = False
        write_atomic(self.path, data, 0o600)

    def _prune(self) -> None:
        oldest = (self.clock() // 3600 - HOURS_KEPT) * 3600
        for counters in (self._session, self._all):
            for hour in [h for h in counters["hourly"] if float(h) < oldest]:
                del counters["hourly"][hour]

    def summary(self) -> Dict[str, Any]:
        with self._lock:
            return {"since_start": self._view(self._session), "all_time": self._view(self._all),
                    "started_at": self.started_at}

    @staticmethod
    def _view(counters: Mapping[str, Any]) -> Dict[str, Any]:
        return {**{k: counters[k] for k in FIELDS}, "by_protocol": deepcopy(counters["by_protocol"])}

    def detailed(self) -> Dict[str, Any]:
        """Per account and model (all-time), hourly series for the last 24 h, errors by kind."""
        now_hour = int(self.clock() // 3600 * 3600)
        with self._lock:
            hourly = [{"hour": hour, **self._all["hourly"].get(str(hour), _blank())}
                      for hour in range(now_hour - 23 * 3600, now_hour + 1, 3600)]
            return {"by_account": deepcopy(self._all["by_account"]), "by_model": deepcopy(self._all["by_model"]),
                    "by_protocol": deepcopy(self._all["by_protocol"]),
                    "errors_by_kind": dict(self._all["errors_by_kind"]), "hourly": hourly,
                    "since_start": self._view(self._session), "all_time": self._view(self._all)}
