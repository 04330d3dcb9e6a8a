"""Build Kiro's generateAssistantResponse body from a neutral ChatRequest.

Renders the repaired conversation (history.py), tool declarations, the system prompt with the
instructions the proxy generates, thinking settings, and trims old history to the size limit.
Pure: no I/O; logs counts only, never content.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .. import chat
from ..errors import TooLarge
from . import history

log = logging.getLogger(__name__)

MAX_TOOL_NAME = 64
MAX_DESCRIPTION = 9000
MAX_TOOLS = 50
THINKING_MIN, THINKING_MAX, THINKING_DEFAULT = 1024, 24576, 16000
EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")  # weakest first
PROMPT_EFFORTS = ("low", "medium", "high")
IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}

CONTINUE = "Continue"
EMPTY = "(empty)"
RESULTS_ONLY = "Tool results provided."
STUB_DESCRIPTION = "A tool used earlier in this conversation."
THINKING_MODE_TAG = "<thinking_mode>"

_VALID_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_SCHEMA_ONE = ("items", "additionalItems", "not", "if", "then", "else", "contains", "propertyNames")
_SCHEMA_DROPPED = ("additionalProperties", "$schema")


@dataclass(frozen=True)
class Payload:
    body: dict                    # the JSON body to POST
    tool_names: Dict[str, str]    # name sent upstream -> client's original name (only for renamed tools)
    trimmed: int                  # history messages dropped to fit the size limit


@dataclass(frozen=True)
class _Settings:
    model_id: str
    origin: str
    conversation_id: str
    profile_arn: Optional[str]
    native_efforts: Optional[Tuple[str, ...]]


def build(req: chat.ChatRequest, *, model_id: str, profile_arn: Optional[str] = None,
          conversation_id: Optional[str] = None, origin: str = "AI_EDITOR",
          max_body_bytes: int = 600_000,
          native_thinking_efforts: Optional[Sequence[str]] = None) -> Payload:
    """The body for one request, with the oldest history dropped until it fits `max_body_bytes`.

    The size is that of compact JSON (separators (",", ":"), ensure_ascii=False) in UTF-8: send
    the body serialised that way. `native_thinking_efforts` (the model's effort enum, possibly
    empty) selects native thinking over prompt tags. Raises TooLarge when the current message,
    system prompt and tools alone exceed the limit.
    """
    settings = _Settings(model_id, origin, conversation_id or str(uuid.uuid4()), profile_arn or None,
                         tuple(native_thinking_efforts) if native_thinking_efforts is not None else None)
    messages = history.repair(req.messages, tools_declared=bool(req.tools))
    body, names = _render(req, messages, settings)
    if encoded_size(body) <= max_body_bytes:
        return Payload(body, names, 0)

    def without_pairs(count: int) -> Tuple[dict, Dict[str, str]]:
        # Repairing the tail again turns results answering a dropped turn into text.
        tail = history.repair(messages[2 * count:], tools_declared=bool(req.tools))
        return _render(req, tail, settings)

    pairs = (len(messages) - 1) // 2
    best = without_pairs(pairs)
    size = encoded_size(best[0])
    if size > max_body_bytes:
        raise TooLarge(f"The request needs {size} bytes upstream even without earlier history, over the "
                       f"{max_body_bytes}-byte limit; shorten the last message, its tool results or "
                       "the tool definitions.")
    fits, too_big = pairs, 0
    while fits - too_big > 1:
        middle = (fits + too_big) // 2
        candidate = without_pairs(middle)
        if encoded_size(candidate[0]) <= max_body_bytes:
            fits, best = middle, candidate
        else:
            too_big = middle
    log.info("trimmed %d of %d history messages to fit %d bytes", 2 * fits, len(messages) - 1,
             max_body_bytes)
    return Payload(best[0], best[1], 2 * fits)


def encoded_size(body: dict) -> int:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a lone surrogate from a client's JSON must not crash the size check.
    return len(text.encode("utf-8", "surrogatepass"))


def _render(req: chat.ChatRequest, messages: Sequence[chat.Message],
            settings: _Settings) -> Tuple[dict, Dict[str, str]]:
    """(body, upstream name -> original name for renamed tools) for repaired messages."""
    used = [u.name for m in messages if m.role == history.ASSISTANT for u in history.uses(m)]
    names = _upstream_names([t.name for t in req.tools] + used)
    specs, overflow = _tool_specs(req.tools, used, names)
    system = _system_text(req, names, overflow)
    mode = _thinking_mode(req.thinking)
    prompt_thinking = mode is not None and settings.native_efforts is None
    tags = _thinking_tags(req.thinking) if prompt_thinking else ""
    entries: List[dict] = []
    for index, message in enumerate(messages):
        current = index == len(messages) - 1
        if message.role == history.ASSISTANT:
            entries.append({"assistantResponseMessage": _assistant(message, names, prompt_thinking)})
            continue
        lead = (tags, system) if index == 0 else None
        entries.append({"userInputMessage": _user(message, settings, lead=lead, current=current,
                                                  tools=specs if current else [])})
    state = _members(conversationId=settings.conversation_id, chatTriggerType="MANUAL",
                     agentTaskType="vibe", history=entries[:-1], currentMessage=entries[-1])
    native = None
    if mode is not None and settings.native_efforts is not None:
        native = _native_fields(req.thinking, settings.native_efforts)
    body = _members(conversationState=state, profileArn=settings.profile_arn,
                    additionalModelRequestFields=native)
    renamed = {upstream: original for original, upstream in names.items() if upstream != original}
    return body, renamed


def _members(**members: object) -> dict:
    """Kiro rejects null members and empty objects/arrays: leave them out."""
    return {k: v for k, v in members.items() if v is not None and not (isinstance(v, (dict, list)) and not v)}


def _joined(texts: Sequence[str]) -> str:
    return "\n\n".join(t for t in texts if t.strip())


# ----- messages --------------------------------------------------------------------------------


def _user(message: chat.Message, settings: _Settings, *, lead: Optional[Tuple[str, str]],
          current: bool, tools: List[dict]) -> dict:
    """A userInputMessage; `lead` (thinking tags, system text) goes before the first one's text."""
    texts: List[str] = []
    images: List[dict] = []
    results: List[dict] = []
    for part in message.parts:
        if isinstance(part, chat.Text):
            texts.append(part.text)
        elif isinstance(part, chat.Image):
            _add_image(part, images, texts)
        elif isinstance(part, chat.ToolResult):
            for piece in part.content:
                if isinstance(piece, chat.Image):
                    _add_image(piece, images, texts)
            results.append(_result(part))
    content = _joined(texts) or (RESULTS_ONLY if results else CONTINUE if current else EMPTY)
    if lead is not None:
        tags, system = lead
        if THINKING_MODE_TAG in system or THINKING_MODE_TAG in content:
            tags = ""  # the client already chose a thinking mode in its own text
        head = "\n\n".join(x for x in (tags, system) if x)
        content = f"{head}\n\n{content}" if head else content
    context = _members(tools=tools, toolResults=results)
    return _members(content=content, modelId=settings.model_id, origin=settings.origin, images=images,
                    userInputMessageContext=context)


