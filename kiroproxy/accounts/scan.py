"""Finds Kiro credentials on this machine: the Kiro IDE's SSO cache and the kiro-cli SQLite store.

Read-only: never writes, locks for writing or repairs a file or database. A bad file becomes a
`Found` with a `problem`, never an exception, and no token or client secret ever appears in a `Found`.
"""
from __future__ import annotations

import json
import logging
import re
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import BadRequest, NotFound
from .credentials import (
    EXTERNAL_IDP,
    IDC,
    SOCIAL,
    Credentials,
    auth_method_of,
    from_token_file,
    mask,
    parse_time,
)

log = logging.getLogger(__name__)

KIRO_IDE = "kiro-ide"
KIRO_CLI = "kiro-cli"
IDE_TOKEN_FILE = "kiro-auth-token.json"
# A Kiro token file has one of these; AWS CLI SSO caches and client registrations have none.
KIRO_MARKERS = ("authMethod", "provider", "profileArn", "clientIdHash")
MAX_FILE_BYTES = 1 << 20
CLI_FOLDERS = (
    (".local", "share", "kiro-cli"),
    (".local", "share", "amazon-q"),
    ("Library", "Application Support", "kiro-cli"),
    ("Library", "Application Support", "amazon-q"),
)
CLI_DATABASE = "data.sqlite3"
# auth_kv token key -> auth method; an IdC token's registration sits under the same prefix.
CLI_TOKEN_KEYS = (
    ("kirocli:odic:token", IDC),
    ("kirocli:social:token", SOCIAL),
    ("kirocli:external-idp:token", EXTERNAL_IDP),
    ("codewhisperer:odic:token", IDC),
)
CLI_PROFILE_KEY = "api.codewhisperer.profile"
CLI_AUTH_METHODS = {IDC: "IdC", SOCIAL: "social", EXTERNAL_IDP: "external_idp"}
# snake_case keys of kiro-cli's token JSON -> the camelCase names from_token_file reads.
CLI_TOKEN_FIELDS = (
    ("accessToken", "access_token"), ("refreshToken", "refresh_token"), ("expiresAt", "expires_at"),
    ("region", "region"), ("startUrl", "start_url"), ("scopes", "scopes"), ("provider", "provider"),
    ("tokenEndpoint", "token_endpoint"), ("issuerUrl", "issuer_url"), ("clientId", "client_id"),
)
BUILDER_ID_START_URL = "https://view.awsapps.com/start"
SAFE_HASH = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What parsing a hand-edited or damaged token can raise besides BadRequest.
MALFORMED = (BadRequest, ValueError, TypeError, OverflowError)

Entry = Tuple["Found", Optional[Credentials]]


@dataclass(frozen=True)
class Found:
    """One credential found on disk, described without its secrets.

    `path` is the token file, or "<sqlite path>#<key>" for kiro-cli entries. `auth_method` is ""
    when nothing could be read (an unreadable database). `expires_at` is epoch seconds, 0 unknown.
    """

    path: str
    source: str
    auth_method: str
    provider: str
    region: str
    expires_at: float
    refresh_token_hint: str
    has_registration: bool
    problem: Optional[str]


def scan(home: Path, *, now: Optional[float] = None, lock_timeout: float = 1.0) -> List[Found]:
    """Every Kiro credential under `home`. Never raises for a bad file or database.

    `lock_timeout` is how long (seconds) to wait for a kiro-cli database another process is writing.
    """
    return [found for found, _ in _entries(Path(home), now, lock_timeout)]


def listing(home: Path, *, now: Optional[float] = None, lock_timeout: float = 1.0) -> List[Entry]:
    """scan() with each entry's full credentials (None for an entry with a problem).

    The credentials hold secrets: callers use them to compare, never to show.
    """
    return _entries(Path(home), now, lock_timeout)


def path_holding(home: Path, refresh_token: str) -> Optional[str]:
    """The listed path whose credentials carry exactly this refresh token, if any."""
    for found, creds in listing(home):
        if creds is not None and creds.refresh_token == refresh_token:
            return found.path
    return None


def load(path: str, home: Path, *, now: Optional[float] = None) -> Credentials:
    """Full credentials for a path `scan(home)` lists, with `source_path` = that path.

    Only listed paths are accepted (exact match), so the API cannot read arbitrary files: any other
    raises NotFound. A listed path with a problem raises BadRequest carrying the problem.
    """
    for found, creds in _entries(Path(home), now, 1.0):
        if found.path != path:
            continue
        if creds is None:
            raise BadRequest(found.problem or "these credentials cannot be added")
        return creds
    raise NotFound(f"no Kiro credentials found at {path!r}")


