"""The protocol tests' golden fixtures: stored files, event scripts, SSE event frames, error classes.

Reads tests/golden/<protocol>/ and writes there only when KIROPROXY_UPDATE_GOLDEN=1 (an explicit
opt-in, reviewed as a diff). It imports no protocol module and no SDK, so it loads on Python 3.9.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

from kiroproxy import chat, errors

ROOT = Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True)
class Goldens:
    """One protocol's folder under tests/golden: `<case>.request.json`, `.chat.json`, `.events.json`, outputs."""

    protocol: str

    @property
    def folder(self) -> Path:
        """tests/golden/<protocol>."""
        return ROOT / self.protocol

    def cases(self) -> Set[str]:
        """Every case that has a file in the folder (a file name up to its first dot)."""
        return {path.name.split(".", 1)[0] for path in self.folder.iterdir()}

    def request(self, case: str) -> Any:
        """The client body of a parse case, from `<case>.request.json`."""
        return json.loads((self.folder / f"{case}.request.json").read_text("utf-8"))

    def events(self, case: str) -> List[Dict[str, Any]]:
        """The event script of an encode case, from `<case>.events.json` (see events_from_json)."""
        return json.loads((self.folder / f"{case}.events.json").read_text("utf-8"))

    def stored(self, name: str, actual: bytes) -> bytes:
        """The stored golden bytes; rewritten from `actual` only when KIROPROXY_UPDATE_GOLDEN=1."""
        path = self.folder / name
        if os.environ.get("KIROPROXY_UPDATE_GOLDEN") == "1":
            path.write_bytes(actual)
        return path.read_bytes()


def to_json(request: chat.ChatRequest) -> str:
    """A deterministic rendering of a ChatRequest; each part is tagged with its class name."""
    data = asdict(request)
    for raw, message in zip(data["messages"], request.messages):
        raw["parts"] = [{"type": type(part).__name__, **asdict(part)} for part in message.parts]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def events_from_json(items: List[Dict[str, Any]]) -> Iterator[chat.Event]:
    """Chat events from `[{"type": "TextDelta", ...}]`; `{"type": "raise", "error": E, "message": M, **kw}` raises E."""
    for item in items:
        fields = {key: value for key, value in item.items() if key != "type"}
        if item["type"] == "raise":
            error = getattr(errors, fields.pop("error"))
            raise error(fields.pop("message"), **fields)
        yield getattr(chat, item["type"])(**fields)


def event_frames(body: bytes, skip_comments: bool = False) -> List[Tuple[str, Dict[str, Any]]]:
    """(name, data) per SSE frame: exactly `event:` + `data:` lines, same `type`; `:` comments fail unless skipped."""
    assert body.endswith(b"\n\n")
    out = []
    for raw in body[:-2].decode("utf-8").split("\n\n"):
        if skip_comments and raw.startswith(":"):
            continue
        event_line, data_line = raw.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: "), raw
        name, data = event_line[len("event: "):], json.loads(data_line[len("data: "):])
        assert data["type"] == name
        out.append((name, data))
    return out


def proxy_errors() -> Set[type]:
    """Every ProxyError class kiroproxy.errors defines: the rows each protocol's error table must have."""
    return {value for value in vars(errors).values()
            if isinstance(value, type) and issubclass(value, errors.ProxyError)}
