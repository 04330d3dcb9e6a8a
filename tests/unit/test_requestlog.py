"""The per-request log line: key=value pairs, quoting, failures with reason and upstream host,
secrets masked."""
from __future__ import annotations

import logging

from kiroproxy.chat import Usage
from kiroproxy.exchange import Attempt, Exchange
from kiroproxy.requestlog import RequestLog
from tests import factories


def test_a_served_request():
    exchange = Exchange(protocol="openai", path="/v1/chat/completions", requested_model="gpt-4o", stream=True,
                        received_at=10.0)
    exchange.model, exchange.account_id = "claude-sonnet-4", "a1"
    exchange.first_byte_at, exchange.completed_at = 10.25, 12.0
    exchange.usage = Usage(input_tokens=12, output_tokens=34)
    line = RequestLog().line(exchange)
    assert line == ("protocol=openai path=/v1/chat/completions model=claude-sonnet-4 account=a1 status=200 "
                    "ttfb_ms=250 duration_ms=2000 stream=yes in=12 out=34")


def test_a_network_failure_names_the_host_and_the_tried_account():
    exchange = Exchange(protocol="anthropic", path="/v1/messages", received_at=1.0)
    exchange.attempts.append(Attempt("acc9", "network", "could not reach Kiro (https://q.us-east-1.amazonaws.com) "
                                                       "for the chat request (ConnectionError)"))
    exchange.fail(503, "overloaded", "could not reach Kiro (https://q.us-east-1.amazonaws.com) for the chat", 2.0)
    line = RequestLog().line(exchange)
    assert "account=acc9 status=503" in line and "kind=overloaded" in line
    assert 'reason="could not reach Kiro' in line and line.endswith("upstream=q.us-east-1.amazonaws.com")


def test_secrets_are_masked(caplog):
    secret = factories.token_like("sk-ant-api03-", "Q" * 40)
    exchange = Exchange(protocol="anthropic", path="/v1/messages", requested_model=secret, received_at=1.0)
    exchange.fail(404, "model_not_found", f"model {secret} and my-known-secret-value", 1.5)
    caplog.set_level(logging.INFO, logger="kiroproxy.requests")
    RequestLog(lambda: ["my-known-secret-value"]).finished(exchange)
    (record,) = caplog.records
    assert secret not in record.getMessage() and "my-known-secret-value" not in record.getMessage()
    assert "status=404" in record.getMessage()