def _result(result: chat.ToolResult) -> dict:
    text = result.text
    if not text.strip():
        has_image = any(isinstance(p, chat.Image) for p in result.content)
        text = "(the result is attached as an image)" if has_image else history.EMPTY_RESULT
    return {"toolUseId": result.tool_use_id, "status": "error" if result.is_error else "success",
            "content": [{"text": text}]}


def _add_image(image: chat.Image, images: List[dict], texts: List[str]) -> None:
    data = image.data.strip()
    declared = image.media_type.strip().lower()
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        declared = declared or header[5:].split(";")[0].lower()
    image_format = IMAGE_FORMATS.get(declared.rpartition("/")[2])
    if image_format is None or not data:
        texts.append(f"[image omitted: unsupported format {declared or 'unknown'}]")
        return
    images.append({"format": image_format, "source": {"bytes": data}})


def _assistant(message: chat.Message, names: Dict[str, str], replay_thinking: bool) -> dict:
    text = _joined([p.text for p in message.parts if isinstance(p, chat.Text)])
    thoughts = [p.text for p in message.parts if isinstance(p, chat.Thinking) and p.text.strip()]
    if replay_thinking and thoughts:
        # Prompt-tag mode: earlier reasoning goes back in the shape the model produced it.
        thinking = "<thinking>" + "\n\n".join(thoughts) + "</thinking>"
        content = f"{thinking}\n\n{text}" if text else thinking
    else:
        content = text or EMPTY
    tool_uses = [{"toolUseId": u.id, "name": names[u.name], "input": u.input} for u in history.uses(message)]
    return _members(content=content, toolUses=tool_uses)


