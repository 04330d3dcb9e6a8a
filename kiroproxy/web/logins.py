"""Sign-in routes of the admin API: device login (Builder ID / Identity Center) and social login
(Google / GitHub). They register on the admin blueprint, so they need the admin key too.

Answers carry user codes and URLs the user needs, never device codes, verifiers, secrets or tokens.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Dict, Optional

from flask import Response, jsonify, request

from ..accounts.logins import SUCCESS, PollResult
from ..errors import BadRequest, NotFound
from .admin import body_object, bp, services

log = logging.getLogger(__name__)


def _text(data: Dict[str, Any], name: str) -> Optional[str]:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", param=name)
    return value.strip() or None


def _login_id(data: Dict[str, Any], device_only: bool = False) -> str:
    """The id the request names; without one, the newest sign-in (as the seed API's scripts expect)."""
    login_id = _text(data, "id") or request.args.get("id", "").strip()
    if login_id:
        return login_id
    newest = services().logins.newest(device_only)
    if newest is None:
        raise NotFound("no sign-in is in progress: start one with POST /api/kiro/login/start")
    return newest


def _answer(result: PollResult, status: int = 200) -> Response:
    body = {k: v for k, v in asdict(result).items() if v not in (None, "")}
    if result.status == SUCCESS and result.account_id:
        try:
            body["account"] = services().pool.summary(result.account_id)
        except NotFound:
            pass  # removed since the sign-in finished; the id is still the answer
    response = jsonify(body)
    response.status_code = status
    return response


@bp.post("/kiro/login/start")
def device_login_start() -> Response:
    data = body_object()
    start_url = _text(data, "start_url") or _text(data, "startUrl")
    started = services().logins.start_device(region=_text(data, "region"), start_url=start_url)
    response = jsonify(asdict(started))
    response.status_code = 201
    return response


@bp.get("/kiro/login/poll")
def device_login_poll() -> Response:
    result = services().logins.poll(_login_id({}, device_only=True))
    if result.status == SUCCESS:
        services().sync_models_soon()
    return _answer(result)


@bp.post("/kiro/login/cancel")
def device_login_cancel() -> Response:
    return _answer(services().logins.cancel(_login_id(body_object())))


@bp.post("/kiro/social/start")
def social_login_start() -> Response:
    started = services().logins.start_social(_text(body_object(), "provider") or "")
    response = jsonify(asdict(started))
    response.status_code = 201
    return response


@bp.post("/kiro/social/exchange")
def social_login_exchange() -> Response:
    data = body_object()
    pasted = _text(data, "url") or _text(data, "code") or ""
    result = services().logins.exchange(pasted, state=_text(data, "state"), login_id=_text(data, "id"))
    services().sync_models_soon()
    return _answer(result, 201)
