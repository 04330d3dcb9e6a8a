"""The admin API in-process, on the data directory alone, for when no server runs: the same routes
and checks as a server's /api, over the account store, settings file and key store only (no flow
store, stats, admin key file or background thread). Calls that need a live server (token refresh,
usage, logs, flows, sign-ins) are refused with a clear message."""
from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import Any

from ..config import Settings
from ..errors import ProxyError
from .remote import UNREACHABLE

SERVER_ONLY = ("/refresh", "/usage", "/refresh-all", "/logs", "/flows", "/status", "/stats", "/kiro/", "/quota")


class LocalAdmin:
    def __init__(self, settings: Settings) -> None:
        from ..app import create_app
        from ..lockout import Lockout
        from ..services import account_pool
        from ..store.keys import KeyStore

        home = settings.home
        self.key = secrets.token_urlsafe(24)  # never stored: only this process's calls carry it
        self.pool = account_pool(settings)
        light = SimpleNamespace(settings=settings, home=home, pool=self.pool, admin_key=self.key,
                                keys=KeyStore(home), sync_models_soon=lambda: None,
                                admin_lockout=Lockout(settings.admin_max_failures, settings.admin_lockout_seconds))
        self.client = create_app(settings, light).test_client()  # type: ignore[arg-type]
        self.url = f"the data directory {home}"

    def call(self, method: str, path: str, json: Any = None, params: Any = None) -> Any:
        if any(part in path for part in SERVER_ONLY):
            raise ProxyError("this needs the running server (start it with `kiroproxy serve`, or pass --server URL)",
                             kind=UNREACHABLE)
        response = self.client.open("/api" + path, method=method, json=json, query_string=params,
                                    headers={"Authorization": f"Bearer {self.key}"})
        data = response.get_json(silent=True)
        if response.status_code >= 400:
            error = (data or {}).get("error") or {}
            raise ProxyError(str(error.get("message") or f"HTTP {response.status_code}"), status=response.status_code)
        return data

    def close(self) -> None:
        pass  # add() and friends wrote their change already; no flush (it could undo a concurrent one)
