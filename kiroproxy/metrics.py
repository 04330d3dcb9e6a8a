"""Prometheus metrics on a per-app CollectorRegistry (never the library's global one, so two apps in
one process, as in the tests, count apart). An exchange observer feeds the request counters; the
account and flow-store gauges are read when scraped. prometheus_client loads with the first
counted request or scrape, not at start-up.

Label values are bounded: protocols and statuses are few, error kinds are ours, and at most
MAX_MODELS model names are kept as labels (the rest count as "(other)").
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterable, Optional, Set

from .exchange import Exchange, ExchangeSnapshot

MAX_MODELS = 50
OTHER = "(other)"
TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReadAtScrape:
    """A custom collector: gauges whose values are read from the live objects when scraped."""

    def __init__(self, accounts: Callable[[], Dict[str, int]], flows: Callable[[], Dict[str, Any]]) -> None:
        self.accounts = accounts
        self.flows = flows

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        by_state = GaugeMetricFamily("kiroproxy_accounts", "Accounts by state", labels=["state"])
        for state, count in sorted(self.accounts().items()):
            by_state.add_metric([state], count)
        yield by_state
        store = self.flows()
        yield GaugeMetricFamily("kiroproxy_flows_stored", "Flows in the flow store", value=store["flows"])
        yield GaugeMetricFamily("kiroproxy_flow_store_bytes", "Disk bytes of the flow store", value=store["bytes"])
        yield GaugeMetricFamily("kiroproxy_requests_in_flight", "Requests being served", value=store["in_flight"])


class Instruments:
    """The registry and its counters and histograms."""

    def __init__(self, accounts: Callable[[], Dict[str, int]], flows: Callable[[], Dict[str, Any]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("kiroproxy_requests", "Client requests by protocol, model and status",
                                ["protocol", "model", "status"], registry=self.registry)
        self.errors = Counter("kiroproxy_errors", "Failed client requests by error kind", ["kind"],
                              registry=self.registry)
        self.ttfb = Histogram("kiroproxy_time_to_first_byte_seconds", "Time to the first answer byte",
                              ["protocol"], buckets=TIME_BUCKETS, registry=self.registry)
        self.duration = Histogram("kiroproxy_request_duration_seconds", "Request duration, start to end",
                                  ["protocol"], buckets=TIME_BUCKETS, registry=self.registry)
        self.tokens = Counter("kiroproxy_tokens", "Tokens by direction (input, output)", ["direction"],
                              registry=self.registry)
        self.refreshes = Counter("kiroproxy_token_refreshes", "Account token refreshes by outcome", ["outcome"],
                                 registry=self.registry)
        self.registry.register(ReadAtScrape(accounts, flows))


class Metrics:
    """Observer of exchanges (relay observers) and of token refreshes (refresher listeners)."""

    def __init__(self, accounts: Callable[[], Dict[str, int]], flows: Callable[[], Dict[str, Any]]) -> None:
        self._sources = (accounts, flows)
        self._instruments: Optional[Instruments] = None
        self._models: Set[str] = set()
        self._lock = threading.Lock()

    @property
    def instruments(self) -> Instruments:
        """Built on first use."""
        made = self._instruments
        if made is None:
            with self._lock:
                if self._instruments is None:
                    self._instruments = Instruments(*self._sources)
                made = self._instruments
        return made

    def _model(self, name: str) -> str:
        name = name or "-"
        with self._lock:
            if name in self._models:
                return name
            if len(self._models) < MAX_MODELS:
                self._models.add(name)
                return name
        return OTHER

    def started(self, exchange: Exchange) -> None:
        pass

    def finished(self, exchange: ExchangeSnapshot) -> None:
        made = self.instruments
        protocol = exchange.protocol or "-"
        made.requests.labels(protocol, self._model(exchange.model), str(exchange.status)).inc()
        if exchange.error:
            made.errors.labels(str(exchange.error.get("kind") or "unknown")).inc()
        if exchange.first_byte_at is not None:
            made.ttfb.labels(protocol).observe(max(0.0, exchange.first_byte_at - exchange.received_at))
        if exchange.completed_at is not None:
            made.duration.labels(protocol).observe(max(0.0, exchange.completed_at - exchange.received_at))
        made.tokens.labels("input").inc(exchange.usage.input_tokens or 0)
        made.tokens.labels("output").inc(exchange.usage.output_tokens or 0)

    def refreshed(self, outcome: str) -> None:
        """A token refresh ended: "ok", "failed" (transient) or "rejected" (the account is unhealthy)."""
        self.instruments.refreshes.labels(outcome).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.instruments.registry)
