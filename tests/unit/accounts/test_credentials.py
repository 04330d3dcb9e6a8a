"""Tests for accounts.credentials: Kiro token files (upstream reference §8), machine ids, redaction."""
from __future__ import annotations

import calendar
import hashlib
import json
import re

import pytest

from kiroproxy.accounts import credentials
from kiroproxy.accounts.credentials import EXTERNAL_IDP, IDC, SOCIAL, Credentials
from kiroproxy.errors import BadRequest
from tests.factories import refresh_token, token_file

# 2026-04-06T19:29:16Z as epoch seconds, computed without the code under test.
STAMP = calendar.timegm((2026, 4, 6, 19, 29, 16))
ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"


def social_file(**extra) -> dict:
    """The social token file exactly as the reference shows it."""
    data = {"accessToken": "aoaAccessToken", "refreshToken": refresh_token("social"),
            "expiresAt": "2026-04-06T19:29:16.090Z", "authMethod": "social", "provider": "Google",
            "profileArn": ARN}
    data.update(extra)
    return data


def idc_file(**extra) -> dict:
    """The IdC token file; its client id/secret live in the registration file."""
    data = {"accessToken": "aoaIdcAccess", "refreshToken": refresh_token("idc"),
            "expiresAt": "2026-04-06T19:29:16.090Z", "authMethod": "IdC", "provider": "BuilderId",
            "clientIdHash": "c" * 40, "region": "us-east-1"}
    data.update(extra)
    return data


def registration(**extra) -> dict:
    data = {"clientId": "regClientId", "clientSecret": "regClientSecretValue", "expiresAt": "2026-07-01T00:00:00Z"}
    data.update(extra)
    return data


# ----- token files -------------------------------------------------------------------------------

def test_social_token_file():
    creds = credentials.from_token_file(social_file(), account_id="acc1")
    assert creds.id == "acc1"
    assert creds.auth_method == SOCIAL
    assert creds.access_token == "aoaAccessToken"
    assert creds.refresh_token == refresh_token("social")
    assert creds.provider == "Google"
    assert creds.profile_arn == ARN
    assert creds.expires_at == pytest.approx(STAMP + 0.090)
    assert creds.client_id is None and creds.client_secret is None


def test_idc_token_file_merged_with_its_registration():
    creds = credentials.from_token_file(idc_file(), registration=registration())
    assert creds.auth_method == IDC
    assert (creds.client_id, creds.client_secret) == ("regClientId", "regClientSecretValue")
    assert creds.client_id_hash == "c" * 40
    assert creds.region == "us-east-1"
    assert creds.provider == "BuilderId"
    # The token's expiry is the token file's; the registration's expiresAt is the client secret's.
    assert creds.expires_at == pytest.approx(STAMP + 0.090)
    assert creds.client_secret_expires_at == calendar.timegm((2026, 7, 1, 0, 0, 0))


def test_registration_expiry_never_becomes_the_token_expiry():
    data = idc_file()
    del data["expiresAt"]
    creds = credentials.from_token_file(data, registration=registration())
    assert creds.expires_at == 0.0


def test_token_file_fields_win_over_registration_fields():
    creds = credentials.from_token_file(idc_file(clientId="fileClient", clientSecret="fileSecret"),
                                        registration=registration())
    assert (creds.client_id, creds.client_secret) == ("fileClient", "fileSecret")


def test_idc_region_comes_from_the_token_file():
    assert credentials.from_token_file(idc_file(region="eu-central-1"), registration=registration()).region \
        == "eu-central-1"


def test_snake_case_kiro_cli_tokens():
    data = {"access_token": "cliAccess", "refresh_token": refresh_token("cli"),
            "expires_at": "2026-04-06T19:29:16.123456789Z", "region": "us-east-1",
            "client_id": "cliClient", "client_secret": "cliSecret", "start_url": "https://view.awsapps.com/start",
            "scopes": ["codewhisperer:completions", "codewhisperer:conversations"], "authMethod": "IdC"}
    creds = credentials.from_token_file(data)
    assert creds.access_token == "cliAccess"
    assert (creds.client_id, creds.client_secret) == ("cliClient", "cliSecret")
    assert creds.start_url == "https://view.awsapps.com/start"
    assert creds.scopes == "codewhisperer:completions codewhisperer:conversations"
    assert creds.expires_at == pytest.approx(STAMP + 0.123456, abs=1e-5)


