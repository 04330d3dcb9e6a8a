"""Gemini routes: models/{model}:generateContent | :streamGenerateContent | :countTokens.

Served under /v1beta, /v1, /v1alpha and unversioned /models (the app's path fix folds `//v1beta`
and `/v1/v1beta` into these). `?alt=sse` streams SSE; without it the stream is a JSON array. A GET
on one of these methods is 405 in Gemini's shape (not the model lookup at the same path).
"""
from __future__ import annotations

from flask import Response, request

from ..errors import NotFound, ProxyError
from ..protocols import gemini
from ..protocols.interface import Call
from .proxy import bp, count_call, error_response, record_rejected, relay_call


@bp.post("/v1beta/models/<path:target>")
@bp.post("/v1alpha/models/<path:target>")
@bp.post("/v1/models/<path:target>")
@bp.post("/models/<path:target>")
def model_action(target: str) -> Response:
    model, _, action = target.rpartition(":")
    model = model[len("models/"):] if model.startswith("models/") else model
    call = Call(model=model, stream=action == "streamGenerateContent", sse=request.args.get("alt") == "sse")
    if action == "countTokens":
        return count_call(gemini.PROTOCOL, call)
    if action not in ("generateContent", "streamGenerateContent") or not model:
        error = NotFound(f"unknown Gemini method '{target}': use models/<model>:generateContent, "
                         f":streamGenerateContent or :countTokens")
        record_rejected(gemini.PROTOCOL, error)  # a client call like any other: it gets a flow
        return error_response(gemini.PROTOCOL, error)
    return relay_call(gemini.PROTOCOL, call)


METHODS = "<any(generateContent,streamGenerateContent,countTokens):action>"


@bp.get(f"/v1beta/models/<path:model>:{METHODS}")
@bp.get(f"/v1alpha/models/<path:model>:{METHODS}")
@bp.get(f"/v1/models/<path:model>:{METHODS}")
@bp.get(f"/models/<path:model>:{METHODS}")
def model_action_by_get(model: str, action: str) -> Response:
    # Without this rule the model lookup would answer, as a model named "<model>:<action>".
    error = ProxyError(f"models/{model}:{action} takes POST, not GET", status=405, kind="invalid_request")
    response = error_response(gemini.PROTOCOL, error)
    response.headers["Allow"] = "POST"
    return response
