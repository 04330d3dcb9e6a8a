"""Tests for accounts.scan: Kiro IDE token files and the kiro-cli SQLite store (upstream reference §8)."""
from __future__ import annotations

import calendar
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from kiroproxy.accounts import scan
from kiroproxy.accounts.credentials import EXTERNAL_IDP, IDC, SOCIAL
from kiroproxy.errors import BadRequest, NotFound
from tests.factories import refresh_token

# 2026-04-06T19:29:16Z as epoch seconds, computed without the code under test.
STAMP = calendar.timegm((2026, 4, 6, 19, 29, 16))
ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
CLI_ARN = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF"
HASH = "0123456789abcdef0123456789abcdef01234567"
# Every secret the fixtures write; none may ever show up in a Found.
SECRETS = {
    "social_access": "aoaSocialAccessSecret", "social_refresh": refresh_token("socialSecret"),
    "idc_access": "aoaIdcAccessSecret", "idc_refresh": refresh_token("idcSecret"),
    "client_secret": "regClientSecretValue",
    "cli_access": "cliOdicAccessSecret", "cli_refresh": refresh_token("cliOdicSecret"),
    "cli_client_secret": "cliClientSecretValue",
    "cli_social_access": "cliSocialAccessSecret", "cli_social_refresh": refresh_token("cliSocialSecret"),
}


# ----- builders ----------------------------------------------------------------------------------

def hint(secret: str) -> str:
    """What a masked secret looks like: its first 3 characters and its length."""
    return f"{secret[:3]}…({len(secret)} chars)"


def sso_cache(home: Path) -> Path:
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def social_token(**extra: Any) -> Dict[str, Any]:
    data = {"accessToken": SECRETS["social_access"], "refreshToken": SECRETS["social_refresh"],
            "expiresAt": "2026-04-06T19:29:16.090Z", "authMethod": "social", "provider": "Google",
            "profileArn": ARN}
    data.update(extra)
    return data


def idc_token(**extra: Any) -> Dict[str, Any]:
    data = {"accessToken": SECRETS["idc_access"], "refreshToken": SECRETS["idc_refresh"],
            "expiresAt": "2026-04-06T19:29:16.090Z", "authMethod": "IdC", "provider": "BuilderId",
            "clientIdHash": HASH, "region": "us-east-1"}
    data.update(extra)
    return data


def registration() -> Dict[str, Any]:
    return {"clientId": "regClientId", "clientSecret": SECRETS["client_secret"],
            "expiresAt": "2026-07-01T00:00:00Z"}


def aws_cli_cache() -> Dict[str, Any]:
    """An AWS CLI sso-session token cache entry: a refresh token, but no Kiro keys."""
    return {"startUrl": "https://my.awsapps.com/start", "region": "us-east-1", "accessToken": "awsAccess",
            "expiresAt": "2026-04-06T19:29:16Z", "clientId": "awsClient", "clientSecret": "awsClientSecret",
            "registrationExpiresAt": "2026-07-01T00:00:00Z", "refreshToken": refresh_token("aws")}


def cli_odic(**extra: Any) -> Dict[str, Any]:
    data = {"access_token": SECRETS["cli_access"], "refresh_token": SECRETS["cli_refresh"],
            "expires_at": "2026-04-06T19:29:16.123456789Z", "region": "us-east-1",
            "start_url": "https://view.awsapps.com/start", "oauth_flow": "DeviceCode",
            "scopes": ["codewhisperer:completions", "codewhisperer:conversations"]}
    data.update(extra)
    return data


def cli_registration(**extra: Any) -> Dict[str, Any]:
    data = {"client_id": "cliClientId", "client_secret": SECRETS["cli_client_secret"],
            "client_secret_expires_at": "2026-07-01T00:00:00Z", "region": "us-east-1",
            "oauth_flow": "DeviceCode", "scopes": ["codewhisperer:completions"]}
    data.update(extra)
    return data


def cli_social() -> Dict[str, Any]:
    return {"access_token": SECRETS["cli_social_access"], "refresh_token": SECRETS["cli_social_refresh"],
            "expires_at": "2026-04-06T19:29:16Z", "region": "us-east-1"}


