"""OpenAI routes: Chat Completions and the Responses API (on the proxy blueprint).

Also served without the /v1 prefix for clients whose base URL leaves it out.
"""
from __future__ import annotations

from flask import Response, jsonify

from ..errors import ProxyError
from ..protocols import openai
from ..protocols.responses_api import ResponsesAPI
from .proxy import bp, check_client_key, error_response, relay_call, services


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def chat_completions() -> Response:
    return relay_call(openai.PROTOCOL)


@bp.post("/v1/responses")
@bp.post("/responses")
def create_response() -> Response:
    return relay_call(ResponsesAPI(services().responses))


@bp.get("/v1/responses/<response_id>")
@bp.get("/responses/<response_id>")
def get_response(response_id: str) -> Response:
    api = ResponsesAPI(services().responses)
    try:
        check_client_key()
        return jsonify(api.retrieve(response_id))
    except ProxyError as error:
        return error_response(api, error)
