"""Admin routes for client keys (/api/keys): list, create (the key is in that answer only), revoke.

Registered on the admin blueprint, so every route needs the admin key. Hashes never leave the store.
"""
from __future__ import annotations

from flask import Response, jsonify

from .admin import body_object, bp, services, text


@bp.get("/keys")
def list_keys() -> Response:
    svc = services()
    return jsonify({"keys": [r.public() for r in svc.keys.list()],
                    "settings_keys": len(svc.settings.api_keys)})


@bp.post("/keys")
def create_key() -> Response:
    key, record = services().keys.create(text(body_object(), "name"))
    response = jsonify({"key": key, **record.public(),
                        "message": "shown once: store it now; the server keeps only its hash"})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/keys/<name>")
def revoke_key(name: str) -> Response:
    return jsonify({"revoked": services().keys.revoke(name).public()})
