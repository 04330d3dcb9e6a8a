"""Server-sent events framing, shared by the protocol encoders. Pure."""
from __future__ import annotations

import json
from typing import Any, Optional


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sse(data: Any, event: Optional[str] = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {dumps(data)}\n\n".encode()


def comment(text: str = "keepalive") -> bytes:
    return f": {text}\n\n".encode()


HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