# ----- tools -----------------------------------------------------------------------------------


def _upstream_names(originals: Sequence[str]) -> Dict[str, str]:
    """Original -> upstream name: valid, at most 64 chars, unique ignoring case, deterministic."""
    names: Dict[str, str] = {}
    taken = set()
    for original in originals:
        if original in names:
            continue
        name = original
        if not (_VALID_NAME.match(name) and len(name) <= MAX_TOOL_NAME) or name.lower() in taken:
            name = _short_name(original, taken)
        names[original] = name
        taken.add(name.lower())
    return names


def _short_name(original: str, taken: set) -> str:
    """A readable prefix of the name plus a hash of the whole name."""
    prefix = re.sub(r"^[^A-Za-z]+", "", re.sub(r"[^A-Za-z0-9_-]", "_", original)) or "tool"
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()
    for length in range(8, len(digest) + 1, 4):
        candidate = f"{prefix[:MAX_TOOL_NAME - length - 1]}_{digest[:length]}"
        if candidate.lower() not in taken:
            return candidate
    counter = 2
    while f"tool_{digest[:40]}_{counter}".lower() in taken:
        counter += 1
    return f"tool_{digest[:40]}_{counter}"


def _tool_specs(tools: Sequence[chat.Tool], used: Sequence[str],
                names: Dict[str, str]) -> Tuple[List[dict], List[str]]:
    """(toolSpecification entries, system-prompt blocks holding overlong descriptions)."""
    if not tools:
        return [], []
    specs: List[dict] = []
    overflow: List[str] = []
    declared = set()
    for tool in tools:
        if tool.name in declared:
            continue  # a duplicate declaration: tool uses could not tell them apart anyway
        declared.add(tool.name)
        name = names[tool.name]
        description = tool.description if tool.description.strip() else f"The {name} tool."
        if len(description) > MAX_DESCRIPTION:
            heading = f"Full description of the tool {name}"
            overflow.append(f"# {heading}\n\n{description}")
            note = f"\u2026 (truncated; see \"{heading}\" in the system prompt)"
            description = description[:MAX_DESCRIPTION - len(note)] + note
        specs.append(_spec(name, description, clean_schema(tool.schema)))
    stubs = [n for n in dict.fromkeys(used) if n not in declared]
    # The client dropped a tool its history still calls; Kiro needs every used name declared.
    specs.extend(_spec(names[n], STUB_DESCRIPTION, {"type": "object"}) for n in stubs)
    if len(specs) > MAX_TOOLS:
        log.warning("sending %d tools; Kiro may reject more than %d", len(specs), MAX_TOOLS)
    return specs, overflow


def _spec(name: str, description: str, schema: dict) -> dict:
    return {"toolSpecification": {"name": name, "description": description, "inputSchema": {"json": schema}}}


def clean_schema(schema: object) -> dict:
    """A tool input schema Kiro accepts; never with empty `properties` or `required`."""
    cleaned = _clean_node(schema) if isinstance(schema, dict) else {}
    if "type" not in cleaned:
        cleaned = {"type": "object", **cleaned}
    return cleaned


