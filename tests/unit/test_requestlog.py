"""The per-request log line: key=value pairs, quoting, failures with reason and upstream host,
secrets masked."""
from __future__ import annotations

import logging
from dataclasses import replace

from kiroproxy.chat import Usage
from kiroproxy.exchange import ERROR, Attempt, ExchangeSnapshot
from kiroproxy.requestlog import RequestLog
from tests import factories


def failed(exchange: ExchangeSnapshot, status: int, kind: str, message: str, now: float) -> ExchangeSnapshot:
    return replace(exchange, state=ERROR, status=status, error={"kind": kind, "status": status, "message": message},
                   completed_at=now)


def test_a_served_request():
    exchange = ExchangeSnapshot(protocol="openai", path="/v1/chat/completions", requested_model="gpt-4o",
                                stream=True, received_at=10.0, model="claude-sonnet-4", account_id="a1",
                                first_byte_at=10.25, completed_at=12.0, usage=Usage(input_tokens=12, output_tokens=34))
    line = RequestLog().line(exchange)
    assert line == ("protocol=openai path=/v1/chat/completions model=claude-sonnet-4 account=a1 status=200 "
                    "ttfb_ms=250 duration_ms=2000 stream=yes in=12 out=34")


def test_a_network_failure_names_the_host_and_the_tried_account():
    attempt = Attempt("acc9", "network", "could not reach Kiro (https://q.us-east-1.amazonaws.com) "
                                         "for the chat request (ConnectionError)")
    exchange = failed(ExchangeSnapshot(protocol="anthropic", path="/v1/messages", received_at=1.0,
                                       attempts=(attempt,)),
                      503, "overloaded", "could not reach Kiro (https://q.us-east-1.amazonaws.com) for the chat", 2.0)
    line = RequestLog().line(exchange)
    assert "account=acc9 status=503" in line and "kind=overloaded" in line
    assert 'reason="could not reach Kiro' in line and line.endswith("upstream=q.us-east-1.amazonaws.com")


def test_secrets_are_masked(caplog):
    secret = factories.token_like("sk-ant-api03-", "Q" * 40)
    exchange = failed(ExchangeSnapshot(protocol="anthropic", path="/v1/messages", requested_model=secret,
                                       received_at=1.0),
                      404, "model_not_found", f"model {secret} and my-known-secret-value", 1.5)
    caplog.set_level(logging.INFO, logger="kiroproxy.requests")
    RequestLog(lambda: ["my-known-secret-value"]).finished(exchange)
    (record,) = caplog.records
    assert secret not in record.getMessage() and "my-known-secret-value" not in record.getMessage()
    assert "status=404" in record.getMessage()
