"""Gemini routes: models/{model}:generateContent | :streamGenerateContent | :countTokens.

Served under /v1beta, /v1, /v1alpha and unversioned /models (the app's path fix folds `//v1beta`
and `/v1/v1beta` into these). `?alt=sse` streams SSE; without it the stream is a JSON array.
"""
from __future__ import annotations

from flask import Response, request

from ..errors import NotFound
from ..protocols import gemini
from .proxy import bp, count_call, error_response, relay_call


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
        return error_response(gemini, NotFound(f"unknown Gemini method '{target}': use "
                                               f"models/<model>:generateContent, :streamGenerateContent "
                                               f"or :countTokens"))
    streaming = action == "streamGenerateContent"
    as_sse = request.args.get("alt") == "sse"
    return relay_call(
        gemini,
        lambda body: gemini.parse(body, model=model, stream=streaming),
        lambda reply, req, body: gemini.render(reply, model=model, json_mode=req.response_format is not None),
        lambda stream, req, body: (gemini.encode_sse(stream, model=model) if as_sse
                                   else gemini.encode_json_array(stream, model=model)),
        mimetype="text/event-stream" if as_sse else "application/json")


def count_tokens(model: str) -> Response:
    return count_call(gemini, lambda body: gemini.parse_count(body, model=model),
                      lambda total: {"totalTokens": total,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})
