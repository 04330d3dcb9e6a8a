"""OpenAI Responses API (what Codex CLI uses): parse requests, render and stream responses.

Also shapes the record the response store keeps for `previous_response_id`. Pure: no Flask,
no I/O; the view loads and saves records. Errors use OpenAI's shape (protocols.openai).
"""
from __future__ import annotations

import json
import logging
import secrets
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .. import chat, jsonmode
from ..errors import BadRequest, ProxyError, TooLarge
from . import fields
from .openai import error_body
from .openai_messages import stream_flag
from .response_items import (
    IdMaker,
    Toolbox,
    arguments_text,
    call_item,
    conversation,
    custom_input,
    input_items,
    message_item,
    reasoning_item,
    text_part,
    tool_choice,
    toolbox,
)
from .sse import comment, sse

log = logging.getLogger(__name__)

__all__ = ["NAME", "new_id", "new_item_id", "parse", "should_store", "render", "encode_stream", "record",
           "error_body", "usage_body"]

NAME = "responses"
THINKING_OFF = ("none", "minimal")


def new_id() -> str:
    return "resp_" + secrets.token_hex(24)


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def parse(body: Any, previous: Optional[dict]) -> chat.ChatRequest:
    """A ChatRequest from a Responses body; `previous` is the stored record() of the response
    named by previous_response_id (its items come first). Raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is None and previous:
        model = (previous.get("response") or {}).get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: a model name is required", param="model")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("instructions: must be a string", param="instructions")
    fields.number(body.get("top_p"), "top_p")
    box = toolbox(body.get("tools"))
    earlier = [item for item in (previous or {}).get("items") or [] if isinstance(item, dict)]
    current = input_items(body.get("input"))
    if not current and not earlier:
        raise BadRequest("input: a string or a non-empty list of items is required", param="input")
    system, messages = conversation([("previous_response", earlier), ("input", current)], box)
    if not messages:
        raise BadRequest("input: at least one user or assistant message is required", param="input")
    return chat.ChatRequest(
        model=model.strip(),
        messages=tuple(messages),
        # Like OpenAI, instructions are not carried over from the previous response.
        system="\n\n".join(text for text in [instructions or "", *system] if text),
        tools=box.tools,
        tool_choice=tool_choice(body.get("tool_choice"), box),
        max_tokens=fields.positive_int(body.get("max_output_tokens"), "max_output_tokens"),
        thinking=_thinking(body.get("reasoning")),
        response_format=_response_format(body.get("text")),
        temperature=fields.number(body.get("temperature"), "temperature"),
        stream=stream_flag(body),
    )


def should_store(body: Any) -> bool:
    """Responses are stored unless the client sent `store: false` (as Codex does)."""
    return not (isinstance(body, dict) and body.get("store") is False)


def _thinking(reasoning: Any) -> Optional[chat.ThinkingConfig]:
    raw = reasoning.get("effort") if isinstance(reasoning, dict) else None
    effort = fields.word(raw, "reasoning.effort", "reasoning")
    if effort is None or effort in THINKING_OFF:
        return None
    return chat.ThinkingConfig("adaptive", None, effort)


def _response_format(text: Any) -> Optional[chat.ResponseFormat]:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema, name = fmt.get("schema"), fmt.get("name")
        return chat.ResponseFormat(schema if isinstance(schema, dict) else None,
                                   name if isinstance(name, str) else None)
    if fmt.get("type") == "json_object":
        return chat.ResponseFormat()
    return None


def usage_body(usage: chat.Usage) -> Dict[str, Any]:
    input_tokens, output_tokens = usage.input_tokens or 0, usage.output_tokens or 0
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cache_read_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}


def _document(body: Any, response_id: str, created: int, status: str, output: List[dict], *,
              model: Optional[str] = None, usage: Optional[dict] = None, error: Optional[dict] = None,
              incomplete: Optional[str] = None) -> Dict[str, Any]:
    """The response object; request settings are echoed back as the real API does. `model` is
    the one served (a follow-up may inherit it), else the request's."""
    body = body if isinstance(body, dict) else {}
    reasoning = body.get("reasoning")
    tools = body.get("tools")
    text = body.get("text")
    return {
        "id": response_id, "object": "response", "created_at": created, "status": status,
        "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
        "max_output_tokens": body.get("max_output_tokens") if isinstance(body.get("max_output_tokens"), int) else None,
        "model": model or str(body.get("model") or ""),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id") or None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
        if isinstance(reasoning, dict) else None,
        "store": should_store(body),
        "temperature": body.get("temperature") if fields.is_number(body.get("temperature")) else None,
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") if isinstance(body.get("tool_choice"), (str, dict)) else "auto",
        "tools": [tool for tool in tools if isinstance(tool, dict)] if isinstance(tools, list) else [],
        "top_p": body.get("top_p") if fields.is_number(body.get("top_p")) else None,
        "truncation": "disabled",
        "usage": usage,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
    }


def _outcome(finish: str) -> Tuple[str, Optional[str]]:
    """(status, incomplete reason) for a neutral finish reason."""
    if finish == "max_tokens":
        return "incomplete", "max_output_tokens"
    if finish == "refusal":
        return "incomplete", "content_filter"
    return "completed", None


