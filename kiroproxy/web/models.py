"""Model listing routes, shared by the three APIs: the shape follows the client's headers/path."""
from __future__ import annotations

from typing import Any, Dict, List

from flask import Response, jsonify, request

from ..errors import BadRequest, ProxyError
from ..kiro.models import ModelInfo
from .proxy import bp, check_client_key, error_response, model_shape, protocol_for_request, services

CREATED = 1735689600  # 2025-01-01: a fixed creation time for models Kiro does not date
GEMINI_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]


def entry(shape: str, info: ModelInfo, name: str = "") -> Dict[str, Any]:
    model_id = name or info.id
    if shape == "anthropic":
        return {"type": "model", "id": model_id, "display_name": info.display_name,
                "created_at": "2025-01-01T00:00:00Z", "max_input_tokens": info.context_window,
                "max_tokens": info.max_output}
    if shape == "gemini":
        return {"name": f"models/{model_id}", "baseModelId": model_id, "version": "001",
                "displayName": info.display_name, "description": f"Kiro model {info.id}",
                "inputTokenLimit": info.context_window, "outputTokenLimit": info.max_output,
                "supportedGenerationMethods": GEMINI_METHODS, "thinking": True}
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "kiro"}


def _page(items: List[Dict[str, Any]], shape: str) -> Response:
    if shape == "anthropic":
        ids = [item["id"] for item in items]
        start = ids.index(request.args["after_id"]) + 1 if request.args.get("after_id") in ids else 0
        end = ids.index(request.args["before_id"]) if request.args.get("before_id") in ids else len(items)
        limit = _int_arg("limit", 1000)
        page = items[start:end][:limit]
        return jsonify({"data": page, "has_more": start + len(page) < end,
                        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})
    if shape == "gemini":
        size = _int_arg("pageSize", 1000)
        start = _int_arg("pageToken", 0) if request.args.get("pageToken") else 0
        page = items[start:start + size]
        body: Dict[str, Any] = {"models": page}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return jsonify(body)
    return jsonify({"object": "list", "data": items})


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", param=name) from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative", param=name)
    return value or default


def list_models(shape: str) -> Response:
    try:
        check_client_key()
        return _page([entry(shape, info) for info in services().served_models()], shape)
    except ProxyError as error:
        return error_response(protocol_for_request(), error)


def one_model(shape: str, model_id: str) -> Response:
    svc = services()
    name = model_id[len("models/"):] if model_id.startswith("models/") else model_id
    try:
        check_client_key()
        for info in svc.served_models():
            if info.id == name:
                return jsonify(entry(shape, info))
        info = svc.catalog.info(svc.catalog.resolve(name))
    except ProxyError as error:
        return error_response(protocol_for_request(), error)
    return jsonify(entry(shape, info, name))


@bp.get("/v1/models")
@bp.get("/models")
def models() -> Response:
    return list_models(model_shape())


@bp.get("/v1/models/<path:model_id>")
@bp.get("/models/<path:model_id>")
def model(model_id: str) -> Response:
    return one_model(model_shape(), model_id)


@bp.get("/v1beta/models")
@bp.get("/v1alpha/models")
def gemini_models() -> Response:
    return list_models("gemini")


@bp.get("/v1beta/models/<path:model_id>")
@bp.get("/v1alpha/models/<path:model_id>")
def gemini_model(model_id: str) -> Response:
    return one_model("gemini", model_id)
