"""Admin routes for what happened: flows, stats, the request log and the service status.

Registered on the admin blueprint, so every route needs the admin key.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Response, jsonify, request

from .. import __version__, tokens
from ..errors import BadRequest, ProxyError
from ..store.flows import Filter, filter_from, paging, summarize
from .admin import admin_error, attachment, body_object, bp, services


@bp.get("/flows")
def list_flows() -> Response:
    args = request.args.to_dict()
    limit, offset, cursor = paging(args)
    return jsonify(services().flows.query(filter_from(args), limit, offset, cursor))


@bp.get("/flows/stats")
def flow_stats() -> Response:
    args = request.args.to_dict()
    return jsonify(services().flows.summary(filter_from(args)))


@bp.get("/flows/export")
def export_needs_post() -> Response:
    # Without this route the GET would reach get_flow() and answer "no flow with id 'export'".
    response = admin_error(ProxyError("export takes POST with a JSON body (filters or ids, format)",
                                      status=405, kind="invalid_request"))
    response.headers["Allow"] = "POST"
    return response


@bp.get("/flows/<flow_id>")
def get_flow(flow_id: str) -> Response:
    return jsonify(services().flows.get(flow_id))


@bp.post("/flows/<flow_id>/bookmark")
def bookmark_flow(flow_id: str) -> Response:
    data = body_object()
    bookmarked = data.get("bookmarked", True if not ({"note", "tags"} & set(data)) else None)
    if bookmarked is not None and not isinstance(bookmarked, bool):
        raise BadRequest("bookmarked must be true or false", param="bookmarked")
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise BadRequest("note must be a string", param="note")
    tags = data.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise BadRequest("tags must be a list of strings", param="tags")
    return jsonify({"flow": services().flows.update(flow_id, bookmarked=bookmarked, note=note, tags=tags)})


@bp.post("/flows/export")
def export_flows() -> Response:
    data = body_object()
    fmt = str(data.get("format") or "json")
    include = data.get("include_bodies", True)
    if not isinstance(include, bool):
        raise BadRequest("include_bodies must be true or false", param="include_bodies")
    flt = filter_from({k: v for k, v in data.items() if k not in ("format", "include_bodies")})
    body = services().flows.export(flt, fmt, include)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    mimetype = "application/json" if fmt == "json" else "application/x-ndjson"
    return attachment(Response(body, mimetype=mimetype), f"kiroproxy-flows-{stamp}.{fmt}")


@bp.get("/stats")
def stats() -> Response:
    return jsonify(services().stats.summary())


@bp.get("/stats/detailed")
def stats_detailed() -> Response:
    svc = services()
    detail = svc.stats.detailed()
    recent = svc.flows.summary(Filter(since=time.time() - 86400))
    detail["latency_24h"] = {"ttfb_ms": recent["ttfb_ms"], "duration_ms": recent["duration_ms"],
                             "requests": recent["total"], "error_rate": recent["error_rate"]}
    return jsonify(detail)


def _log_line(entry: dict) -> dict:
    stamp = datetime.fromtimestamp(entry.get("received_at") or 0, tz=timezone.utc)
    error = entry.get("error") or {}
    return {"time": stamp.isoformat(timespec="milliseconds"), "id": entry["id"], "protocol": entry.get("protocol"),
            "model": entry.get("model") or entry.get("requested_model"), "account": entry.get("account_name")
            or entry.get("account_id"), "state": entry.get("state"), "status": entry.get("status"),
            "duration_ms": entry.get("duration_ms"), "ttfb_ms": entry.get("ttfb_ms"),
            "input_tokens": entry.get("input_tokens"), "output_tokens": entry.get("output_tokens"),
            "error": error.get("message")}


@bp.get("/logs")
def logs() -> Response:
    args = request.args.to_dict()
    fmt = args.pop("format", "json")
    errors_only = args.pop("errors", None)
    if errors_only is not None:
        args["has_error"] = errors_only
    limit, _, _ = paging({"limit": args.pop("limit", 100)})
    args.pop("offset", None)
    args.pop("cursor", None)
    lines = [_log_line(e) for e in services().flows.recent(filter_from(args), limit)]
    if fmt == "text":
        text = "\n".join(
            f"{line['time']} {line['protocol']} {line['model'] or '-'} {line['account'] or '-'} "
            f"{line['status']} {line['state']} {line['duration_ms'] or 0:.0f}ms "
            f"in={line['input_tokens']} out={line['output_tokens']}" + (f" error={line['error']}"
                                                                          if line["error"] else "")
            for line in lines)
        return Response(text + ("\n" if text else ""), mimetype="text/plain")
    if fmt != "json":
        raise BadRequest("format must be json or text", param="format")
    return jsonify({"lines": lines, "count": len(lines)})


@bp.get("/status")
def status() -> Response:
    svc = services()
    settings = svc.settings
    store = svc.flows.counts()
    endpoints = svc.endpoints
    return jsonify({
        "version": __version__, "uptime_seconds": round(time.time() - svc.started_at, 1),
        "listen": svc.listen, "data_dir": str(svc.home),
        "upstream": {"kiro_api": endpoints.api_url or "https://runtime.<region>.kiro.dev (q.<region>.amazonaws.com "
                                                     "for accounts without a profile)",
                     "kiro_auth": endpoints.social_auth(), "aws_oidc": endpoints.oidc(settings.region)},
        "accounts": svc.pool.counts(), "in_flight": store["in_flight"],
        "streams": {"open": svc.slots.in_use, "max": svc.slots.limit},  # chat requests holding a slot
        "store": {"flows": store["flows"], "bytes": store["bytes"], "segments": store["segments"],
                  "queued_writes": store["queued"], "responses": len(svc.responses),
                  "backlog_bytes": store["backlog_bytes"], "backlog_max_bytes": store["backlog_max_bytes"],
                  "bodies_dropped": store["bodies_dropped"], "flows_dropped": store["flows_dropped"],
                  "oldest_at": store["oldest_at"], "max_flows": store["max_flows"], "max_bytes": store["max_bytes"],
                  "max_age_days": store["max_age_days"]},
        "tokenizer": tokens.active_name(), "models": {"source": svc.catalog.source,
                                                      "count": len(svc.catalog.models())},
        "recent": summarize(svc.flows.recent(Filter(), 200))["by_state"],
    })