def test_external_idp_token_file():
    data = social_file(authMethod="external_idp", tokenEndpoint="https://login.example.com/oauth2/token",
                       clientId="extClient", scopes="openid offline_access", issuerUrl="https://login.example.com")
    creds = credentials.from_token_file(data)
    assert creds.auth_method == EXTERNAL_IDP
    assert creds.token_endpoint == "https://login.example.com/oauth2/token"
    assert creds.client_id == "extClient" and creds.scopes == "openid offline_access"


def test_factory_token_files_parse():
    assert credentials.from_token_file(token_file("a")).auth_method == SOCIAL
    assert credentials.from_token_file(token_file("b", auth_method="IdC")).auth_method == IDC


# ----- expiresAt ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("2026-04-06T19:29:16Z", STAMP),
    ("2026-04-06T19:29:16.090Z", STAMP + 0.09),
    ("2026-04-06T21:29:16.090+02:00", STAMP + 0.09),
    ("2026-04-06T14:29:16-05:00", STAMP),
    ("2026-04-06T19:29:16.123456789Z", STAMP + 0.123456),
    ("2026-04-06T19:29:16.5+00:00", STAMP + 0.5),
    ("2026-04-06T19:29:16", STAMP),  # no zone: UTC
    (STAMP * 1000 + 90, STAMP + 0.09),  # epoch milliseconds
    (STAMP, STAMP),  # epoch seconds
    (float(STAMP), STAMP),
    (None, 0.0),
    ("", 0.0),
])
def test_parse_time(value, expected):
    assert credentials.parse_time(value) == pytest.approx(expected, abs=1e-5)


def test_expires_at_epoch_millis_in_a_token_file():
    creds = credentials.from_token_file(social_file(expiresAt=STAMP * 1000))
    assert creds.expires_at == STAMP


def test_bad_expires_at_is_a_bad_request():
    with pytest.raises(BadRequest, match="expiresAt"):
        credentials.from_token_file(social_file(expiresAt="next tuesday"))


def test_expires_in_without_expires_at_counts_from_now_with_a_safety_margin():
    data = social_file(expiresIn=3600)
    del data["expiresAt"]
    assert credentials.from_token_file(data, now=10_000.0).expires_at == 10_000.0 + 3600 - 60


def test_no_expiry_at_all_is_unknown():
    data = social_file()
    del data["expiresAt"]
    creds = credentials.from_token_file(data)
    assert creds.expires_at == 0.0
    assert creds.expires_within(10**9) is False


def test_expires_within():
    creds = Credentials(id="x", access_token="a", refresh_token="r", expires_at=1000.0)
    assert creds.expires_within(100, now=950.0) is True
    assert creds.expires_within(10, now=950.0) is False
    assert creds.expires_within(0, now=1000.0) is True
    assert creds.expires_within(0, now=999.0) is False


# ----- authMethod --------------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    ({"authMethod": "social"}, SOCIAL),
    ({"authMethod": "Social"}, SOCIAL),
    ({"authMethod": "IdC"}, IDC),
    ({"authMethod": "IDC"}, IDC),
    ({"authMethod": "idc"}, IDC),
    ({"authMethod": "external_idp"}, EXTERNAL_IDP),
    ({"authMethod": "External_IdP"}, EXTERNAL_IDP),
    ({"clientId": "c", "clientSecret": "s"}, IDC),
    ({"clientId": "c"}, SOCIAL),
    ({}, SOCIAL),
    ({"authMethod": "social", "clientId": "c", "clientSecret": "s"}, SOCIAL),
])
def test_auth_method_inference(data, expected):
    assert credentials.auth_method_of(data) == expected


def test_auth_method_inferred_from_the_registration():
    data = idc_file()
    del data["authMethod"]
    assert credentials.from_token_file(data, registration=registration()).auth_method == IDC


# ----- rejections --------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "aor" + "x" * 96,          # 99 characters
    "aor" + "x" * 120 + "...",  # long but cut by a UI
    "aorShort...",
])
def test_truncated_refresh_tokens_are_rejected(token):
    with pytest.raises(BadRequest) as caught:
        credentials.from_token_file(social_file(refreshToken=token))
    assert caught.value.param == "refreshToken"
    assert "truncated" in caught.value.message