def _box(body: Any) -> Toolbox:
    return toolbox(body.get("tools")) if isinstance(body, dict) else Toolbox()


def render(reply: chat.Reply, *, body: Any, response_id: str, created: int, ids: IdMaker = new_item_id,
           model: Optional[str] = None, json_mode: bool = False) -> Dict[str, Any]:
    """The whole response object for a collected reply (created_at = `created`, epoch seconds).

    `model` names the model served (ChatRequest.model); json_mode cuts fenced or prose-wrapped
    JSON down to the JSON, so the SDK's responses.parse() can read it."""
    box = _box(body)
    output: List[dict] = []
    for part in jsonmode.json_parts(reply.parts) if json_mode else reply.parts:
        if isinstance(part, chat.Thinking) and part.text:
            output.append(reasoning_item(ids("rs"), part.text, "completed"))
        elif isinstance(part, chat.Text) and part.text:
            output.append(message_item(ids("msg"), part.text, "completed"))
        elif isinstance(part, chat.ToolUse):
            custom = box.origin(part.name).kind == "custom"
            value = custom_input(part.input) if custom else arguments_text("", part.input)
            output.append(call_item(ids, box, part.id, part.name, value, "completed"))
    status, reason = _outcome(reply.finish)
    if status == "incomplete" and output:
        output[-1]["status"] = "incomplete"
    return _document(body, response_id, created, status, output, model=model, usage=usage_body(reply.usage),
                     incomplete=reason)


def record(body: Any, previous: Optional[dict], response: dict) -> Dict[str, Any]:
    """What the store keeps: the response object and the whole conversation so far as input
    items (the previous record's items, this request's input, this response's output)."""
    body = body if isinstance(body, dict) else {}
    items = [item for item in (previous or {}).get("items") or [] if isinstance(item, dict)]
    try:
        items += input_items(body.get("input"))
    except BadRequest:  # parse() accepted it already; never fail a finished answer over this
        log.debug("record: unreadable input items left out")
    items += [dict(item) for item in response.get("output") or [] if isinstance(item, dict)]
    instructions = body.get("instructions")
    return {"response": response, "items": items,
            "instructions": instructions if isinstance(instructions, str) else None}


def encode_stream(stream: chat.Stream, *, body: Any, response_id: str, created: int,
                  on_complete: Callable[[dict], None], ids: IdMaker = new_item_id,
                  model: Optional[str] = None, json_mode: bool = False) -> Iterator[bytes]:
    """The Responses SSE event sequence, as the neutral events arrive.

    Ends with response.completed or response.incomplete (after calling on_complete with the
    final response object, so it is stored before the client can chain to it), or with
    response.failed when the upstream fails mid-answer. Always closes `stream`. `model` and
    json_mode as for render (here json_mode only drops a ```json fence around the text).
    """
    writer = _Writer(body, response_id, created, ids, model)
    usage = chat.Usage(input_tokens=stream.input_tokens)
    finish = "end_turn"  # a stream that ends without Finish still gets a terminal event
    events = jsonmode.strip_fences(stream) if json_mode else iter(stream)
    try:
        yield writer.event("response.created", response=writer.document("in_progress"))
        yield writer.event("response.in_progress", response=writer.document("in_progress"))
        for event in events:
            if isinstance(event, chat.Usage):
                usage = chat.merge_usage(usage, event)
            elif isinstance(event, chat.Heartbeat):
                yield comment()
            elif isinstance(event, chat.Finish):
                finish = event.reason
                break
            else:
                yield from writer.feed(event)
        status, reason = _outcome(finish)
        yield from writer.close(status)
        document = writer.document(status, usage=usage_body(usage), incomplete=reason)
        on_complete(document)
        yield writer.event(f"response.{status}", response=document)
    except ProxyError as exc:
        log.info("response %s failed mid-stream: %s", response_id, exc.message)
        yield writer.event("response.failed", response=writer.failed(exc))
    finally:
        stream.close()


