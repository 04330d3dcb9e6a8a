"""The requests adapter and urllib3 pool classes through which sessions take warm connections
(warm.py). A module of its own so that requests and urllib3 load with the first session, not
when the server starts.
"""
from __future__ import annotations

from typing import Any, Dict

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .warm import WarmConnections, WarmPoolMixin


def pool_classes(warm: WarmConnections) -> Dict[str, type]:
    """The pool class for each scheme, bound to `warm`."""
    return {"http": _pool_class(HTTPConnectionPool, warm), "https": _pool_class(HTTPSConnectionPool, warm)}


def _pool_class(base: type, warm: WarmConnections) -> type:
    return type("Warm" + base.__name__, (WarmPoolMixin, base), {"warm": warm})


class WarmAdapter(HTTPAdapter):
    def __init__(self, pools: Dict[str, type]) -> None:
        self._warm_pools = pools
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._warm_pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring their own pool classes
            manager.pool_classes_by_scheme = self._warm_pools
        return manager