def make_db(path: Path, auth: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> Path:
    """A kiro-cli data.sqlite3 with auth_kv and state tables; dict values are stored as JSON text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(str(path))) as conn:
        conn.execute("CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB)")
        conn.executemany("INSERT INTO auth_kv VALUES (?, ?)",
                         [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in auth.items()])
        conn.executemany("INSERT INTO state VALUES (?, ?)",
                         [(k, json.dumps(v)) for k, v in (state or {}).items()])
        conn.commit()
    return path


def cli_db(home: Path, folder: str = ".local/share/kiro-cli") -> Path:
    """The usual kiro-cli store: an IdC token with its registration and profile, plus a social token."""
    return make_db(home / folder / "data.sqlite3",
                   {"kirocli:odic:token": cli_odic(), "kirocli:odic:device-registration": cli_registration(),
                    "kirocli:social:token": cli_social()},
                   {"api.codewhisperer.profile": {"arn": CLI_ARN, "profile_name": "dev"}})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with every kind of file the IDE's SSO cache can hold, and a kiro-cli store."""
    cache = sso_cache(tmp_path)
    write_json(cache / "kiro-auth-token.json", social_token())
    write_json(cache / "kiro-idc.json", idc_token())
    write_json(cache / f"{HASH}.json", registration())
    write_json(cache / "kiro-orphan.json", idc_token(clientIdHash="f" * 40))
    write_json(cache / "kiro-truncated.json", social_token(refreshToken="aorShort..."))
    write_json(cache / "aws-cli-session.json", aws_cli_cache())
    write_json(cache / "aws-cli-legacy.json", {"startUrl": "https://x.awsapps.com/start", "region": "us-east-1",
                                               "accessToken": "legacyAccess", "expiresAt": "2026-04-06T19:29:16Z"})
    (cache / "broken.json").write_bytes(b"\x00\xffnot json")
    cli_db(tmp_path)
    return tmp_path


def by_path(found: List[scan.Found]) -> Dict[str, scan.Found]:
    return {f.path: f for f in found}


def ide(home: Path, name: str) -> str:
    return str(home / ".aws" / "sso" / "cache" / name)


def cli(home: Path, key: str, folder: str = ".local/share/kiro-cli") -> str:
    return f"{home / folder / 'data.sqlite3'}#{key}"


# ----- Kiro IDE ----------------------------------------------------------------------------------

def test_lists_exactly_the_kiro_tokens(home):
    paths = [f.path for f in scan.scan(home)]
    assert paths == [ide(home, "kiro-auth-token.json"), ide(home, "kiro-idc.json"), ide(home, "kiro-orphan.json"),
                     ide(home, "kiro-truncated.json"),
                     cli(home, "kirocli:odic:token"), cli(home, "kirocli:social:token")]


def test_social_token_file(home):
    found = by_path(scan.scan(home))[ide(home, "kiro-auth-token.json")]
    assert found == scan.Found(path=ide(home, "kiro-auth-token.json"), source="kiro-ide", auth_method=SOCIAL,
                               provider="Google", region="us-east-1", expires_at=pytest.approx(STAMP + 0.09),
                               refresh_token_hint=hint(SECRETS["social_refresh"]), has_registration=False,
                               problem=None)


def test_idc_token_file_is_merged_with_its_registration(home):
    path = ide(home, "kiro-idc.json")
    found = by_path(scan.scan(home))[path]
    assert (found.auth_method, found.provider, found.has_registration, found.problem) == (
        IDC, "BuilderId", True, None)
    creds = scan.load(path, home)
    assert (creds.client_id, creds.client_secret) == ("regClientId", SECRETS["client_secret"])
    assert creds.refresh_token == SECRETS["idc_refresh"]
    assert creds.source_path == path
    assert creds.client_secret_expires_at == calendar.timegm((2026, 7, 1, 0, 0, 0))


def test_idc_token_without_registration_is_a_problem(home):
    path = ide(home, "kiro-orphan.json")
    found = by_path(scan.scan(home))[path]
    assert found.auth_method == IDC and found.has_registration is False
    assert "registration" in found.problem
    assert found.refresh_token_hint == hint(SECRETS["idc_refresh"])
    with pytest.raises(BadRequest, match="registration"):
        scan.load(path, home)


def test_truncated_refresh_token_is_a_problem(home):
    found = by_path(scan.scan(home))[ide(home, "kiro-truncated.json")]
    assert "truncated" in found.problem
    assert found.provider == "Google"
    assert found.expires_at == pytest.approx(STAMP + 0.09)


def test_idc_token_with_inline_client_needs_no_registration(tmp_path):
    write_json(sso_cache(tmp_path) / "kiro-auth-token.json",
               idc_token(clientIdHash="e" * 40, clientId="inlineId", clientSecret="inlineSecret"))
    [found] = scan.scan(tmp_path)
    assert found.problem is None and found.has_registration is False
    assert scan.load(found.path, tmp_path).client_id == "inlineId"


@pytest.mark.parametrize("client_id_hash", ["../../../../etc/passwd", "a/b", "", 42, None])
def test_a_client_id_hash_never_names_a_file_outside_the_cache(tmp_path, client_id_hash):
    home = tmp_path / "home"
    write_json(tmp_path / "etc" / "passwd.json", registration())  # what a traversal would reach
    write_json(sso_cache(home) / "kiro-auth-token.json", idc_token(clientIdHash=client_id_hash))
    [found] = scan.scan(home)
    assert found.problem and "clientIdHash" in found.problem
    assert found.has_registration is False


def test_a_broken_registration_file_is_a_problem(tmp_path):
    cache = sso_cache(tmp_path)
    write_json(cache / "kiro-auth-token.json", idc_token())
    (cache / f"{HASH}.json").write_text("{not json", encoding="utf-8")
    [found] = scan.scan(tmp_path)
    assert "registration" in found.problem


def test_unreadable_ide_token_file_is_a_problem_and_foreign_files_are_ignored(tmp_path):
    cache = sso_cache(tmp_path)
    (cache / "kiro-auth-token.json").write_text("{\"accessToken\": ", encoding="utf-8")
    (cache / "other.json").write_text("garbage", encoding="utf-8")
    write_json(cache / "list.json", [1, 2, 3])
    (cache / "dir.json").mkdir()
    [found] = scan.scan(tmp_path)
    assert found.path == ide(tmp_path, "kiro-auth-token.json")
    assert found.problem and found.auth_method == ""


def test_ide_token_file_that_is_not_a_kiro_token_is_a_problem(tmp_path):
    write_json(sso_cache(tmp_path) / "kiro-auth-token.json", {"hello": "world"})
    [found] = scan.scan(tmp_path)
    assert "not a Kiro token" in found.problem


def test_malformed_fields_are_a_problem_not_a_crash(tmp_path):
    cache = sso_cache(tmp_path)
    write_json(cache / "kiro-auth-token.json", social_token(expiresAt="next tuesday"))
    write_json(cache / "kiro-scopes.json", social_token(expiresAt=None, scopes=[1, 2]))
    write_json(cache / "kiro-expires-in.json", social_token(expiresAt=None, expiresIn="soon"))
    found = scan.scan(tmp_path)
    assert len(found) == 3
    assert all(f.problem for f in found)


def test_empty_home_finds_nothing(tmp_path):
    assert scan.scan(tmp_path) == []


def test_files_where_folders_are_expected_find_nothing(tmp_path):
    (tmp_path / ".aws" / "sso").mkdir(parents=True)
    (tmp_path / ".aws" / "sso" / "cache").write_text("not a folder", encoding="utf-8")
    (tmp_path / ".local" / "share").mkdir(parents=True)
    (tmp_path / ".local" / "share" / "kiro-cli").write_text("not a folder", encoding="utf-8")
    assert scan.scan(tmp_path) == []


# ----- kiro-cli ----------------------------------------------------------------------------------

def test_kiro_cli_idc_token_with_registration_and_profile(home):
    path = cli(home, "kirocli:odic:token")
    found = by_path(scan.scan(home))[path]
    assert found == scan.Found(path=path, source="kiro-cli", auth_method=IDC, provider="BuilderId",
                               region="us-east-1", expires_at=pytest.approx(STAMP + 0.123456),
                               refresh_token_hint=hint(SECRETS["cli_refresh"]), has_registration=True,
                               problem=None)
    creds = scan.load(path, home)
    assert (creds.access_token, creds.refresh_token) == (SECRETS["cli_access"], SECRETS["cli_refresh"])
    assert (creds.client_id, creds.client_secret) == ("cliClientId", SECRETS["cli_client_secret"])
    assert creds.client_secret_expires_at == calendar.timegm((2026, 7, 1, 0, 0, 0))
    assert creds.profile_arn == CLI_ARN and creds.api_region == "eu-central-1"
    assert creds.start_url == "https://view.awsapps.com/start"
    assert creds.scopes == "codewhisperer:completions codewhisperer:conversations"
    assert creds.source_path == path


def test_kiro_cli_social_token(home):
    path = cli(home, "kirocli:social:token")
    found = by_path(scan.scan(home))[path]
    assert (found.source, found.auth_method, found.has_registration, found.problem) == (
        "kiro-cli", SOCIAL, False, None)
    assert found.expires_at == STAMP
    creds = scan.load(path, home)
    assert creds.refresh_token == SECRETS["cli_social_refresh"]
    assert creds.profile_arn == CLI_ARN


def test_kiro_cli_odic_token_without_registration_is_a_problem(tmp_path):
    make_db(tmp_path / ".local/share/kiro-cli/data.sqlite3", {"kirocli:odic:token": cli_odic()})
    [found] = scan.scan(tmp_path)
    assert found.auth_method == IDC
    assert "registration" in found.problem
    with pytest.raises(BadRequest):
        scan.load(found.path, tmp_path)


def test_legacy_amazon_q_store_on_macos(tmp_path):
    folder = "Library/Application Support/amazon-q"  # a space in the path: the read-only URI must encode it
    make_db(tmp_path / folder / "data.sqlite3",
            {"codewhisperer:odic:token": cli_odic(start_url="https://corp.awsapps.com/start"),
             "codewhisperer:odic:device-registration": cli_registration(client_id="legacyClient")})
    [found] = scan.scan(tmp_path)
    assert found.path == cli(tmp_path, "codewhisperer:odic:token", folder)
    assert (found.auth_method, found.provider, found.has_registration, found.problem) == (
        IDC, "Enterprise", True, None)
    creds = scan.load(found.path, tmp_path)
    assert creds.client_id == "legacyClient"
    assert creds.profile_arn is None


def test_kiro_cli_external_idp_token(tmp_path):
    token = {"access_token": "extAccess", "refresh_token": refresh_token("ext"),
             "expires_at": "2026-04-06T19:29:16Z", "region": "us-east-1",
             "token_endpoint": "https://login.example.com/oauth2/token",
             "issuer_url": "https://login.example.com", "client_id": "extClient", "scopes": ["openid", "offline"]}
    make_db(tmp_path / ".local/share/amazon-q/data.sqlite3", {"kirocli:external-idp:token": token})
    [found] = scan.scan(tmp_path)
    assert (found.auth_method, found.problem) == (EXTERNAL_IDP, None)
    creds = scan.load(found.path, tmp_path)
    assert (creds.token_endpoint, creds.client_id, creds.scopes) == (
        "https://login.example.com/oauth2/token", "extClient", "openid offline")


def test_kiro_cli_value_that_is_not_json_is_a_problem(tmp_path):
    make_db(tmp_path / ".local/share/kiro-cli/data.sqlite3",
            {"kirocli:social:token": "{oops", "kirocli:odic:token": cli_odic(),
             "kirocli:odic:device-registration": "[]"})
    found = by_path(scan.scan(tmp_path))
    assert found[cli(tmp_path, "kirocli:social:token")].auth_method == SOCIAL
    assert "JSON" in found[cli(tmp_path, "kirocli:social:token")].problem
    assert "registration" in found[cli(tmp_path, "kirocli:odic:token")].problem


def test_database_without_an_auth_table_lists_nothing(tmp_path):
    db = tmp_path / ".local/share/kiro-cli/data.sqlite3"
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(str(db))) as conn:
        conn.execute("CREATE TABLE other (a)")
        conn.commit()
    assert scan.scan(tmp_path) == []