class _Writer:
    """The stream's state: the next sequence number, the output items so far, the open one."""

    def __init__(self, body: Any, response_id: str, created: int, ids: IdMaker, model: Optional[str]) -> None:
        self.body, self.response_id, self.created, self.ids = body, response_id, created, ids
        self.model = model
        self.box = _box(body)
        self.seq = 0
        self.output: List[dict] = []
        self.item: Optional[dict] = None  # the open item, always the last of `output`
        self.pieces: List[str] = []  # its streamed text, reasoning or arguments
        self.call_id: Optional[str] = None
        self.arguments: Optional[dict] = None  # the parsed arguments once its call ended

    def event(self, kind: str, **fields: Any) -> bytes:
        data: Dict[str, Any] = {"type": kind, "sequence_number": self.seq}
        data.update(fields)
        self.seq += 1
        return sse(data, kind)

    def document(self, status: str, **kw: Any) -> Dict[str, Any]:
        return _document(self.body, self.response_id, self.created, status, self.output, model=self.model, **kw)

    def _place(self) -> Dict[str, Any]:
        """The open item's address, as every item event carries it."""
        return {"item_id": self.item["id"], "output_index": len(self.output) - 1}

    def _is_open(self, kind: str) -> bool:
        return self.item is not None and self.item["type"] == kind

    def _open(self, item: Dict[str, Any]) -> Iterator[bytes]:
        yield from self.close("completed")
        self.item, self.pieces, self.call_id, self.arguments = item, [], None, None
        self.output.append(item)
        yield self.event("response.output_item.added", output_index=len(self.output) - 1, item=dict(item))

    def feed(self, event: chat.Event) -> Iterator[bytes]:
        if isinstance(event, chat.TextDelta) and event.text:
            if not self._is_open("message"):
                yield from self._open(message_item(self.ids("msg"), None, "in_progress"))
                yield self.event("response.content_part.added", **self._place(), content_index=0, part=text_part(""))
            self.pieces.append(event.text)
            yield self.event("response.output_text.delta", **self._place(), content_index=0, delta=event.text,
                             logprobs=[])
        elif isinstance(event, chat.ThinkingDelta) and event.text:
            if not self._is_open("reasoning"):
                yield from self._open(reasoning_item(self.ids("rs"), None, "in_progress"))
                yield self.event("response.reasoning_summary_part.added", **self._place(), summary_index=0,
                                 part={"type": "summary_text", "text": ""})
            self.pieces.append(event.text)
            yield self.event("response.reasoning_summary_text.delta", **self._place(), summary_index=0,
                             delta=event.text)
        elif isinstance(event, chat.ThinkingSignature):
            if self._is_open("reasoning"):
                yield from self.close("completed")  # a signature ends one thinking block
        elif isinstance(event, chat.ToolCallStart):
            yield from self._open(call_item(self.ids, self.box, event.id, event.name, "", "in_progress"))
            self.call_id = event.id
        elif isinstance(event, chat.ToolCallDelta):
            if self.call_id == event.id and event.fragment:
                self.pieces.append(event.fragment)
                if self._is_open("function_call"):
                    yield self.event("response.function_call_arguments.delta", **self._place(),
                                     delta=event.fragment)
        elif isinstance(event, chat.ToolCallEnd):
            if self.call_id == event.id:
                self.arguments = event.input
                yield from self.close("completed")

    def close(self, status: str) -> Iterator[bytes]:
        """Finish the open item: its done events, then response.output_item.done."""
        if self.item is None:
            return
        place, kind = self._place(), self.item["type"]
        self._settle(status)
        item = self.item
        if kind == "message":
            part = item["content"][0]
            yield self.event("response.output_text.done", **place, content_index=0, text=part["text"], logprobs=[])
            yield self.event("response.content_part.done", **place, content_index=0, part=part)
        elif kind == "reasoning":
            part = item["summary"][0]
            yield self.event("response.reasoning_summary_text.done", **place, summary_index=0, text=part["text"])
            yield self.event("response.reasoning_summary_part.done", **place, summary_index=0, part=part)
        elif kind == "function_call":
            yield self.event("response.function_call_arguments.done", **place, arguments=item["arguments"])
        else:
            # Custom input arrives as JSON fragments of {"input": ...}; it goes out whole.
            if item["input"]:
                yield self.event("response.custom_tool_call_input.delta", **place, delta=item["input"])
            yield self.event("response.custom_tool_call_input.done", **place, input=item["input"])
        self.item = None
        yield self.event("response.output_item.done", output_index=place["output_index"], item=item)

    def _settle(self, status: str) -> None:
        """Give the open item its final content (what streamed so far) and status."""
        item, streamed = self.item, "".join(self.pieces)
        if item["type"] == "message":
            item["content"] = [text_part(streamed)]
        elif item["type"] == "reasoning":
            item["summary"] = [{"type": "summary_text", "text": streamed}]
        elif item["type"] == "function_call":
            item["arguments"] = arguments_text(streamed, self.arguments)
        else:
            arguments = self.arguments
            if arguments is None:
                try:
                    arguments = json.loads(streamed) if streamed else {}
                except ValueError:
                    arguments = {"input": streamed}
            item["input"] = custom_input(arguments if isinstance(arguments, dict) else {})
        item["status"] = status

    def failed(self, error: ProxyError) -> Dict[str, Any]:
        """The failed response object; a half-streamed item is kept, marked incomplete."""
        if self.item is not None:
            self._settle("incomplete")
            self.item = None
        return self.document("failed", error=_error(error))


def _error(error: ProxyError) -> Dict[str, str]:
    """response.error for a mid-stream failure, in the codes Codex acts on."""
    message = error.message
    if isinstance(error, TooLarge):
        code = "context_length_exceeded"
    elif error.status == 429:
        code = "rate_limit_exceeded"
        if error.retry_after:  # Codex reads the delay from this sentence
            message += f" Please try again in {max(1, round(error.retry_after))}s."
    elif 400 <= error.status < 500:
        code = "invalid_prompt"
    else:
        code = "server_error"  # retryable for Codex: truncated streams, lost connections, 5xx
    return {"code": code, "message": message}
