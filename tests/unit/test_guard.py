"""The pure parts of the browser guard: Host names and own-origin matching."""
from __future__ import annotations

import pytest

from kiroproxy.web.guard import host_allowed, host_name, is_own_origin


@pytest.mark.parametrize("header, name", [("127.0.0.1:8080", "127.0.0.1"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
                                          ("LocalHost", "localhost"), ("localhost.:80", "localhost"),
                                          ("evil.example:8080", "evil.example")])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("header, listen, allowed, ok", [
    ("evil.example:8080", "127.0.0.1", [], False),
    ("localhost:1234", "127.0.0.1", [], True),
    ("kiro.lan", "127.0.0.1", ["kiro.lan"], True),
    ("kiro.lan:8080", "127.0.0.1", ["kiro.lan"], True),
    ("kiro.lan:8080", "127.0.0.1", ["kiro.lan:443"], False),
    ("anything.example", "0.0.0.0", [], True),            # beyond loopback: client keys protect it
    ("anything.example", "0.0.0.0", ["kiro.lan"], False),  # ... unless allowed_hosts is set
    ("127.0.0.1:8080", "0.0.0.0", ["kiro.lan"], True),
    ("", "127.0.0.1", [], True),                            # HTTP/1.0 without Host
])
def test_host_allowed(header, listen, allowed, ok):
    assert host_allowed(header, listen, allowed) is ok


@pytest.mark.parametrize("origin, host, own", [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080", True),
    ("http://localhost:8080", "127.0.0.1:8080", False),
    ("http://127.0.0.1:3000", "127.0.0.1:8080", False),
    ("https://kiro.example", "kiro.example", True),
    ("http://kiro.example", "kiro.example:80", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("null", "127.0.0.1:8080", False),
    ("http://127.0.0.1:99999", "127.0.0.1:8080", False),
    ("https://evil.example", "127.0.0.1:8080", False),
])
def test_is_own_origin(origin, host, own):
    assert is_own_origin(origin, host) is own