def _clean_node(node: dict) -> dict:
    cleaned = {}
    for key, value in node.items():
        if key in _SCHEMA_DROPPED:
            continue
        # Only recurse where the value is a schema: a property may well be named "$schema".
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {k: _clean_node(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_clean_node(v) if isinstance(v, dict) else v for v in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            value = _clean_node(value)
        if key == "required" and not (isinstance(value, list) and value):
            continue
        if key == "properties" and not (isinstance(value, dict) and value):
            continue
        cleaned[key] = value
    return cleaned


# ----- system prompt and thinking --------------------------------------------------------------


def _system_text(req: chat.ChatRequest, names: Dict[str, str], overflow: Sequence[str]) -> str:
    blocks = [req.system] if req.system.strip() else []
    blocks.extend(overflow)
    blocks.append(_tool_choice_text(req, names))
    if req.response_format is not None:
        blocks.append(_json_mode_text(req.response_format))
    return "\n\n".join(b for b in blocks if b)


def _tool_choice_text(req: chat.ChatRequest, names: Dict[str, str]) -> str:
    # Kiro has no tool_choice field; declarations stay (history may use them) and the model is told.
    choice = req.tool_choice
    if not req.tools or choice.mode == "auto":
        return ""
    if choice.mode == "none":
        return "Do not call any tools in this reply; answer with text only."
    if choice.mode == "tool" and choice.name:
        return f"You must call the tool `{names.get(choice.name, choice.name)}` in this reply."
    if choice.mode in ("required", "tool"):
        return "You must call at least one of the available tools in this reply."
    return ""


def _json_mode_text(response_format: chat.ResponseFormat) -> str:
    text = ("Reply with a single valid JSON value and nothing else: no prose before or after it and "
            "no Markdown code fences.")
    if response_format.schema:
        schema = json.dumps(response_format.schema, ensure_ascii=False, separators=(",", ":"))
        label = f" \"{response_format.name}\"" if response_format.name else ""
        text += f"\nThe JSON must match this JSON Schema{label}: {schema}"
    return text


def _thinking_mode(thinking: Optional[chat.ThinkingConfig]) -> Optional[str]:
    if thinking is None or thinking.mode not in ("enabled", "adaptive"):
        return None
    return thinking.mode


def _thinking_tags(thinking: chat.ThinkingConfig) -> str:
    if thinking.mode == "adaptive":
        effort = _clamp_effort(thinking.effort or "high", PROMPT_EFFORTS)
        return f"<thinking_mode>adaptive</thinking_mode><thinking_effort>{effort}</thinking_effort>"
    budget = min(max(thinking.budget or THINKING_DEFAULT, THINKING_MIN), THINKING_MAX)
    return f"<thinking_mode>enabled</thinking_mode><max_thinking_length>{budget}</max_thinking_length>"


def _native_fields(thinking: chat.ThinkingConfig, allowed: Sequence[str]) -> dict:
    fields: dict = {"thinking": {"type": "adaptive", "display": "summarized"}}
    if allowed:
        fields["output_config"] = {"effort": _clamp_effort(_wanted_effort(thinking, allowed), allowed)}
    return fields


def _wanted_effort(thinking: chat.ThinkingConfig, allowed: Sequence[str]) -> str:
    if thinking.effort:
        return thinking.effort
    budget = thinking.budget
    if budget is None:
        return "high"
    for limit, effort in ((4096, "low"), (16384, "medium"), (65536, "high")):
        if budget <= limit:
            return effort
    known = [e for e in EFFORTS if e in allowed]
    return known[-1] if known else allowed[-1]


def _clamp_effort(wanted: str, allowed: Sequence[str]) -> str:
    """`wanted` if allowed, else the strongest allowed effort not above it (else the weakest)."""
    if wanted in allowed:
        return wanted
    known = [e for e in EFFORTS if e in allowed]
    if not known:
        return allowed[-1]
    rank = EFFORTS.index(wanted) if wanted in EFFORTS else EFFORTS.index("high")
    below = [e for e in known if EFFORTS.index(e) <= rank]
    return below[-1] if below else known[0]
