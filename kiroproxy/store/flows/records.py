"""Turning a finished exchange (its ExchangeSnapshot) into a flow: the flow's snapshot, then the
small index entry, the full search text and the redacted body record built from it.

A request thread only estimates what a queued exchange costs (deferred_cost) and counts it in
the stats (stats_entry); snapshot() runs on the writer thread (or when a listing shows a queued
flow). It copies fields and keeps the client's raw JSON bytes; only an exchange without them is
snapshotted on the request thread (one pickle of the parsed body). Gathering secrets, redacting
and serialising happen on the flow writer thread. Pure: no I/O.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ... import chat
from ...exchange import ExchangeSnapshot
from ...redaction import Redactor, redact_text

SNIPPET = 200  # characters of the last user message kept in memory to show in lists
NAME_CHARS = 200  # of a requested model name kept in the index (no real one is longer)
PATH_CHARS = 500
LIFT = 256     # strings this long are stored once, in the search text, not again in the record


@dataclass(frozen=True)
class Snapshot:
    """A finished exchange, copied. `meta` is a fresh dict only the flow store holds (never
    changed once made); `request` and `parts` are frozen dataclasses in tuples."""

    id: str
    meta: Dict[str, Any]            # the index fields (index_entry), not yet redacted
    headers: Dict[str, str]         # safe headers only, copied
    body: bytes                     # the client's JSON body, pickled (or raw JSON: body_json)
    request: Optional[chat.ChatRequest]
    parts: Tuple[Any, ...]          # the reply's parts
    answered: bool                  # a reply exists (even an empty one)
    finish: str = "end_turn"
    stop_sequence: Optional[str] = None
    body_json: bool = False         # `body` is the client's raw JSON, not a pickle


def snapshot(exchange: ExchangeSnapshot, with_body: bool = True) -> Snapshot:
    """The request thread's whole share of recording: copies, plus the body: the client's raw
    JSON bytes when the exchange has them (free: bytes are immutable), else one pickle of the
    parsed body (a fast deep copy: ~0.4 ms for a 300 KB body). Without the body, for reading the
    texts of a flow still in flight."""
    reply = exchange.reply
    raw = exchange.raw_body if with_body and isinstance(exchange.raw_body, bytes) else None
    return Snapshot(id=exchange.id, meta=index_entry(exchange, 0), headers=dict(exchange.headers),
                    body=raw if raw is not None else _freeze(exchange.body if with_body else None),
                    body_json=raw is not None, request=exchange.request,
                    parts=tuple(reply.parts) if reply is not None else (), answered=reply is not None,
                    finish=reply.finish if reply is not None else "end_turn",
                    stop_sequence=reply.stop_sequence if reply is not None else None)


META_COST = 2048  # bytes an index entry and its snapshot take in memory, roughly


def cost(snap: Snapshot) -> int:
    """Bytes of memory a queued snapshot holds, roughly: its body, the request parsed from it
    (about as large again) and the answer's texts."""
    if snap.request is None and not snap.parts:
        return META_COST + len(snap.body)
    return META_COST + 2 * len(snap.body) + sum(len(getattr(part, "text", "") or "") for part in snap.parts)


def deferred_cost(exchange: ExchangeSnapshot) -> int:
    """Bytes of memory a finished exchange queued as is holds, roughly: the client's raw body, the
    JSON parsed from it and the request parsed from that (each about as large), and the answer's
    texts. Cheap: for the request thread."""
    raw = exchange.raw_body
    reply = exchange.reply
    texts = sum(len(getattr(part, "text", "") or "") for part in reply.parts) if reply is not None else 0
    return META_COST + 3 * (len(raw) if isinstance(raw, bytes) else 0) + texts


def stats_entry(exchange: ExchangeSnapshot) -> Dict[str, Any]:
    """The fields of index_entry() that Stats.record() reads, the same values: cheap, for the
    request thread (the full entry is built by the writer)."""
    usage = exchange.usage
    error = exchange.error
    return {"received_at": exchange.received_at, "protocol": exchange.protocol, "model": exchange.model,
            "account_id": exchange.account_id, "error": dict(error) if error else None,
            "error_kind": error.get("kind") if error else None,
            "input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0}


def metadata_only(exchange: ExchangeSnapshot) -> Snapshot:
    """A snapshot without the request body, the parsed request or the answer (the flow backlog is
    full): the index entry says so with body_dropped."""
    snap = snapshot(exchange, with_body=False)
    snap.meta["body_dropped"] = True
    return replace(snap, request=None, parts=(), answered=False)


def _freeze(body: Any) -> bytes:
    try:
        return pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError, ValueError):
        # Client bodies are parsed JSON, so this does not happen; if it ever does, keep what a
        # reader can still use rather than failing the observer.
        return pickle.dumps(repr(body)[:100_000], protocol=pickle.HIGHEST_PROTOCOL)


def thaw(snap: Snapshot) -> Any:
    if snap.body_json:
        return json.loads(snap.body)
    return pickle.loads(snap.body)  # noqa: S301 - our own bytes, made in this process by snapshot()


