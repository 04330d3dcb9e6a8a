"""End-to-end harness: the real app on waitress (loopback, free port) against the fake Kiro."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest
import requests

from kiroproxy import connections
from kiroproxy.app import create_app
from kiroproxy.config import load
from kiroproxy.server import create_server, run_until, stop
from kiroproxy.services import Services
from tests import factories
from tests.fakes.kiro import FakeKiro

ADMIN_KEY = "test-admin-key"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until predicate() is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        threading.Event().wait(interval)


class Proxy:
    """A running kiroproxy server."""

    def __init__(self, home: Path, fake: FakeKiro, settings: Dict[str, Any], env: Dict[str, str]) -> None:
        self.home = home
        self.fake = fake
        flags = {"data_dir": str(home / ".kiro-proxy"), "port": 0, "threads": 8, "max_streams": 16, **settings}
        self.settings = load(flags, env=env)
        self.services = Services.build(self.settings)
        self.app = create_app(self.settings, self.services)
        self.server = create_server(self.app, "127.0.0.1", 0, **connections.options(self.settings))
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=run_until, args=(self.server, self.stopping), daemon=True)
        self.thread.start()
        self.services.start(listen=f"127.0.0.1:{self.server.effective_port}")
        self.http = requests.Session()
        self.http.trust_env = False
        self._on_stop: list = []

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Run callback when the proxy stops (close SDK clients a test created)."""
        self._on_stop.append(callback)

    def admin(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {ADMIN_KEY}")
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.url + "/api" + path, headers=headers, **kw)

    def add_account(self, access: str = "acc-A", **kw: Any) -> str:
        response = self.admin("POST", "/accounts", json=factories.token_file(access, **kw))
        assert response.status_code in (200, 201), response.text
        return response.json()["account"]["id"]

    def stop(self) -> None:
        for callback in self._on_stop:
            callback()
        self.http.close()
        self.stopping.set()  # the loop exits between polls; then nothing races the sockets we close
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "the server loop did not stop"
        stop(self.server)
        self.services.close()


@pytest.fixture
def fake() -> Iterator[FakeKiro]:
    with FakeKiro() as server:
        yield server


@pytest.fixture
def make_proxy(tmp_path: Path, fake: FakeKiro) -> Iterator[Callable[..., Proxy]]:
    started = []

    def make(env: Optional[Dict[str, str]] = None, **settings: Any) -> Proxy:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        base_env = {
            "HOME": str(home),
            "KIROPROXY_ADMIN_KEY": ADMIN_KEY,
            "KIROPROXY_KIRO_API_URL": fake.url,
            "KIROPROXY_KIRO_AUTH_URL": fake.url,
            "KIROPROXY_AWS_OIDC_URL": fake.url,
        }
        base_env.update(env or {})
        settings.setdefault("retry_backoff_seconds", 0.01)
        settings.setdefault("model_catalog_ttl", 0)  # the built-in list, unless a test asks for the upstream one
        proxy = Proxy(home, fake, settings, base_env)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(make_proxy: Callable[..., Proxy]) -> Proxy:
    return make_proxy()