def test_the_database_is_left_untouched_even_when_read_only_on_disk(home):
    db = home / ".local/share/kiro-cli/data.sqlite3"
    os.chmod(db, 0o400)
    before = (db.read_bytes(), db.stat().st_mtime_ns, sorted(os.listdir(db.parent)))
    found = scan.scan(home)
    scan.load(cli(home, "kirocli:odic:token"), home)
    assert (db.read_bytes(), db.stat().st_mtime_ns, sorted(os.listdir(db.parent))) == before
    assert [f.problem for f in found if f.source == "kiro-cli"] == [None, None]


def test_the_database_connection_is_read_only(home, monkeypatch):
    """Whoever runs the test (root ignores file modes), the connection itself refuses writes."""
    probes: List[str] = []
    real_connect = sqlite3.connect

    def probing_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        try:
            conn.execute("CREATE TABLE main.probe (a)")
            probes.append("writable")
        except sqlite3.OperationalError as exc:
            probes.append(str(exc))
        return conn

    monkeypatch.setattr(sqlite3, "connect", probing_connect)
    scan.scan(home)
    assert probes and all("readonly" in p or "read-only" in p for p in probes), probes


def test_locked_database_is_a_problem_and_the_rest_is_still_scanned(home):
    db = home / ".local/share/kiro-cli/data.sqlite3"
    with closing(sqlite3.connect(str(db), isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        try:
            found = scan.scan(home, lock_timeout=0)
        finally:
            writer.execute("ROLLBACK")
    bad = [f for f in found if f.source == "kiro-cli"]
    assert [(f.path, f.auth_method) for f in bad] == [(str(db), "")]
    assert "locked" in bad[0].problem
    assert ide(home, "kiro-auth-token.json") in by_path(found)


def test_corrupt_database_is_a_problem(tmp_path):
    db = tmp_path / ".local/share/kiro-cli/data.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database at all" * 200)
    before = db.read_bytes()
    [found] = scan.scan(tmp_path)
    assert (found.path, found.source) == (str(db), "kiro-cli")
    assert found.problem
    assert db.read_bytes() == before
    with pytest.raises(BadRequest):
        scan.load(str(db), tmp_path)


# ----- load() and secrets ------------------------------------------------------------------------

def test_load_returns_the_listed_credentials(home):
    creds = scan.load(ide(home, "kiro-auth-token.json"), home)
    assert (creds.access_token, creds.refresh_token) == (SECRETS["social_access"], SECRETS["social_refresh"])
    assert creds.profile_arn == ARN
    assert creds.source_path == ide(home, "kiro-auth-token.json")


@pytest.mark.parametrize("path", [
    "/etc/passwd",
    "{cache}/../cache/kiro-auth-token.json",
    "{cache}/./kiro-auth-token.json",
    "{cache}/../../../../etc/passwd",
    "{cache}/" + HASH + ".json",
    "{cache}/aws-cli-session.json",
    "{cache}/broken.json",
    "{home}/.local/share/kiro-cli/data.sqlite3#kirocli:odic:device-registration",
    "{home}/.local/share/kiro-cli/data.sqlite3",
    "kiro-auth-token.json",
    "",
])
def test_load_refuses_anything_scan_does_not_list(home, path):
    target = path.format(cache=home / ".aws" / "sso" / "cache", home=home)
    with pytest.raises(NotFound):
        scan.load(target, home)


def test_no_secret_in_any_found(home):
    found = scan.scan(home)
    text = repr(found) + json.dumps([f.__dict__ for f in found])
    for name, secret in SECRETS.items():
        assert secret not in text, name
    assert "awsClientSecret" not in text and "regClientId" not in text


def test_listing_pairs_each_entry_with_its_credentials(home):
    entries = dict((found.path, creds) for found, creds in scan.listing(home))
    assert [f.path for f in scan.scan(home)] == list(entries)
    assert entries[ide(home, "kiro-auth-token.json")].refresh_token == SECRETS["social_refresh"]
    assert entries[ide(home, "kiro-truncated.json")] is None


def test_path_holding_finds_the_file_of_a_refresh_token(home):
    assert scan.path_holding(home, SECRETS["social_refresh"]) == ide(home, "kiro-auth-token.json")
    assert scan.path_holding(home, refresh_token("nowhere")) is None