def test_refresh_token_of_exactly_100_characters_is_accepted():
    token = "aor" + "x" * 97
    assert credentials.from_token_file(social_file(refreshToken=token)).refresh_token == token


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_refresh_token_is_rejected(value):
    with pytest.raises(BadRequest) as caught:
        credentials.from_token_file(social_file(refreshToken=value))
    assert caught.value.param == "refreshToken"


@pytest.mark.parametrize("reg", [None, {"clientId": "onlyId"}, {"clientSecret": "onlySecret"}])
def test_idc_without_client_id_and_secret_is_rejected(reg):
    with pytest.raises(BadRequest) as caught:
        credentials.from_token_file(idc_file(), registration=reg)
    assert caught.value.param == "clientId"


@pytest.mark.parametrize("data", [[], "token", 42, None])
def test_non_object_is_rejected(data):
    with pytest.raises(BadRequest):
        credentials.from_token_file(data)


# ----- machine id --------------------------------------------------------------------------------

def test_machine_id_is_64_lowercase_hex():
    machine = credentials.from_token_file(social_file()).machine_id
    assert re.fullmatch(r"[0-9a-f]{64}", machine)


def test_machine_id_follows_the_reference_recipe_for_social_accounts():
    token = refresh_token("recipe")
    expected = hashlib.sha256(("KotlinNativeAPI/" + token).encode()).hexdigest()
    assert credentials.from_token_file(social_file(refreshToken=token)).machine_id == expected


def test_machine_id_is_stable_per_seed():
    first = credentials.from_token_file(social_file(), account_id="a")
    again = credentials.from_token_file(social_file(accessToken="otherAccess"), account_id="b")
    assert first.machine_id == again.machine_id
    assert credentials.machine_id_for("seed") == credentials.machine_id_for("seed")


def test_machine_id_differs_across_accounts():
    ids = {credentials.from_token_file(social_file(refreshToken=refresh_token(f"acct{n}"))).machine_id
           for n in range(20)}
    ids |= {credentials.from_token_file(idc_file(), registration=registration(clientId=f"client{n}")).machine_id
            for n in range(20)}
    assert len(ids) == 40


def test_machine_id_survives_token_rotation():
    creds = credentials.from_token_file(social_file())
    rotated = creds.with_tokens("newAccess", refresh_token("rotated"), 99.0)
    assert rotated.machine_id == creds.machine_id


def test_explicit_machine_id_is_kept():
    assert credentials.from_token_file(social_file(machineId="f" * 64)).machine_id == "f" * 64


# ----- redaction ---------------------------------------------------------------------------------

def test_public_has_no_secrets():
    creds = credentials.from_token_file(idc_file(), registration=registration())
    public = creds.public()
    for key in ("access_token", "refresh_token", "client_secret"):
        assert key not in public
    dumped = json.dumps(public)
    for secret in (creds.access_token, creds.refresh_token, creds.client_secret):
        assert secret not in dumped
    assert public["id"] == creds.id and public["client_id"] == "regClientId"


def test_mask_reveals_nothing_usable():
    secret = "aorSECRETVALUE" + "z" * 120
    masked = credentials.mask(secret)
    assert masked != secret
    assert len(masked) < 24
    assert secret[:4] not in masked  # at most a 3-character hint
    assert "SECRET" not in masked and "zzzz" not in masked


@pytest.mark.parametrize("value", [None, ""])
def test_mask_of_nothing_is_nothing(value):
    assert credentials.mask(value) == value


# ----- api region, records -----------------------------------------------------------------------

@pytest.mark.parametrize("arn, region", [
    ("arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF", "eu-central-1"),
    ("arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK", "us-east-1"),
    (None, "us-east-1"),
    ("", "us-east-1"),
    ("not-an-arn", "us-east-1"),
    ("arn:aws:codewhisperer::123456789012:profile/X", "us-east-1"),
])
def test_api_region_from_the_profile_arn(arn, region):
    assert Credentials(id="x", access_token="a", refresh_token="r", profile_arn=arn).api_region == region


def test_api_region_ignores_the_oidc_region():
    creds = Credentials(id="x", access_token="a", refresh_token="r", region="eu-west-1",
                        profile_arn="arn:aws:codewhisperer:eu-central-1:1:profile/P")
    assert creds.api_region == "eu-central-1"


