"""The object graph: settings -> stores, pool, upstream client, relay. Built explicitly, never at import.

build() wires everything (tests pass overrides), start() starts the refresh thread, close()
stops it and flushes state to disk. open_logins() is the small graph the `login` command uses
when no server runs: the account store and sign-ins only, never the flow store or stats.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from .accounts.logins import Logins
from .accounts.monitor import Adopter, Monitor
from .accounts.pool import AccountPool
from .accounts.refresher import Refresher
from .capacity import StreamSlots
from .config import Settings
from .errors import ProxyError
from .health import UpstreamHealth
from .kiro.auth import Authenticator, RefreshError
from .kiro.client import KiroClient
from .kiro.login import KiroLogin
from .kiro.models import Catalog, ModelInfo
from .kiro.transport import ClientIdentity, Endpoints, Sessions
from .kiro.warm import WarmConnections
from .lockout import Lockout
from .metrics import Metrics
from .protocols import gemini, openai
from .redaction import ordered
from .relay import Relay
from .requestlog import RequestLog
from .store.flows import FlowStore
from .store.jsondb import JsonDB, tidy, write_atomic
from .store.keys import KeyStore
from .store.responses import ResponseStore
from .store.stats import Stats

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin.key"


def ensure_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(home, 0o700)
    except OSError:
        pass
    return home


def admin_key_for(settings: Settings, home: Path) -> tuple:
    """(key, generated_now). Settings/env win; otherwise a key stored in the data dir (0600)."""
    if settings.admin_key:
        return settings.admin_key, False
    path = home / ADMIN_KEY_FILE
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key, False
    key = "kpa-" + secrets.token_urlsafe(32)
    write_atomic(path, (key + "\n").encode("utf-8"), 0o600)
    return key, True


def _pool(settings: Settings, home: Path) -> AccountPool:
    return AccountPool(
        JsonDB(home / "accounts.json", 0o600),
        cooldown_seconds=settings.cooldown_seconds, max_cooldown_seconds=settings.max_cooldown_seconds,
        max_concurrency=settings.max_concurrency_per_account, min_interval=settings.min_interval_seconds,
        sticky=settings.sticky_sessions, concurrency_wait=settings.concurrency_wait_seconds)


def _identity(settings: Settings) -> ClientIdentity:
    return ClientIdentity(settings.kiro_version, settings.node_version, settings.os_version)


def _endpoints(settings: Settings) -> Endpoints:
    return Endpoints(settings.kiro_api_url, settings.kiro_auth_url, settings.aws_oidc_url)


def account_pool(settings: Settings) -> AccountPool:
    """The account store of the data directory, for the command line when no server runs."""
    return _pool(settings, ensure_home(settings.home))


def open_logins(settings: Settings) -> Tuple[Logins, Callable[[], None]]:
    """(logins, close) on the data directory alone, for the CLI when no server owns it.

    Opens accounts.json and nothing else: no admin key, flow store, stats or background thread,
    so it never touches files a server keeps state in besides the account store.
    """
    home = ensure_home(settings.home)
    pool = _pool(settings, home)
    sessions = Sessions(settings.proxy_url)
    logins = Logins(KiroLogin(_endpoints(settings), sessions, _identity(settings)), pool,
                    default_region=settings.region)
    # No pool.flush() on close: add() already wrote the new account, and rewriting every other
    # account from what was read at start could only lose changes made meanwhile.
    return logins, sessions.close


def known_secrets(keys: List[str], pool: AccountPool) -> List[str]:
    """Every secret value we know of (keys plus account tokens), masked wherever stored text has it."""
    found = list(keys)
    for account_id in pool.ids():
        try:
            creds = pool.creds(account_id)
        except ProxyError:
            continue  # removed meanwhile
        found += [creds.access_token, creds.refresh_token, creds.client_secret or ""]
    return [s for s in found if s]


def _account_name(pool: AccountPool, account_id: str) -> str:
    try:
        return pool.creds(account_id).name
    except ProxyError:
        return ""


@dataclass
class Services:
    """Every long-lived part of a running proxy, built once by build(); nothing rewires them later."""

    settings: Settings
    home: Path
    admin_key: str
    admin_key_generated: bool
    endpoints: Endpoints
    identity: ClientIdentity
    sessions: Sessions
    pool: AccountPool
    auth: Authenticator
    refresher: Refresher
    client: KiroClient
    catalog: Catalog
    responses: ResponseStore
    stats: Stats
    flows: FlowStore
    monitor: Monitor
    relay: Relay
    logins: Logins
    slots: StreamSlots
    metrics: Metrics
    upstream_health: UpstreamHealth
    admin_lockout: Lockout
    keys: KeyStore
    started_at: float = field(default_factory=time.time)
    listen: str = ""  # the address really listened on, once start() knows it
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def build(cls, settings: Settings, **overrides: Any) -> Services:
        """The whole graph from settings; `overrides` replace parts by name (tests inject fakes)."""
        home = ensure_home(settings.home)
        tidy(home)  # before anything opens a store: no crash leftovers, nothing readable by others
        admin_key, generated = admin_key_for(settings, home)
        endpoints = overrides.pop("endpoints", None) or _endpoints(settings)
        identity = _identity(settings)
        sessions = overrides.pop("sessions", None) or Sessions(settings.proxy_url, warm=WarmConnections(
            enabled=settings.warm_connections, connect_timeout=settings.connect_timeout))
        pool = overrides.pop("pool", None) or _pool(settings, home)
        auth = overrides.pop("auth", None) or Authenticator(endpoints, sessions, identity)
        client = overrides.pop("client", None) or KiroClient(
            endpoints, sessions, identity, connect_timeout=settings.connect_timeout,
            first_event_timeout=settings.first_event_timeout, read_timeout=settings.read_timeout,
            max_body_bytes=settings.max_body_bytes)
        catalog = overrides.pop("catalog", None) or Catalog(
            aliases=settings.model_aliases,
            roles={"default": settings.default_model, "fast": settings.fast_model,
                   "strong": settings.strong_model})
        catalog.add_rule(openai.model_rule)
        catalog.add_rule(gemini.model_rule)

        def secret_values() -> List[str]:  # one set of secrets masked in every store
            return known_secrets([admin_key, *settings.api_keys], pool)

        responses = overrides.pop("responses", None) or ResponseStore(
            home / "responses", max_entries=settings.responses_max_entries,
            max_bytes=int(settings.responses_max_mb * 2**20),
            secrets=secret_values)
        stats = overrides.pop("stats", None) or Stats(home / "stats.json")
        flows = overrides.pop("flows", None) or FlowStore(
            home / "flows", stats, max_flows=settings.flows_max_count,
            max_bytes=int(settings.flows_max_mb * 2**20), max_age_days=settings.flows_max_age_days,
            backlog_bytes=int(settings.flow_backlog_mb * 2**20),
            secrets=secret_values,
            account_name=lambda account_id: _account_name(pool, account_id))
        metrics = overrides.pop("metrics", None) or Metrics(pool.counts, flows.counts)
        refresher = overrides.pop("refresher", None) or Refresher(
            pool, auth, margin=settings.refresh_margin_seconds, interval=settings.refresh_interval_seconds,
            outcomes=[metrics.refreshed])
        upstream_health = overrides.pop("upstream_health", None) or UpstreamHealth()
        request_log = RequestLog(lambda: ordered(secret_values()))
        monitor = overrides.pop("monitor", None) or Monitor(pool, refresher, client,
                                                            cache_seconds=settings.quota_cache_seconds)
        relay = overrides.pop("relay", None) or Relay(
            pool=pool, refresher=refresher, client=client, catalog=catalog,
            max_attempts=settings.max_attempts, backoff=settings.retry_backoff_seconds,
            keepalive=settings.keepalive_seconds, stream_start=settings.stream_start_seconds,
            observers=[flows, metrics, upstream_health, request_log],
            on_exhausted=lambda account_id: refine_reset_date(monitor, pool, account_id))
        logins = overrides.pop("logins", None) or Logins(KiroLogin(endpoints, sessions, identity), pool,
                                                         default_region=settings.region)
        slots = overrides.pop("slots", None) or StreamSlots(settings.max_streams)
        admin_lockout = overrides.pop("admin_lockout", None) or Lockout(settings.admin_max_failures,
                                                                        settings.admin_lockout_seconds)
        keys = overrides.pop("keys", None) or KeyStore(home)
        return cls(settings=settings, home=home, admin_key=admin_key, admin_key_generated=generated,
                   endpoints=endpoints, identity=identity, sessions=sessions, pool=pool, auth=auth,
                   refresher=refresher, client=client, catalog=catalog, responses=responses, stats=stats,
                   flows=flows, metrics=metrics, upstream_health=upstream_health, monitor=monitor, relay=relay,
                   logins=logins, slots=slots, admin_lockout=admin_lockout, keys=keys,
                   listen=settings.listen, **overrides)

    def client_keys_configured(self) -> bool:
        """Whether /v1 calls must carry a client key (a stored key, or api_keys in the settings)."""
        return bool(self.settings.api_keys) or self.keys.any()

    def served_models(self) -> List[ModelInfo]:
        """Kiro models plus user aliases (each alias shows its target's limits)."""
        infos = self.catalog.models()
        known = {m.id for m in infos}
        for alias, target in self.catalog.aliases().items():
            if alias not in known:
                base = self.catalog.info(self.catalog.lookup(target) or target)
                infos.append(ModelInfo(alias, f"{alias} → {base.id}", base.context_window, base.max_output,
                                       base.images, base.thinking_efforts))
        return infos

    def sync_models(self, force: bool = False) -> bool:
        """Replace the built-in model list with an account's catalogue when it is stale.

        Network I/O; runs on the refresh thread or a short-lived thread, never on a request.
        """
        ttl = self.settings.model_catalog_ttl
        if not ttl:
            return False
        updated = self.catalog.updated_at
        if not force and updated is not None and time.time() - updated < ttl:
            return False
        active = [a["id"] for a in self.pool.summaries() if a["state"] == "active"]
        for account_id in active[:2]:
            try:
                creds = self.refresher.ensure_fresh(account_id)
                models = self.client.list_models(creds)
            except (ProxyError, RefreshError) as exc:
                log.warning("model catalogue from account %s failed: %s", account_id, exc)
                continue
            if models:
                self.catalog.replace(models)
                log.info("model catalogue: %d models from account %s", len(models), account_id)
                return True
        return False

    def sync_models_soon(self) -> None:
        """Fetch the catalogue in the background (after an account is added)."""
        if self.settings.model_catalog_ttl and self.catalog.source == "builtin":
            threading.Thread(target=self.sync_models, name="kiroproxy-models", daemon=True).start()

    def start(self, listen: Optional[str] = None) -> None:
        """Start the background work; `listen` is the address the server really bound."""
        self.listen = listen or self.listen
        self.flows.start()
        adopter = Adopter(self.pool, lambda: self.settings.scan_home_path, identify=self.monitor.email_of)
        self.refresher.start(tasks=(adopter.run_once, self.sync_models, self.keys.flush_usage))

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.refresher.stop()
        self.flows.close()
        self.pool.flush()
        self.keys.flush_usage(everything=True)
        self.sessions.close()
        log.info("state flushed to %s", self.home)


def refine_reset_date(monitor: Monitor, pool: AccountPool, account_id: str) -> None:
    """After a quota 402, ask Kiro when the credits come back and park the account until then."""
    def run() -> None:
        until = monitor.reset_date(account_id)
        if until and until > time.time():
            pool.park(account_id, until, pool.summary(account_id)["reason"] or "credits exhausted")

    threading.Thread(target=run, name="kiroproxy-reset-date", daemon=True).start()
