"""Settings: defaults < ~/.kiro-proxy/config.json < KIROPROXY_* environment < command-line flags.

A frozen dataclass built once by validate() (from load(), the CLI or a test) and passed down; values
convert with pydantic's lax rules (conversion.py) without importing pydantic. Reading files here
happens only when load() is called, never at import.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from .conversion import Invalid, convert
from .errors import BadRequest
from .kiro.credentials import proxy_url_of


def origin_of(entry: str) -> str:
    """A web origin as browsers send it (scheme://host[:port], lower case); ValueError otherwise."""
    text = entry.strip().lower().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path \
            or parts.query or parts.fragment or "*" in text or parts.username:
        raise ValueError(f"{entry!r} is not a web origin: write scheme://host[:port], e.g. https://app.example "
                         "(no path, no wildcard)")
    return text


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """The configuration is invalid; the message says which key and why."""


def data_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """KIROPROXY_HOME, else ~/.kiro-proxy (HOME is honoured). An empty KIROPROXY_HOME is unset."""
    env = os.environ if env is None else env
    if (env.get("KIROPROXY_HOME") or "").strip():
        return Path(env["KIROPROXY_HOME"]).expanduser()
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".kiro-proxy"


def bounded(default: Any, **bounds: Any) -> Any:
    """A field with limits (ge, gt, le) that validate() checks."""
    return field(default=default, metadata=bounds)


@dataclass(frozen=True)
class Settings:
    """Every setting with its default. Build it with validate(), which converts and checks values;
    the constructor itself takes them as they are."""

    # server
    host: str = "127.0.0.1"
    port: int = bounded(8080, ge=0, le=65535)
    threads: int = bounded(16, ge=1, le=1024)         # worker threads besides the stream slots
    max_streams: int = bounded(64, ge=1, le=4096)     # chat requests at once (each holds a thread)
    connection_limit: int = bounded(1000, ge=10)
    request_timeout_seconds: float = bounded(20.0, gt=0)
    data_dir: str = ""
    scan_home: str = ""
    log_level: str = "INFO"
    shutdown_grace_seconds: float = bounded(5.0, ge=0)

    # keys
    admin_key: Optional[str] = None
    admin_max_failures: int = bounded(10, ge=1)
    admin_lockout_seconds: float = bounded(60.0, ge=0)
    api_keys: List[str] = field(default_factory=list)

    # who may call: Host names beyond loopback, web origins that get CORS answers
    allowed_hosts: List[str] = field(default_factory=list)
    allowed_origins: List[str] = field(default_factory=list)

    # upstream endpoints (None: the defaults of the upstream reference)
    kiro_api_url: Optional[str] = None
    kiro_auth_url: Optional[str] = None
    aws_oidc_url: Optional[str] = None
    region: str = "us-east-1"
    proxy_url: Optional[str] = None
    kiro_version: str = "0.11.63"
    node_version: str = "22.22.0"
    os_version: str = "darwin#24.6.0"

    # models
    model_aliases: Dict[str, str] = field(default_factory=dict)
    default_model: str = "claude-sonnet-4.5"
    fast_model: str = "claude-haiku-4.5"
    strong_model: str = "claude-opus-4.5"
    model_catalog_ttl: float = bounded(3600.0, ge=0)

    # flows: the record of every request
    flows_max_count: int = bounded(10_000, ge=0)
    flows_max_mb: float = bounded(512.0, ge=0)
    flows_max_age_days: float = bounded(30.0, ge=0)
    flow_backlog_mb: float = bounded(64.0, gt=0)

    # stored Responses API answers (previous_response_id)
    responses_max_entries: int = bounded(1000, ge=0)
    responses_max_mb: float = bounded(256.0, ge=0)

    # upstream behaviour
    connect_timeout: float = bounded(10.0, gt=0)
    warm_connections: bool = True
    first_event_timeout: float = bounded(15.0, gt=0)
    read_timeout: float = bounded(300.0, gt=0)
    max_attempts: int = bounded(6, ge=1, le=50)
    retry_backoff_seconds: float = bounded(1.0, ge=0)
    max_body_bytes: int = bounded(600_000, ge=10_000)
    keepalive_seconds: float = bounded(15.0, gt=0)
    stream_start_seconds: float = bounded(2.0, gt=0)

    # account pool
    refresh_margin_seconds: float = bounded(600.0, ge=0)
    refresh_interval_seconds: float = bounded(60.0, gt=0)
    cooldown_seconds: float = bounded(180.0, ge=0)
    max_cooldown_seconds: float = bounded(1800.0, ge=0)
    quota_cache_seconds: float = bounded(60.0, ge=0)
    sticky_sessions: bool = True
    max_concurrency_per_account: int = bounded(0, ge=0)
    concurrency_wait_seconds: float = bounded(30.0, ge=0)
    min_interval_seconds: float = bounded(0.0, ge=0)

    @property
    def home(self) -> Path:
        return Path(self.data_dir) if self.data_dir else data_dir()

    @property
    def scan_home_path(self) -> Path:
        """The home directory searched for Kiro's own token files (~/.aws/sso/cache...)."""
        return Path(self.scan_home).expanduser() if self.scan_home else Path.home()

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"


FIELDS = tuple(item.name for item in fields(Settings))
KINDS = {item.name: str(item.type) for item in fields(Settings)}


def _env_overrides(env: Mapping[str, str]) -> Dict[str, Any]:
    """The KIROPROXY_* values. An empty (or blank) variable counts as unset, for every key alike:
    `KIROPROXY_ADMIN_KEY=` must not silently discard config.json's admin_key, nor
    `KIROPROXY_PORT=` be an error, since shells and unit files leave variables empty all the time."""
    out: Dict[str, Any] = {}
    for name in FIELDS:
        raw = env.get("KIROPROXY_" + name.upper())
        if raw is None or not raw.strip() or name == "data_dir":
            continue
        annotation = KINDS[name]
        if ("Dict" in annotation or "dict" in annotation) and raw.strip().startswith("{"):
            try:
                out[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"KIROPROXY_{name.upper()} is not valid JSON: {exc}") from None
        elif "List" in annotation and raw.strip().startswith("["):
            try:
                out[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"KIROPROXY_{name.upper()} is not valid JSON: {exc}") from None
        else:
            out[name] = raw
    return out


def read_file(path: Path) -> Dict[str, Any]:
    """The settings stored in config.json; keys starting with '_' are documentation."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load(flags: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None) -> Settings:
    """Build Settings from every layer. Raises ConfigError naming the bad key."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    home = Path(flags.get("data_dir") or data_dir(env))
    merged: Dict[str, Any] = {}
    merged.update(read_file(home / "config.json"))
    merged.update(_env_overrides(env))
    merged.update(flags)
    merged["data_dir"] = str(home)
    if not merged.get("scan_home") and env.get("HOME"):
        merged["scan_home"] = env["HOME"]
    return validate(merged)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [k.strip() for k in value.split(",") if k.strip()]
    return value


def _check_hosts(value: List[str]) -> List[str]:
    for entry in value:
        if not entry.strip() or "*" in entry or "/" in entry:
            raise Invalid(f"{entry!r} is not a host name (name or name:port; no wildcards, no scheme)")
    return [entry.strip().lower() for entry in value]


def _check_origins(value: List[str]) -> List[str]:
    try:
        return [origin_of(entry) for entry in value]
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _check_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise Invalid(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return value.upper()


def _check_proxy(value: Any) -> Any:
    try:
        return proxy_url_of(value, param="proxy_url")
    except BadRequest as exc:
        raise Invalid(exc.message) from None


BEFORE: Dict[str, Callable[[Any], Any]] = {
    "api_keys": _split_list, "allowed_hosts": _split_list, "allowed_origins": _split_list, "proxy_url": _check_proxy}
AFTER: Dict[str, Callable[[Any], Any]] = {
    "allowed_hosts": _check_hosts, "allowed_origins": _check_origins, "log_level": _check_level}


def _field_value(item: Any, raw: Any) -> Any:
    value = BEFORE[item.name](raw) if item.name in BEFORE else raw
    value = convert(str(item.type), value, item.metadata)
    return AFTER[item.name](value) if item.name in AFTER else value


def validate(values: Mapping[str, Any]) -> Settings:
    """Settings from raw values (JSON, strings, flags); raises ConfigError naming every bad key."""
    converted: Dict[str, Any] = {}
    problems: List[str] = []
    for item in fields(Settings):
        if item.name in values:
            try:
                converted[item.name] = _field_value(item, values[item.name])
            except Invalid as exc:
                problems.append(f"{'.'.join((item.name, *exc.where))}: {exc.message}")
    problems += [f"{key}: Extra inputs are not permitted" for key in values if key not in KINDS]
    if problems:
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}")
    return Settings(**converted)