def test_record_round_trip_ignores_unknown_keys():
    creds = credentials.from_token_file(idc_file(), registration=registration(), account_id="rt")
    record = creds.to_record()
    record["status"] = "active"  # pool state stored alongside
    assert Credentials.from_record(record) == creds


def test_with_tokens_keeps_the_old_refresh_token_and_profile_when_none_given():
    creds = credentials.from_token_file(social_file())
    updated = creds.with_tokens("newAccess", None, 500.0)
    assert (updated.access_token, updated.refresh_token, updated.expires_at, updated.profile_arn) == (
        "newAccess", creds.refresh_token, 500.0, ARN)
    other = creds.with_tokens("x", refresh_token("new"), 1.0, "arn:aws:codewhisperer:eu-central-1:1:profile/Q")
    assert other.refresh_token == refresh_token("new")
    assert other.profile_arn.endswith("profile/Q")


def test_name_falls_back_to_email_then_provider():
    assert credentials.from_token_file(social_file(), name="Mine").name == "Mine"
    assert credentials.from_token_file(social_file(email="u@example.com")).name == "u@example.com"
    assert credentials.from_token_file(social_file()).name == "Google"


def test_account_ids_are_generated_and_distinct():
    first, second = (credentials.from_token_file(social_file()) for _ in range(2))
    assert first.id and second.id and first.id != second.id


# ----- implausible values ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, False, float("inf"), float("nan"), -5, 1e300, 10**400, [1], {"a": 1},
                                   "3000-01-01T00:00:00Z"])
def test_parse_time_refuses_what_is_not_a_plausible_time(value):
    with pytest.raises(BadRequest, match="expiresAt"):
        credentials.parse_time(value)


@pytest.mark.parametrize("field, value", [
    ("expiresIn", float("inf")), ("expiresIn", "1e400"), ("expiresIn", True), ("expiresIn", -60),
    ("expiresIn", 20 * 366 * 86400), ("expiresIn", 10**400), ("expiresIn", [3600]),
    ("expiresAt", True), ("expiresAt", float("inf")),
])
def test_token_files_with_absurd_expiry_are_refused(field, value):
    data = social_file(**{field: value})
    if field == "expiresIn":
        del data["expiresAt"]
    with pytest.raises(BadRequest, match=field):
        credentials.from_token_file(data)


def test_expires_in_is_checked_even_next_to_expires_at():
    with pytest.raises(BadRequest, match="expiresIn"):
        credentials.from_token_file(social_file(expiresIn=float("inf")))


# ----- proxy URLs --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["http://127.0.0.1:3128", "https://proxy.example.com", "socks5://h:1080",
                                   "socks5h://u:p@h:1080", "http://user:pw@host:8080/", " http://h:1 "])
def test_proxy_urls_that_work(value):
    assert credentials.proxy_url_of(value) == value.strip()


@pytest.mark.parametrize("value", ["not a url", "ftp://h:21", "http://", "http://h:99999", "http://h:port",
                                   "http://h/path", "http://h?x=1", "http://h\n:1", 5, ["http://h"], True])
def test_proxy_urls_that_do_not(value):
    with pytest.raises(BadRequest, match="proxy URL"):
        credentials.proxy_url_of(value, param="proxy_url")
    if isinstance(value, str):
        with pytest.raises(BadRequest, match="proxyUrl"):
            credentials.from_token_file(social_file(proxyUrl=value))


@pytest.mark.parametrize("value", [None, ""])
def test_no_proxy_url_is_none(value):
    assert credentials.proxy_url_of(value) is None


@pytest.mark.parametrize("url, masked", [
    ("http://user:s3cret@host:3128", "http://user:***@host:3128"),
    ("socks5://:s3cret@h:1", "socks5://:***@h:1"),
    ("http://t0kenonly@host", "http://***@host"),
    ("http://host:3128", "http://host:3128"),
    (None, None),
])
def test_proxy_credentials_are_masked(url, masked):
    assert credentials.mask_proxy_url(url) == masked


def test_public_masks_the_proxy_password():
    creds = credentials.from_token_file(social_file(proxyUrl="http://me:s3cret@h:1"))
    assert creds.proxy_url == "http://me:s3cret@h:1"
    assert creds.public()["proxy_url"] == "http://me:***@h:1" and "s3cret" not in json.dumps(creds.public())


# ----- identity and merging ----------------------------------------------------------------------

def parsed(**extra) -> Credentials:
    return credentials.from_token_file(social_file(**extra))