def index_entry(exchange: ExchangeSnapshot, seq: int, account_name: str = "") -> Dict[str, Any]:
    """The flow's metadata as a fresh dict (no text beyond short messages): cheap to build."""
    usage = exchange.usage
    reply = exchange.reply
    requested = exchange.requested_model
    if not requested and isinstance(exchange.body, dict) and isinstance(exchange.body.get("model"), str):
        requested = exchange.body["model"]
    return {
        "id": exchange.id, "seq": seq, "protocol": exchange.protocol, "path": exchange.path[:PATH_CHARS],
        "requested_model": requested[:NAME_CHARS] if isinstance(requested, str) else "",
        "model": exchange.model, "account_id": exchange.account_id,
        "account_name": account_name, "stream": exchange.stream, "state": exchange.state,
        "status": exchange.status, "received_at": exchange.received_at, "first_byte_at": exchange.first_byte_at,
        "completed_at": exchange.completed_at, "ttfb_ms": _ms(exchange.ttfb_ms),
        "duration_ms": _ms(exchange.duration_ms),
        "input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0,
        "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens, "credits": usage.credits,
        "attempts": [{"account_id": a.account_id, "outcome": a.outcome, "status": a.status,
                      "message": a.message[:300], "at": round(a.at, 3)} for a in exchange.attempts],
        "retries": max(0, len(exchange.attempts) - 1),
        "error": dict(exchange.error) if exchange.error else None,
        "error_kind": exchange.error.get("kind") if exchange.error else None,
        "stop_reason": reply.finish if reply is not None and exchange.state == "completed" else None,
        "tool_calls": len(reply.tool_uses) if reply is not None else 0,
        "client": exchange.client, "user_agent": exchange.headers.get("user-agent", "")[:200],
        "tags": [], "note": "", "bookmarked": False,
        "snippet": last_user_text(exchange.request)[:SNIPPET],
    }


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 2)


# Index fields a client chose (a model name or a URL path can carry a key by mistake).
CLIENT_TEXTS = ("requested_model", "path", "user_agent")


def finish_entry(meta: Dict[str, Any], seq: int, account_name: str, redactor: Redactor,
                 present: Optional[Tuple[str, ...]] = None) -> Dict[str, Any]:
    """A new index entry from `meta` (index_entry's fields, left untouched) with known secrets
    masked. `present`: the secrets known to occur (default: looked up in the entry's own texts)."""
    error = dict(meta["error"]) if meta["error"] else None
    attempts = [dict(a) for a in meta["attempts"]]
    if present is None:
        present = redactor.present(meta["snippet"], str(error.get("message", "")) if error else "",
                                   *(a["message"] for a in attempts), *(meta[k] for k in CLIENT_TEXTS))
    entry = {**meta, "seq": seq, "account_name": account_name, "attempts": attempts, "error": error,
             "tags": list(meta["tags"]), "snippet": redact_text(meta["snippet"], present),
             **{k: redact_text(meta[k], present) for k in CLIENT_TEXTS}}
    if error:
        error["message"] = redact_text(str(error.get("message", "")), present)
    for attempt in attempts:
        attempt["message"] = redact_text(attempt["message"], present)
    return entry


def public(entry: Dict[str, Any]) -> Dict[str, Any]:
    """An index entry as the API shows it (without where it is stored)."""
    return {k: v for k, v in entry.items() if k != "segment"}


def last_user_text(req: Optional[chat.ChatRequest]) -> str:
    if req is None:
        return ""
    for message in reversed(req.messages):
        if message.role == "user":
            return "\n".join(part.text for part in message.parts
                             if isinstance(part, (chat.Text, chat.ToolResult))).strip()
    return ""


def _part_texts(parts: Iterable[Any]) -> Iterable[str]:
    for part in parts:
        if isinstance(part, (chat.Text, chat.Thinking)):
            yield part.text
        elif isinstance(part, chat.ToolResult):
            yield from (p.text for p in part.content if isinstance(p, chat.Text))
        elif isinstance(part, chat.ToolUse):
            yield _call_text(part)


def _call_text(call: chat.ToolUse) -> str:
    return f"{call.name} {json.dumps(call.input, ensure_ascii=False, default=str)}"


def search_pieces(snap: Snapshot) -> List[str]:
    """Everything `q` searches, as sent and answered: the flow id, the system prompt, every
    message's text, tool results and tool call arguments, then the answer's text, thinking and
    tool calls, and the error message. Empty pieces left out."""
    pieces: List[str] = [snap.id]
    req = snap.request
    if req is not None:
        pieces.append(req.system)
        for message in req.messages:
            pieces.extend(_part_texts(message.parts))
    response = response_of(snap)
    if response is not None:
        pieces += [response["text"], response["thinking"]]
        pieces += [_call_text(p) for p in snap.parts if isinstance(p, chat.ToolUse)]
    error = snap.meta.get("error")
    if error:
        pieces.append(str(error.get("message", "")))
    return [p for p in pieces if p]


def search_text(snap: Snapshot) -> str:
    """The pieces joined (not redacted, not lowercased)."""
    return "\n".join(search_pieces(snap))


