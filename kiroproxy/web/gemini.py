"""Gemini routes: models/{model}:generateContent | :streamGenerateContent | :countTokens.

Served under /v1beta, /v1, /v1alpha and unversioned /models (the app's path fix folds `//v1beta`
and `/v1/v1beta` into these). `?alt=sse` streams SSE; without it the stream is a JSON array. A GET
on one of these methods is 405 in Gemini's shape (not the model lookup at the same path).
"""
from __future__ import annotations

from typing import Any, Iterator

from flask import Response, request

from .. import chat
from ..errors import NotFound, ProxyError
from ..protocols import gemini
from .proxy import bp, count_call, error_response, record_rejected, relay_call


@bp.post("/v1beta/models/<path:target>")
@bp.post("/v1alpha/models/<path:target>")
@bp.post("/v1/models/<path:target>")
@bp.post("/models/<path:target>")
def model_action(target: str) -> Response:
    model, _, action = target.rpartition(":")
    model = model[len("models/"):] if model.startswith("models/") else model
    if action == "countTokens":
        return count_tokens(model)
    if action not in ("generateContent", "streamGenerateContent") or not model:
        error = NotFound(f"unknown Gemini method '{target}': use models/<model>:generateContent, "
                         f":streamGenerateContent or :countTokens")
        record_rejected(gemini, error)  # a client call like any other: it gets a flow
        return error_response(gemini, error)
    streaming = action == "streamGenerateContent"
    as_sse = request.args.get("alt") == "sse"

    def encode(stream: chat.Stream, req: chat.ChatRequest, body: Any) -> Iterator[bytes]:
        encoder = gemini.encode_sse if as_sse else gemini.encode_json_array
        return encoder(stream, model=model, json_mode=req.response_format is not None,
                       include_thoughts=gemini.include_thoughts(body))

    return relay_call(
        gemini,
        lambda body: gemini.parse(body, model=model, stream=streaming),
        lambda reply, req, body: gemini.render(reply, model=model, json_mode=req.response_format is not None,
                                               include_thoughts=gemini.include_thoughts(body)),
        encode, mimetype="text/event-stream" if as_sse else "application/json")


METHODS = "<any(generateContent,streamGenerateContent,countTokens):action>"


@bp.get(f"/v1beta/models/<path:model>:{METHODS}")
@bp.get(f"/v1alpha/models/<path:model>:{METHODS}")
@bp.get(f"/v1/models/<path:model>:{METHODS}")
@bp.get(f"/models/<path:model>:{METHODS}")
def model_action_by_get(model: str, action: str) -> Response:
    # Without this rule the model lookup would answer, as a model named "<model>:<action>".
    error = ProxyError(f"models/{model}:{action} takes POST, not GET", status=405, kind="invalid_request")
    response = error_response(gemini, error)
    response.headers["Allow"] = "POST"
    return response


def count_tokens(model: str) -> Response:
    return count_call(gemini, lambda body: gemini.parse_count(body, model=model),
                      lambda total: {"totalTokens": total,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})