def _entries(home: Path, now: Optional[float], lock_timeout: float) -> List[Entry]:
    entries = _ide_entries(home / ".aws" / "sso" / "cache", now)
    for folder in CLI_FOLDERS:
        database = home.joinpath(*folder, CLI_DATABASE)
        try:
            present = database.is_file()
        except OSError:  # a folder we may not enter (EACCES) holds nothing we can read
            present = False
        if present:
            entries.extend(_database_entries(database, now, lock_timeout))
    return entries


def _ok(path: str, source: str, creds: Credentials, has_registration: bool) -> Entry:
    found = Found(path=path, source=source, auth_method=creds.auth_method, provider=creds.provider,
                  region=creds.region, expires_at=creds.expires_at,
                  refresh_token_hint=mask(creds.refresh_token) or "", has_registration=has_registration,
                  problem=None)
    return found, creds


def _bad(path: str, source: str, problem: str, data: Optional[Mapping[str, Any]] = None, *,
         auth_method: Optional[str] = None, has_registration: bool = False) -> Entry:
    """A problem entry, described from whatever could be read (never raises)."""
    data = data or {}
    try:
        expires_at = parse_time(data.get("expiresAt"))
    except MALFORMED:
        expires_at = 0.0
    refresh = data.get("refreshToken")
    provider, region = data.get("provider"), data.get("region")
    found = Found(path=path, source=source,
                  auth_method=auth_method or (auth_method_of(data) if data else ""),
                  provider=provider if isinstance(provider, str) else "",
                  region=region if isinstance(region, str) and region else "us-east-1",
                  expires_at=expires_at, refresh_token_hint=(mask(refresh) or "") if isinstance(refresh, str) else "",
                  has_registration=has_registration, problem=problem)
    return found, None


def _credentials(data: Mapping[str, Any], registration: Optional[Mapping[str, Any]], path: str,
                 now: Optional[float]) -> Tuple[Optional[Credentials], str]:
    """from_token_file's credentials, or None and why they cannot be used."""
    try:
        return from_token_file(data, registration=registration, source_path=path, now=now), ""
    except BadRequest as exc:
        return None, exc.message
    except MALFORMED:  # garbage field types (a list of numbers as scopes, a text expiresIn...)
        return None, "the token has malformed fields"


def _read_json(path: Path) -> Any:
    """The file's JSON; ValueError for an oversized or non-JSON file, OSError if unreadable."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError("the file is too large to be a token file")
    return json.loads(path.read_bytes().decode("utf-8"))


def _is_kiro_token(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    has_token = any(isinstance(data.get(k), str) for k in ("accessToken", "refreshToken"))
    return has_token and any(k in data for k in KIRO_MARKERS)


def _ide_entries(cache: Path, now: Optional[float]) -> List[Entry]:
    """Kiro token files in the SSO cache; the IDE's own file first."""
    try:
        files = sorted((p for p in cache.glob("*.json") if p.is_file()),
                       key=lambda p: (p.name != IDE_TOKEN_FILE, p.name))
    except OSError as exc:  # a cache folder we may not list is one we cannot use
        log.debug("cannot list %s: %s", cache, type(exc).__name__)
        return []
    entries: List[Entry] = []
    for file in files:
        # Other tools share this cache: an unreadable or foreign file is only Kiro's problem
        # when it is the IDE's own token file.
        canonical = file.name == IDE_TOKEN_FILE
        try:
            data = _read_json(file)
        except (OSError, ValueError) as exc:
            log.debug("skipping %s: %s", file, type(exc).__name__)
            if canonical:
                entries.append(_bad(str(file), KIRO_IDE, "the file cannot be read as JSON"))
            continue
        if _is_kiro_token(data):
            entries.append(_ide_entry(file, data, now))
        elif canonical:
            entries.append(_bad(str(file), KIRO_IDE, "the file is not a Kiro token file"))
    return entries


def _ide_entry(file: Path, data: Dict[str, Any], now: Optional[float]) -> Entry:
    path = str(file)
    registration: Optional[Dict[str, Any]] = None
    if auth_method_of(data) == IDC and not (data.get("clientId") and data.get("clientSecret")):
        registration, problem = _ide_registration(file.parent, data.get("clientIdHash"))
        if registration is None:
            return _bad(path, KIRO_IDE, problem, data, auth_method=IDC)
    creds, problem = _credentials(data, registration, path, now)
    if creds is None:
        return _bad(path, KIRO_IDE, problem, data, has_registration=registration is not None)
    return _ok(path, KIRO_IDE, creds, registration is not None)


def _ide_registration(cache: Path, client_id_hash: Any) -> Tuple[Optional[Dict[str, Any]], str]:
    """The IdC client registration `<cache>/<clientIdHash>.json`, or None and why not."""
    # The hash names a file: accept only a plain file name so a token file cannot point elsewhere.
    if not isinstance(client_id_hash, str) or not SAFE_HASH.fullmatch(client_id_hash):
        return None, "IdC token without a usable clientIdHash: its client registration cannot be found"
    file = cache / f"{client_id_hash}.json"
    if not file.is_file():
        return None, (f"IdC token without its client registration ({file.name} is missing); "
                      "sign in to Kiro again")
    try:
        data = _read_json(file)
    except (OSError, ValueError):
        return None, f"the client registration {file.name} cannot be read as JSON"
    if not isinstance(data, dict) or not (data.get("clientId") and data.get("clientSecret")):
        return None, f"the client registration {file.name} has no clientId/clientSecret"
    return data, ""