def response_of(snap: Snapshot) -> Optional[Dict[str, Any]]:
    if not snap.answered:
        return None
    parts = snap.parts
    return {"text": "".join(p.text for p in parts if isinstance(p, chat.Text)),
            "thinking": "".join(p.text for p in parts if isinstance(p, chat.Thinking)),
            "tool_calls": [{"id": p.id, "name": p.name, "input": p.input} for p in parts
                           if isinstance(p, chat.ToolUse)],
            "stop_reason": snap.finish, "stop_sequence": snap.stop_sequence}


@dataclass(frozen=True)
class Prepared:
    """A flow ready to write: its index entry and the two texts of its body file."""

    entry: Dict[str, Any]
    search: str                # redacted, as sent (lowercased only when searched)
    record: Dict[str, Any]     # {"flow", "request", "response", "texts"}, redacted


def _parsed_body(snap: Snapshot, redactor: Redactor) -> Tuple[Any, Tuple[str, ...]]:
    """(the client's body, parsed; the known secrets occurring in it). Secrets are looked for in
    the decoded strings, whatever the client escaped in its JSON: in the raw bytes themselves
    when they escape only what json.dumps escapes (no \\u or \\/: then a secret occurs in a string
    exactly when its own escaped form occurs in the bytes), else in a pickle of the parsed body."""
    if not snap.body_json:
        return pickle.loads(snap.body), redactor.present_in_utf8(snap.body)  # noqa: S301 - see thaw()
    body = json.loads(snap.body)
    if b"\\u" not in snap.body and b"\\/" not in snap.body:
        return body, redactor.present_in_json(snap.body)
    return body, redactor.present_in_utf8(_freeze(body))


def _present(snap: Snapshot, redactor: Redactor, in_body: Tuple[str, ...], *texts: str) -> Tuple[str, ...]:
    """The known secrets occurring anywhere in a flow, longest first: those found in its body
    (_parsed_body) plus those in its headers and the given texts."""
    found = set(in_body) | set(redactor.present("\n".join(snap.headers.values()), *texts))
    return tuple(s for s in redactor.secrets if s in found)


def prepare(snap: Snapshot, seq: int, account_name: str, redactor: Redactor) -> Prepared:
    """Writer thread: redact with the secrets that occur anywhere in the flow, build everything.

    The long strings of the record that the search text already holds (message texts, tool
    results, the answer) are stored once: the record keeps [path, start, length] in "texts"."""
    body, in_body = _parsed_body(snap, redactor)
    pieces = search_pieces(snap)
    present = _present(snap, redactor, in_body, "\n".join(pieces),
                       "\n".join(a["message"] for a in snap.meta["attempts"]), *(snap.meta[k] for k in CLIENT_TEXTS))
    pieces = [redact_text(p, present) for p in pieces]
    search = "\n".join(pieces)
    starts: Dict[str, int] = {}
    at = 0
    for piece in pieces:
        starts.setdefault(piece, at)
        at += len(piece) + 1
    entry = finish_entry(snap.meta, seq, account_name, redactor, present)
    record = {"flow": public(entry),
              "request": {"headers": redactor.redact(snap.headers, present), "body": redactor.redact(body, present)},
              "response": redactor.redact(response_of(snap), present)}
    texts: List[List[Any]] = []
    for name in ("request", "response"):
        if record[name] is not None:
            _lift(record[name], [name], search, starts, texts)
    record["texts"] = texts
    return Prepared(entry, search, record)


def _lift(value: Any, path: List[Any], search: str, starts: Dict[str, int], texts: List[List[Any]]) -> None:
    """Empty, in place, every long string of `value` found in `search`, noting where it is."""
    items = enumerate(value) if isinstance(value, list) else value.items() if isinstance(value, dict) else ()
    for key, item in list(items):
        if isinstance(item, str) and len(item) >= LIFT:
            start = starts.get(item)
            if start is None:
                start = search.find(item)  # a piece of one (say, one block of a system prompt)
            if start >= 0:
                value[key] = ""
                texts.append([*path, key, start, len(item)])
        elif isinstance(item, (dict, list)):
            _lift(item, [*path, key], search, starts, texts)


def restore(record: Dict[str, Any], search: str) -> Dict[str, Any]:
    """Put the lifted strings back (see prepare()); a bad reference is skipped."""
    for ref in record.pop("texts", None) or ():
        try:
            *path, key, start, length = ref
            target = record
            for step in path:
                target = target[step]
            if target[key] != "":  # only the emptied string itself is put back
                continue
            target[key] = search[start:start + length]
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return record


def record_of(snap: Snapshot, redactor: Redactor) -> Dict[str, Any]:
    """The body record of a flow not stored yet (read on an admin thread)."""
    body, in_body = _parsed_body(snap, redactor)
    response = response_of(snap)
    present = _present(snap, redactor, in_body, json.dumps(response, ensure_ascii=False, default=str))
    return {"request": {"headers": redactor.redact(snap.headers, present), "body": redactor.redact(body, present)},
            "response": redactor.redact(response, present)}
