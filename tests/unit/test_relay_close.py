"""Closing a relay stream always ends its answer: the lease is released and the flow recorded,
also when the stream is closed before anything read it (the client left before the first chunk)."""
from __future__ import annotations

from typing import List

import responses

from kiroproxy.accounts.credentials import from_token_file
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.accounts.refresher import Refresher
from kiroproxy.exchange import Exchange, ExchangeSnapshot
from kiroproxy.kiro import eventstream
from kiroproxy.kiro.auth import Authenticator
from kiroproxy.kiro.client import KiroClient
from kiroproxy.kiro.models import Catalog
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from kiroproxy.relay import Relay
from tests import factories

URL = "https://runtime.us-east-1.kiro.dev/generateAssistantResponse"


class Observer:
    def __init__(self) -> None:
        self.done: List[ExchangeSnapshot] = []

    def started(self, exchange: Exchange) -> None:
        pass

    def finished(self, exchange: ExchangeSnapshot) -> None:
        self.done.append(exchange)


def relay_with_one_account(observer: Observer) -> tuple:
    sessions, identity, endpoints = Sessions(), ClientIdentity(), Endpoints()
    pool = AccountPool()
    account = pool.add(from_token_file(factories.token_file("acc-T"))).id
    relay = Relay(pool=pool, refresher=Refresher(pool, Authenticator(endpoints, sessions, identity)),
                  client=KiroClient(endpoints, sessions, identity), catalog=Catalog(), observers=[observer])
    return relay, pool, account, sessions


@responses.activate
def test_a_stream_closed_before_its_first_read_releases_the_lease_and_records_the_flow():
    body = (eventstream.event("assistantResponseEvent", {"content": "hello"})
            + eventstream.event("contextUsageEvent", {"contextUsagePercentage": 1.0}))
    responses.post(URL, status=200, body=body, content_type="application/vnd.amazon.eventstream")
    observer = Observer()
    relay, pool, account, sessions = relay_with_one_account(observer)
    exchange = Exchange("anthropic", "/v1/messages")
    stream = relay.open(factories.request("hi", stream=True), exchange)
    assert pool.summary(account)["in_flight"] == 1
    stream.close()  # nothing ever iterated it
    assert pool.summary(account)["in_flight"] == 0
    assert [done.id for done in observer.done] == [exchange.id] and exchange.state == "cancelled"
    assert observer.done[0].state == "cancelled"
    sessions.close()
