"""Gemini function declarations and toolConfig -> neutral tools, tool choice and schemas.

Accepts OpenAPI-style `parameters` and plain JSON Schema `parametersJsonSchema`, camelCase and
snake_case. Pure: no Flask, no I/O; raises BadRequest naming the field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import chat
from ..errors import BadRequest

# Gemini's OpenAPI-subset schema keywords written in snake_case, and those JSON Schema lacks.
SCHEMA_KEYWORDS = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems",
                   "min_length": "minLength", "max_length": "maxLength",
                   "min_properties": "minProperties", "max_properties": "maxProperties"}
SCHEMA_DROPPED = ("nullable", "propertyOrdering", "property_ordering")
SCHEMA_DATA = ("enum", "const", "default", "examples", "example")  # values, not schemas
CALLING_MODES = ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED")
CONFIG = "toolConfig.functionCallingConfig"

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def field(obj: Dict[str, Any], name: str) -> Any:
    """obj[name] for a camelCase name, falling back to its snake_case spelling."""
    if name in obj:
        return obj[name]
    return obj.get(_CAMEL.sub("_", name).lower())


@dataclass(frozen=True)
class Offer:
    """The tools to send, the choice among them, and a note for the system prompt (or "")."""

    tools: Tuple[chat.Tool, ...]
    choice: chat.ToolChoice
    note: str = ""


def offer(tools: Any, config: Any, history: Sequence[chat.Message]) -> Offer:
    """Declarations and toolConfig together: allowedFunctionNames narrows what is offered.

    Functions left out are not declared upstream. When the history calls one of them the payload
    still declares it (as a stub, so the history stays valid), and the note tells the model
    which functions it may call.
    """
    declared = _tools(tools)
    mode, allowed = _calling(config)
    if mode == "NONE":
        return Offer(declared, chat.ToolChoice("none"))
    if allowed:
        declared = _narrowed(declared, allowed)
    choice = chat.ToolChoice()  # AUTO and VALIDATED: the model decides among what is offered
    offered = list(dict.fromkeys(t.name for t in declared))
    if mode == "ANY":
        choice = chat.ToolChoice("tool", offered[0]) if allowed and len(offered) == 1 else chat.ToolChoice("required")
    note = ""
    used = {p.name for m in history if m.role == "assistant" for p in m.parts if isinstance(p, chat.ToolUse)}
    if allowed and used - set(offered):
        note = "In this reply you may call only these functions: " + ", ".join(offered) + "."
    return Offer(declared, choice, note)


def _calling(config: Any) -> Tuple[str, Tuple[str, ...]]:
    """(mode, allowed function names) from a toolConfig."""
    if config is None:
        return "AUTO", ()
    if not isinstance(config, dict):
        raise BadRequest("toolConfig: must be an object", param="toolConfig")
    calling = field(config, "functionCallingConfig")
    if calling is None:
        return "AUTO", ()
    if not isinstance(calling, dict):
        raise BadRequest(f"{CONFIG}: must be an object", param="toolConfig")
    raw_mode = calling.get("mode")
    if raw_mode is None or raw_mode == "":
        mode = "AUTO"
    else:
        mode = raw_mode.upper() if isinstance(raw_mode, str) else ""  # "" is no mode: rejected below
    if mode not in CALLING_MODES:
        raise BadRequest(f"{CONFIG}.mode: must be one of AUTO, ANY, NONE or VALIDATED, got {raw_mode!r}",
                         param="toolConfig")
    allowed = field(calling, "allowedFunctionNames")
    if allowed is None:
        allowed = []
    if not isinstance(allowed, list) or not all(isinstance(n, str) and n for n in allowed):
        raise BadRequest(f"{CONFIG}.allowedFunctionNames: must be a list of function names", param="toolConfig")
    return mode, tuple(allowed)


def _narrowed(declared: Tuple[chat.Tool, ...], allowed: Tuple[str, ...]) -> Tuple[chat.Tool, ...]:
    kept = tuple(t for t in declared if t.name in allowed)
    if not kept:
        # Names the client declared elsewhere are tolerated; naming none at all is a mistake.
        raise BadRequest(f"{CONFIG}.allowedFunctionNames: none of {list(allowed)!r} is a declared function",
                         param="toolConfig")
    return kept


def _tools(tools: Any) -> Tuple[chat.Tool, ...]:
    if tools is None:
        return ()
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise BadRequest("tools: must be a list of tool objects", param="tools")
    out: List[chat.Tool] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{index}: must be an object", param="tools")
        # googleSearch, codeExecution, urlContext...: Google's own tools, not available via Kiro.
        declarations = field(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise BadRequest(f"tools.{index}.functionDeclarations: must be a list", param="tools")
        for number, declaration in enumerate(declarations):
            out.append(_declaration(declaration, f"tools.{index}.functionDeclarations.{number}"))
    return tuple(out)


def _declaration(declaration: Any, where: str) -> chat.Tool:
    if not isinstance(declaration, dict):
        raise BadRequest(f"{where}: must be an object", param="tools")
    name = declaration.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: a function name is required", param="tools")
    description = declaration.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest(f"{where}.description: must be a string", param="tools")
    plain = field(declaration, "parametersJsonSchema")
    legacy = declaration.get("parameters")
    if plain is not None:
        if not isinstance(plain, dict):
            raise BadRequest(f"{where}.parametersJsonSchema: must be a JSON Schema object", param="tools")
        schema = lower_types(plain)
    elif legacy is not None:
        if not isinstance(legacy, dict):
            raise BadRequest(f"{where}.parameters: must be a schema object", param="tools")
        schema = json_schema(legacy)
    else:
        schema = {"type": "object", "properties": {}}
    return chat.Tool(name, description or "", schema)


def json_schema(node: Dict[str, Any]) -> Dict[str, Any]:
    """JSON Schema from Gemini's OpenAPI subset: lower-case types, `nullable` as a null type."""
    out: Dict[str, Any] = {}
    for key, value in node.items():
        key = SCHEMA_KEYWORDS.get(key, key)
        if key in SCHEMA_DROPPED:
            continue
        if key == "type" and isinstance(value, str):
            value = value.lower()
            if value == "type_unspecified":
                continue
        elif key == "properties" and isinstance(value, dict):
            value = {name: json_schema(v) if isinstance(v, dict) else v for name, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            value = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [json_schema(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("anyOf"), list):
            out["anyOf"] = out["anyOf"] + [{"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


def lower_types(node: Any) -> Any:
    """A plain JSON Schema with upper-case `type` names lower-cased (Gemini CLI writes "OBJECT"
    even in responseJsonSchema); everything else is kept as sent."""
    if isinstance(node, list):
        return [lower_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            value = value.lower()
        elif key == "type" and isinstance(value, list):
            value = [v.lower() if isinstance(v, str) else v for v in value]
        elif key not in SCHEMA_DATA:
            value = lower_types(value)
        out[key] = value
    return out


def schema_of(value: Any, where: str, *, openapi: bool) -> Optional[Dict[str, Any]]:
    """A response schema: None when absent (or a boolean JSON Schema), else a JSON Schema object."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: must be a schema object", param="generationConfig")
    return json_schema(value) if openapi else lower_types(value)
