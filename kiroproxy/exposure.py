"""Who can reach the proxy: whether a listen address is loopback-only, whether client keys protect
the client APIs, and the refusal to listen beyond loopback without them.

Pure: no I/O beyond what the key check is told to read; no Flask.
"""
from __future__ import annotations

import ipaddress
from typing import Optional

from .config import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a listen address or a Host header's name, IPv6 with or without brackets)
    reaches only this machine. "", 0.0.0.0 and :: listen everywhere; other names are not trusted
    to resolve to loopback."""
    name = host.strip().lower().strip("[]").rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_keys_configured(settings: Settings) -> bool:
    """Whether the client APIs demand a key: api_keys in the settings, or a key in the data
    directory's key store (`kiroproxy keys create`). Reads keys.json."""
    from .store.keys import KeyStore

    return bool(settings.api_keys) or KeyStore(settings.home).any()


def public_bind_refusal(host: str, has_client_keys: bool) -> Optional[str]:
    """Why the server must not listen on `host`, or None when it may: beyond loopback, anyone who
    reaches the port could spend the Kiro accounts, so client keys are mandatory there."""
    if is_loopback(host) or has_client_keys:
        return None
    shown = host or "every address"
    return (f"refusing to listen on {shown} without client keys: anyone who reaches it could use your "
            f"Kiro accounts. Create a client key (kiroproxy keys create), set api_keys (KIROPROXY_API_KEYS=key1,key2) "
            f"or listen on 127.0.0.1")
