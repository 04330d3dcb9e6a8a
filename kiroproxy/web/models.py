"""Model listing routes, shared by the three APIs: each protocol shapes its entries and pages, the
client's headers (or the Gemini path) decide which protocol answers."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from ..errors import ProxyError
from ..protocols import gemini
from ..protocols.interface import ClientProtocol
from .proxy import bp, check_client_key, error_response, model_shape, services


def list_models(proto: ClientProtocol[Any]) -> Response:
    try:
        check_client_key()
        entries = [proto.model_entry(info, info.id) for info in services().served_models()]
        return jsonify(proto.model_page(entries, request.args))
    except ProxyError as error:
        return error_response(proto, error)


def one_model(proto: ClientProtocol[Any], model_id: str) -> Response:
    svc = services()
    name = model_id[len("models/"):] if model_id.startswith("models/") else model_id
    try:
        check_client_key()
        for info in svc.served_models():
            if info.id == name:
                return jsonify(proto.model_entry(info, info.id))
        info = svc.catalog.info(svc.catalog.resolve(name))
    except ProxyError as error:
        return error_response(proto, error)
    return jsonify(proto.model_entry(info, name))


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
    return list_models(gemini.PROTOCOL)


@bp.get("/v1beta/models/<path:model_id>")
@bp.get("/v1alpha/models/<path:model_id>")
def gemini_model(model_id: str) -> Response:
    return one_model(gemini.PROTOCOL, model_id)