@pytest.mark.parametrize("other, differs", [
    ({"refreshToken": refresh_token("other"), "provider": "Github"}, "provider"),
    ({"refreshToken": refresh_token("other"), "profileArn": "arn:aws:codewhisperer:eu-central-1:1:profile/X"},
     "profile ARN"),
    ({"refreshToken": refresh_token("other"), "authMethod": "external_idp"}, "sign-in method"),
])
def test_identity_conflicts(other, differs):
    conflict = credentials.identity_conflict(parsed(), parsed(**other))
    assert conflict is not None and differs in conflict


@pytest.mark.parametrize("other", [
    {"accessToken": "newer"},                                     # same refresh token: the same sign-in
    {"provider": "Github"},                                       # ...whatever else the file says
    {"refreshToken": refresh_token("rotated")},                   # nothing tells them apart
    {"refreshToken": refresh_token("rotated"), "provider": "google"},
    {"refreshToken": refresh_token("rotated"), "provider": "", "profileArn": None},
])
def test_no_identity_conflict(other):
    assert credentials.identity_conflict(parsed(), parsed(**other)) is None


def test_identity_conflict_on_the_idc_start_url():
    def idc(url: str, tag: str) -> Credentials:
        return credentials.from_token_file(idc_file(startUrl=url, refreshToken=refresh_token(tag)),
                                           registration=registration())
    assert credentials.identity_conflict(idc("https://a.awsapps.com/start", "1"),
                                         idc("https://b.awsapps.com/start", "2"))
    assert credentials.identity_conflict(idc("https://a.awsapps.com/start", "1"),
                                         idc("https://a.awsapps.com/start/#", "2")) is None


def stored(**kw) -> Credentials:
    base = dict(id="keep-id", access_token="old-access", refresh_token=refresh_token("old"), expires_at=5000.0,
                name="primary", provider="Google", proxy_url="http://p:1", source_path="/home/u/token.json",
                machine_id="m" * 64, created_at=100.0, profile_arn=ARN)
    base.update(kw)
    return Credentials(**base)


def test_merge_takes_new_tokens_and_keeps_what_the_user_set():
    new = Credentials(id="new-id", access_token="new-access", refresh_token=refresh_token("new"),
                      expires_at=9000.0, name="Google", provider="Google", machine_id="n" * 64, created_at=900.0,
                      region="eu-west-1")
    merged = credentials.merge(stored(), new)
    assert (merged.access_token, merged.refresh_token, merged.expires_at) == (
        "new-access", refresh_token("new"), 9000.0)
    assert (merged.id, merged.machine_id, merged.created_at) == ("keep-id", "m" * 64, 100.0)
    assert (merged.name, merged.proxy_url, merged.source_path) == ("primary", "http://p:1", "/home/u/token.json")
    assert merged.region == "eu-west-1" and merged.profile_arn == ARN  # new values win, missing ones stay


def test_merge_takes_user_fields_that_are_named_or_missing():
    new = Credentials(id="n", access_token="a", refresh_token=refresh_token("new"), name="renamed",
                      source_path="/elsewhere.json")
    merged = credentials.merge(stored(), new, explicit={"name", "source_path"})
    assert (merged.name, merged.source_path, merged.proxy_url) == ("renamed", "/elsewhere.json", "http://p:1")
    assert credentials.merge(stored(name=""), new).name == "renamed"


def test_merge_keeps_a_newer_access_token_of_the_same_refresh_token():
    older = Credentials(id="n", access_token="older-access", refresh_token=refresh_token("old"), expires_at=10.0)
    merged = credentials.merge(stored(), older)
    assert (merged.access_token, merged.expires_at) == ("old-access", 5000.0)


def test_explicit_fields_of_a_token():
    assert credentials.explicit_fields(social_file()) == frozenset()
    assert credentials.explicit_fields(social_file(name="x", proxyUrl="http://h:1")) == {"name", "proxy_url"}
    assert credentials.explicit_fields(social_file(name=" ", proxy_url=None)) == frozenset()


@pytest.mark.parametrize("value, safe", [("a1b2c3d4e5f6", True), ("x_y-Z", True), ("a/b", False),
                                         ("../../x", False), ("", False), (None, False), ("x" * 65, False)])
def test_safe_ids(value, safe):
    assert credentials.is_safe_id(value) is safe
