from __future__ import annotations

import pytest

from kiroproxy.exposure import is_loopback, public_bind_refusal


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback(host):
    assert is_loopback(host)
    assert public_bind_refusal(host, has_client_keys=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "myhost", "evil.example", "localhost.evil.example"])
def test_beyond_loopback_needs_client_keys(host):
    assert not is_loopback(host)
    message = public_bind_refusal(host, has_client_keys=False)
    assert message is not None and "api_keys" in message and "\n" not in message
    assert public_bind_refusal(host, has_client_keys=True) is None
