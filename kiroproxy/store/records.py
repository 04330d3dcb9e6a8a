"""Turning a finished Exchange into a flow: the small index entry and the full (redacted) record.

index_entry() runs on the request thread, so it only copies fields and slices strings; the
expensive part (redacting and serialising the bodies) is body_record(), run by the writer thread.
Pure: no I/O.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .. import chat
from ..exchange import Exchange
from ..redaction import redact

SNIPPET = 2000  # characters of each searchable piece kept in memory for `q`


def _last_user_text(req: Optional[chat.ChatRequest]) -> str:
    if req is None:
        return ""
    for message in reversed(req.messages):
        if message.role != "user":
            continue
        pieces = []
        for part in message.parts:
            if isinstance(part, chat.Text):
                pieces.append(part.text)
            elif isinstance(part, chat.ToolResult):
                pieces.append(part.text)
        return "\n".join(pieces)
    return ""


def search_text(exchange: Exchange) -> str:
    """What `q` searches: the turn's new content (last user message, answer, thinking, tool calls).

    Earlier turns of a conversation are the new content of earlier flows, so nothing is lost by
    not indexing the whole history again in every flow."""
    reply = exchange.reply
    pieces = [exchange.id, _last_user_text(exchange.request)[:SNIPPET]]
    if reply is not None:
        pieces.append(reply.text[:SNIPPET])
        pieces.append(reply.thinking[:SNIPPET // 2])
        for call in reply.tool_uses[:20]:
            pieces.append(f"{call.name} {str(call.input)[:200]}")
    if exchange.error:
        pieces.append(str(exchange.error.get("message", ""))[:SNIPPET])
    return "\n".join(p for p in pieces if p).lower()


def index_entry(exchange: Exchange, seq: int, account_name: str = "") -> Dict[str, Any]:
    usage = exchange.usage
    reply = exchange.reply
    requested = exchange.requested_model
    if not requested and isinstance(exchange.body, dict) and isinstance(exchange.body.get("model"), str):
        requested = exchange.body["model"]
    return {
        "id": exchange.id, "seq": seq, "protocol": exchange.protocol, "path": exchange.path,
        "requested_model": requested, "model": exchange.model, "account_id": exchange.account_id,
        "account_name": account_name, "stream": exchange.stream, "state": exchange.state,
        "status": exchange.status, "received_at": exchange.received_at, "first_byte_at": exchange.first_byte_at,
        "completed_at": exchange.completed_at, "ttfb_ms": _ms(exchange.ttfb_ms),
        "duration_ms": _ms(exchange.duration_ms),
        "input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0,
        "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens, "credits": usage.credits,
        "attempts": [{"account_id": a.account_id, "outcome": a.outcome, "status": a.status,
                      "message": a.message[:300]} for a in exchange.attempts],
        "retries": max(0, len(exchange.attempts) - 1),
        "error": dict(exchange.error) if exchange.error else None,
        "error_kind": exchange.error.get("kind") if exchange.error else None,
        "stop_reason": reply.finish if reply is not None and exchange.state == "completed" else None,
        "tool_calls": len(reply.tool_uses) if reply is not None else 0,
        "client": exchange.client, "user_agent": exchange.headers.get("user-agent", "")[:200],
        "tags": [], "note": "", "bookmarked": False,
        "search": search_text(exchange),
    }


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 2)


def public(entry: Dict[str, Any]) -> Dict[str, Any]:
    """An index entry as the API shows it (without the search text)."""
    return {k: v for k, v in entry.items() if k != "search"}


def body_record(exchange: Exchange, entry: Dict[str, Any], secrets: Iterable[str]) -> Dict[str, Any]:
    """The full flow as stored on disk: metadata plus redacted request and assembled response."""
    known = list(secrets)
    return {
        "flow": redact(public(entry), known),
        "search": entry.get("search", ""),
        "request": {"headers": redact(exchange.headers, known), "body": redact(exchange.body, known)},
        "response": redact(response_of(exchange.reply), known) if exchange.reply is not None else None,
    }


def response_of(reply: chat.Reply) -> Dict[str, Any]:
    tool_calls: List[Dict[str, Any]] = [{"id": c.id, "name": c.name, "input": c.input} for c in reply.tool_uses]
    return {"text": reply.text, "thinking": reply.thinking, "tool_calls": tool_calls,
            "stop_reason": reply.finish, "stop_sequence": reply.stop_sequence}


def redact_entry(entry: Dict[str, Any], secrets: Iterable[str]) -> Dict[str, Any]:
    """Error messages and attempts come from upstream text: mask known secrets in them too."""
    known = list(secrets)
    # redact() orders the secrets longest first: masking a shorter secret inside a longer one first
    # would leave the rest of the longer one readable.
    entry["search"] = redact(entry.get("search", ""), [k.lower() for k in known] + known)
    if entry.get("error"):
        entry["error"]["message"] = redact(str(entry["error"].get("message", "")), known)
    for attempt in entry.get("attempts", []):
        attempt["message"] = redact(attempt["message"], known)
    return entry