def _database_entries(database: Path, now: Optional[float], lock_timeout: float) -> List[Entry]:
    import sqlite3  # only a scan that finds kiro-cli's database needs it, not the server's start-up

    try:
        auth, profile = _read_database(database, lock_timeout)
    except sqlite3.Error as exc:
        # Locked, corrupt or not a database: report it and keep scanning the rest.
        log.warning("cannot read %s: %s", database, exc)
        return [_bad(str(database), KIRO_CLI, f"the kiro-cli database cannot be read: {exc}")]
    profile_arn = _profile_arn(profile)
    return [_cli_entry(database, key, method, auth, profile_arn, now)
            for key, method in CLI_TOKEN_KEYS if key in auth]


def _read_database(database: Path, lock_timeout: float) -> Tuple[Dict[str, Any], Any]:
    """auth_kv as a dict and the raw profile value from `state`. Opens the file read-only."""
    import sqlite3

    uri = database.absolute().as_uri() + "?mode=ro"  # as_uri percent-encodes spaces, '#' and '?'
    with closing(sqlite3.connect(uri, uri=True, timeout=lock_timeout)) as conn:
        conn.execute("PRAGMA query_only = ON")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        auth: Dict[str, Any] = {}
        if "auth_kv" in tables:
            auth = dict(conn.execute("SELECT key, value FROM auth_kv").fetchall())
        profile = None
        if "state" in tables:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (CLI_PROFILE_KEY,)).fetchone()
            profile = row[0] if row else None
    return auth, profile


def _json_object(raw: Any) -> Dict[str, Any]:
    """A kiro-cli JSON value (TEXT or BLOB column) as a dict; ValueError otherwise."""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8")
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _profile_arn(raw: Any) -> Optional[str]:
    try:
        arn = _json_object(raw).get("arn") if raw is not None else None
    except ValueError:
        return None
    return arn if isinstance(arn, str) and arn else None


def _cli_entry(database: Path, key: str, method: str, auth: Mapping[str, Any], profile_arn: Optional[str],
               now: Optional[float]) -> Entry:
    path = f"{database}#{key}"
    try:
        data = _cli_token(_json_object(auth[key]), method, profile_arn)
    except ValueError:
        return _bad(path, KIRO_CLI, f"{key} is not a JSON object", auth_method=method)
    registration: Optional[Dict[str, Any]] = None
    if method == IDC:
        registration_key = key.replace(":token", ":device-registration")
        try:
            registration = _cli_registration(_json_object(auth[registration_key]))
        except KeyError:
            return _bad(path, KIRO_CLI, f"IdC token without its device registration ({registration_key})",
                        data, auth_method=IDC)
        except ValueError:
            return _bad(path, KIRO_CLI, f"{registration_key} is not a usable client registration",
                        data, auth_method=IDC)
    creds, problem = _credentials(data, registration, path, now)
    if creds is None:
        return _bad(path, KIRO_CLI, problem, data, auth_method=method, has_registration=registration is not None)
    return _ok(path, KIRO_CLI, creds, registration is not None)


def _cli_token(token: Mapping[str, Any], method: str, profile_arn: Optional[str]) -> Dict[str, Any]:
    """kiro-cli's snake_case token JSON in the camelCase shape of a Kiro IDE token file."""
    data: Dict[str, Any] = {}
    for camel, snake in CLI_TOKEN_FIELDS:
        value = token.get(snake, token.get(camel))
        if value not in (None, "", []):
            data[camel] = value
    data["authMethod"] = CLI_AUTH_METHODS[method]
    if profile_arn:
        data["profileArn"] = profile_arn
    if method == IDC and "provider" not in data:
        start_url = str(data.get("startUrl") or BUILDER_ID_START_URL).rstrip("/#")
        data["provider"] = "BuilderId" if start_url == BUILDER_ID_START_URL else "Enterprise"
    return data


def _cli_registration(registration: Mapping[str, Any]) -> Dict[str, Any]:
    """A device registration as from_token_file's registration; ValueError without a client."""
    client_id, client_secret = registration.get("client_id"), registration.get("client_secret")
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret):
        raise ValueError("no client_id/client_secret")
    data: Dict[str, Any] = {"clientId": client_id, "clientSecret": client_secret}
    expires = registration.get("client_secret_expires_at")
    try:
        if parse_time(expires):
            data["expiresAt"] = expires
    except MALFORMED:
        log.debug("ignoring an unreadable client_secret_expires_at")  # only informative, never blocks
    return data
