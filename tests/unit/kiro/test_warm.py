"""Warm upstream connections, against the loopback fake Kiro: the fake numbers every TCP connection
it accepts, so each test says exactly which connection carried which request. No timing."""
from __future__ import annotations

import socket
import threading
from typing import Iterator, List

import pytest
import requests

from kiroproxy.accounts.credentials import from_token_file
from kiroproxy.kiro.client import KiroClient
from kiroproxy.kiro.transport import ClientIdentity, Endpoints, Sessions
from kiroproxy.kiro.warm import WarmConnections
from tests import factories
from tests.fakes.kiro import FakeKiro

TIMEOUT = 5
CHAT = "/generateAssistantResponse"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeKiro]:
    with FakeKiro() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def warm(clock: Clock) -> Iterator[WarmConnections]:
    connections = WarmConnections(clock=clock)
    yield connections
    connections.close()


def client_for(fake: FakeKiro, warm) -> KiroClient:
    return KiroClient(Endpoints(api_url=fake.url), Sessions(warm=warm), ClientIdentity())


def chat(client: KiroClient, fake: FakeKiro) -> None:
    creds = from_token_file(factories.token_file("acc-W"))
    stream = client.open(creds, factories.request("hi"), model_id="claude-sonnet-4.5", conversation_id="c-1")
    try:
        assert list(stream)
    finally:
        stream.close()


def chat_connections(fake: FakeKiro) -> List[int]:
    return [r.connection for r in fake.requests_to(CHAT)]


def test_the_next_chat_request_goes_out_on_the_connection_opened_ahead(fake, warm):
    client = client_for(fake, warm)
    chat(client, fake)
    assert warm.wait_open(1, TIMEOUT)
    assert fake.wait_connections(2, TIMEOUT)  # the first request's and the one opened ahead
    opened = fake.connections_opened
    assert opened == 2

    chat(client, fake)

    first, second = chat_connections(fake)
    assert second != first and second <= opened
    assert warm.wait_open(1, TIMEOUT)  # replaced as soon as it was taken
    assert fake.wait_connections(3, TIMEOUT)
    # Still one request per connection, announced as Kiro's client does.
    assert [r.headers.get("Connection") for r in fake.requests_to(CHAT)] == ["close", "close"]


def test_each_thread_session_takes_the_warm_connection(fake, warm):
    client = client_for(fake, warm)
    chat(client, fake)
    assert warm.wait_open(1, TIMEOUT) and fake.wait_connections(2, TIMEOUT)

    worker = threading.Thread(target=chat, args=(client, fake))  # another thread, another session
    worker.start()
    worker.join(TIMEOUT)

    first, second = chat_connections(fake)
    assert second != first and second <= 2


def test_without_warm_connections_nothing_is_opened_ahead(fake):
    client = client_for(fake, WarmConnections(enabled=False))
    chat(client, fake)
    chat(client, fake)
    assert chat_connections(fake) == [1, 2]
    assert fake.connections_opened == 2


def test_calls_outside_ahead_keep_reusing_their_pooled_connection(fake, warm):
    session = Sessions(warm=warm).get()
    for _ in range(3):  # the management calls: kept alive, as before
        assert session.get(fake.url + "/getUsageLimits", timeout=TIMEOUT).status_code == 200
    assert {r.connection for r in fake.requests_to("/getUsageLimits")} == {1}
    assert fake.connections_opened == 1
    assert warm.tracked() == 0


def test_chat_calls_never_reuse_a_pooled_connection(fake):
    sessions = Sessions(warm=WarmConnections(enabled=False))
    session = sessions.get()
    with sessions.ahead():
        for _ in range(3):
            assert session.get(fake.url + "/getUsageLimits", timeout=TIMEOUT).status_code == 200
    assert [r.connection for r in fake.requests_to("/getUsageLimits")] == [1, 2, 3]


def test_an_idle_warm_connection_is_replaced_after_the_idle_limit(fake, warm, clock):
    client = client_for(fake, warm)
    chat(client, fake)
    assert fake.wait_connections(2, TIMEOUT) and warm.wait_open(1, TIMEOUT)

    clock.now += warm.idle_limit + 1
    warm.recheck()

    assert fake.wait_connections(3, TIMEOUT)
    assert warm.wait_open(1, TIMEOUT)
    chat(client, fake)
    assert chat_connections(fake)[-1] == 3  # the replacement, not the old one


def test_no_warm_connection_is_kept_after_the_active_window(fake, warm, clock):
    client = client_for(fake, warm)
    chat(client, fake)
    assert warm.wait_open(1, TIMEOUT) and fake.wait_connections(2, TIMEOUT)

    clock.now += warm.active_window + 1
    warm.recheck()

    assert warm.wait_open(0, TIMEOUT)
    assert warm.tracked() == 0  # forgotten: nothing reopens until the next chat request
    assert fake.connections_opened == 2
    chat(client, fake)
    assert chat_connections(fake)[-1] > 2  # opened on demand
    assert warm.wait_open(1, TIMEOUT)


def test_a_connection_the_server_closed_is_not_used(fake, warm, clock):
    client = client_for(fake, warm)
    chat(client, fake)
    assert warm.wait_open(1, TIMEOUT) and fake.wait_connections(2, TIMEOUT)
    for connection in list(fake._connections):  # the server side of the idle warm connection
        connection.shutdown(socket.SHUT_RDWR)

    chat(client, fake)  # succeeds on a new connection instead of failing on the dead one

    assert chat_connections(fake)[-1] > 2


def test_close_closes_the_warm_connection_and_stops_warming(fake, warm):
    client = client_for(fake, warm)
    chat(client, fake)
    assert warm.wait_open(1, TIMEOUT) and fake.wait_connections(2, TIMEOUT)

    warm.close()

    assert warm.open_count() == 0
    chat(client, fake)
    assert chat_connections(fake)[-1] == 3
    assert warm.tracked() == 0
    assert fake.connections_opened == 3


def test_requests_through_a_session_without_ahead_still_work(fake, warm):
    response = Sessions(warm=warm).get().post(fake.url + CHAT, data=b"{}", timeout=TIMEOUT)
    assert response.status_code == 200
    assert isinstance(response, requests.Response)


def test_through_an_outbound_proxy_the_warm_connection_goes_to_the_proxy(fake, warm):
    from tests.fakes.forward_proxy import ForwardProxy

    with ForwardProxy() as proxy:
        client = KiroClient(Endpoints(api_url=fake.url), Sessions(proxy.url, warm=warm), ClientIdentity())
        chat(client, fake)
        assert warm.wait_open(1, TIMEOUT)
        (key, slot), = warm._slots.items()
        assert key[3] == proxy.url  # kept per outbound proxy
        assert slot.conn.sock.getpeername()[1] == proxy.server.server_address[1]

        chat(client, fake)

        assert proxy.seen == ["POST /generateAssistantResponse"] * 2
        assert len(fake.requests_to(CHAT)) == 2
