"""Anthropic Messages routes: /v1/messages and /v1/messages/count_tokens (on the proxy blueprint)."""
from __future__ import annotations

from flask import Response

from ..protocols import anthropic
from .proxy import bp, count_call, relay_call


@bp.post("/v1/messages")
def messages() -> Response:
    return relay_call(anthropic.PROTOCOL)


@bp.post("/v1/messages/count_tokens")
def count_tokens() -> Response:
    return count_call(anthropic.PROTOCOL)
