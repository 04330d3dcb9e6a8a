"""Conversation repair: turn any message list a client sends into one Kiro accepts.

Applies the conversation rules of the upstream reference (§3.1) on neutral chat messages:
alternation, tool use/result pairing, unique ids, clean tool inputs. The rendering into Kiro
JSON lives in payload.py. Pure: no I/O; logs counts only, never content.
"""
from __future__ import annotations

import json
import logging
from typing import List, Sequence, Set, Tuple

from .. import chat

log = logging.getLogger(__name__)

USER = "user"
ASSISTANT = "assistant"

# The synthetic answer for a tool use the client never answered (sent with status "error").
NO_RESULT = "(no result: the client did not run this tool)"
EMPTY_RESULT = "(empty result)"
IMAGE_OMITTED = "[image omitted: Kiro does not accept images in assistant turns]"


def repair(messages: Sequence[chat.Message], *, tools_declared: bool) -> Tuple[chat.Message, ...]:
    """Messages alternating user/assistant, starting and ending with a user message.

    The last message is Kiro's current message; it has no parts when the client's last message
    was the assistant's (the renderer sends a filler). Every tool use of an assistant message is
    answered by exactly one result in the next user message and every kept result answers one;
    other results become text. Without `tools_declared` every tool use and result becomes text.
    Empty messages are kept (the renderer fills them). Idempotent, so a trimmed tail can be
    repaired again.
    """
    normalized = [_normalize(m, i, tools_declared) for i, m in enumerate(messages)]
    merged = _merge(normalized)
    if not merged or merged[0].role != USER:
        # Kiro's history must start with a user turn: give a leading assistant one to answer.
        merged.insert(0, chat.Message(USER, ()))
    if merged[-1].role != USER:
        # The client ended on the assistant's turn (e.g. a prefill): it moves into history.
        merged.append(chat.Message(USER, ()))
    repaired: List[chat.Message] = []
    previous: Tuple[chat.ToolUse, ...] = ()
    for message in merged:
        if message.role == ASSISTANT:
            message = _dedupe_uses(message)
            previous = uses(message)
        else:
            message = _pair_results(message, previous)
        repaired.append(message)
    return tuple(repaired)


def uses(message: chat.Message) -> Tuple[chat.ToolUse, ...]:
    return tuple(p for p in message.parts if isinstance(p, chat.ToolUse))


def results(message: chat.Message) -> Tuple[chat.ToolResult, ...]:
    return tuple(p for p in message.parts if isinstance(p, chat.ToolResult))


def use_as_text(use: chat.ToolUse) -> str:
    # Deliberately not the "[Called x with args: ...]" shape: models imitate history, and that
    # shape is what the response parser treats as a tool call written as text.
    arguments = json.dumps(use.input, ensure_ascii=False, separators=(",", ":"))
    return f"[Tool call {use.name} ({use.id})]: {arguments}"


def result_as_parts(result: chat.ToolResult, *, keep_images: bool) -> Tuple[chat.Part, ...]:
    """A tool result that cannot be sent as one, as text (+ its images when the turn allows)."""
    label = f"[Tool result for {result.tool_use_id}{' (error)' if result.is_error else ''}]"
    text = result.text if result.text.strip() else EMPTY_RESULT
    images = tuple(p for p in result.content if isinstance(p, chat.Image))
    if images and not keep_images:
        text = f"{text}\n{IMAGE_OMITTED}"
        images = ()
    return (chat.Text(f"{label}: {text}"),) + images


def without_empty_keys(value: object) -> object:
    """Kiro rejects tool-use inputs holding "" as a key, at any depth."""
    if isinstance(value, dict):
        return {k: without_empty_keys(v) for k, v in value.items() if k != ""}
    if isinstance(value, (list, tuple)):
        return [without_empty_keys(v) for v in value]
    return value


def _normalize(message: chat.Message, index: int, tools_declared: bool) -> chat.Message:
    """Fix one message on its own: its role, parts the role cannot carry, tool-use inputs."""
    role = ASSISTANT if message.role == ASSISTANT else USER
    parts: List[chat.Part] = []
    for position, part in enumerate(message.parts):
        if isinstance(part, chat.ToolUse):
            part = _clean_use(part, f"tooluse_{index}_{position}")
            if role == USER or not tools_declared:
                parts.append(chat.Text(use_as_text(part)))
                continue
        elif isinstance(part, chat.ToolResult):
            if role == ASSISTANT or not tools_declared:
                parts.extend(result_as_parts(part, keep_images=role == USER))
                continue
        elif isinstance(part, chat.Thinking) and role == USER:
            continue
        elif isinstance(part, chat.Image) and role == ASSISTANT:
            part = chat.Text(IMAGE_OMITTED)
        parts.append(part)
    return chat.Message(role, tuple(parts))


def _clean_use(use: chat.ToolUse, fallback_id: str) -> chat.ToolUse:
    tool_input = without_empty_keys(use.input) if isinstance(use.input, dict) else {}
    # An id-less call still needs an id to be answered; the position makes it deterministic.
    return chat.ToolUse(use.id or fallback_id, use.name, tool_input)


def _merge(messages: Sequence[chat.Message]) -> List[chat.Message]:
    merged: List[chat.Message] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            merged[-1] = chat.Message(message.role, merged[-1].parts + message.parts)
        else:
            merged.append(message)
    return merged


def _dedupe_uses(message: chat.Message) -> chat.Message:
    seen: Set[str] = set()
    parts: List[chat.Part] = []
    for part in message.parts:
        if isinstance(part, chat.ToolUse):
            if part.id in seen:
                continue
            seen.add(part.id)
        parts.append(part)
    if len(parts) != len(message.parts):
        log.debug("dropped %d duplicate tool uses", len(message.parts) - len(parts))
    return chat.Message(message.role, tuple(parts))


def _pair_results(message: chat.Message, previous: Tuple[chat.ToolUse, ...]) -> chat.Message:
    """Keep one result per preceding tool use, render the rest as text, answer the missing."""
    wanted = {use.id for use in previous}
    answered: Set[str] = set()
    kept: List[chat.Part] = []
    others: List[chat.Part] = []
    for part in message.parts:
        if not isinstance(part, chat.ToolResult):
            others.append(part)
        elif part.tool_use_id in wanted and part.tool_use_id not in answered:
            answered.add(part.tool_use_id)
            kept.append(part)
        else:
            others.extend(result_as_parts(part, keep_images=True))
    missing = [chat.ToolResult(use.id, (chat.Text(NO_RESULT),), is_error=True)
               for use in previous if use.id not in answered]
    if missing:
        log.debug("answered %d unanswered tool uses with an error result", len(missing))
    return chat.Message(USER, tuple(kept + missing + others))
