"""Tests for redaction: secret-looking keys, known secret values, token shapes and safe headers.

The key policy `is_secret_key` follows: a key is secret when its last word (after `_`, `-`, `.`
or a camelCase hump) names a credential: api key(s), authorization, access/refresh/id/session/
auth token, client secret, secret, secret/private key, password, cookie, bearer. A bare `key` or
`token` is not: both name harmless things (schema properties, cache keys, pagination tokens,
token counts) far more often than credentials, and a credential-shaped value under them is
still masked by the token shapes and the known secrets.
"""
from __future__ import annotations

import collections
import copy
import json
import pickle
import types

import pytest

from kiroproxy.redaction import (
    MASK,
    SAFE_HEADERS,
    TOKEN_SHAPES,
    Redactor,
    is_secret_key,
    redact,
    redact_text,
    safe_headers,
)
from tests.factories import token_like

KIRO_ACCESS = token_like("aoa", "AAAAAGexampleAccessToken0123456789")
KIRO_REFRESH = token_like("aor", "AAAAAGexampleRefreshToken0123456789")
ANTHROPIC_KEY = token_like("sk-ant-", "api03-abcdefghijklmnopqrstuvwxyz")
KIRO_API_KEY = "ksk_0123456789abcdefXYZ"


# ----- is_secret_key -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "api_key", "apiKey", "API_KEY", "x-api-key", "X-Api-Key", "x-goog-api-key", "openai_api_key", "openaiApiKey",
    "api_keys", "accessToken", "access_token", "refresh_token", "refreshToken", "idToken", "session_token",
    "authToken", "ANTHROPIC_AUTH_TOKEN", "client_secret", "clientSecret", "secret", "Authorization",
    "proxy-authorization", "password", "userPassword", "passwd", "private_key", "secret_key",
    "aws_secret_access_key", "Cookie", "set-cookie", "bearer", "api key",
])
def test_secret_looking_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "max_tokens", "maxTokens", "input_tokens", "output_tokens", "budget_tokens", "cache_read_tokens",
    "key", "keys", "cache_key", "monkey", "token", "tokens", "nextToken", "tokenizer", "name", "tool_name",
    "model", "secretary", "passwords_policy", "authorization_url", "tool_choice", "thinking",
])
def test_harmless_keys(key):
    assert not is_secret_key(key)


# ----- redact: structures ------------------------------------------------------------------------

def test_secret_keys_are_masked_at_any_depth_and_harmless_ones_kept():
    value = {
        "model": "claude", "max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-1", "api_key": "plain-value-1"},
        "tools": [{"name": "get_password", "input_schema": {"properties": {"key": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                   "extra": [{"Authorization": "Bearer abc"}]}]}],
        "usage": {"input_tokens": 3, "output_tokens": 4},
        "credentials": {"accessToken": "a-value", "refresh_token": "r-value", "clientSecret": "c-value",
                        "password": 1234, "cookie": ["a=b"]},
    }
    out = redact(value)
    assert out["metadata"] == {"user_id": "u-1", "api_key": MASK}
    assert out["messages"][0]["content"][0]["extra"] == [{"Authorization": MASK}]
    assert out["credentials"] == {"accessToken": MASK, "refresh_token": MASK, "clientSecret": MASK,
                                  "password": MASK, "cookie": MASK}
    assert out["tools"] == [{"name": "get_password", "input_schema": {"properties": {"key": {"type": "string"}}}}]
    assert (out["max_tokens"], out["thinking"], out["usage"]) == (
        1024, {"type": "enabled", "budget_tokens": 2048}, {"input_tokens": 3, "output_tokens": 4})


def test_empty_secret_values_stay_as_they_are():
    # An empty or missing value tells the reader "no key was sent", which is useful and leaks nothing.
    assert redact({"api_key": "", "access_token": None}) == {"api_key": "", "access_token": None}


def test_tuples_become_lists_and_scalars_pass_through():
    assert redact(("a", 1, None, True, 2.5)) == ["a", 1, None, True, 2.5]
    assert redact(7) == 7 and redact(None) is None


def test_the_input_is_not_mutated():
    value = {"api_key": "abc", "nested": [{"password": "p"}, f"text {KIRO_ACCESS}"], "n": 1}
    before = copy.deepcopy(value)
    out = redact(value, ["nested-secret-value"])
    assert value == before
    assert out is not value and out["nested"] is not value["nested"]


# ----- redact: known values and shapes -----------------------------------------------------------

def test_known_secrets_are_masked_inside_longer_strings():
    secret = "client-key-0123456789"
    out = redact({"content": f"my key is {secret}, keep it", "list": [secret]}, [secret])
    assert out == {"content": f"my key is {MASK}, keep it", "list": [MASK]}


def test_longest_known_secret_is_masked_first():
    short, long = "abcdefgh", "abcdefgh-and-the-rest-of-it"
    text = f"one {long} two {short} three"
    expected = f"one {MASK} two {MASK} three"
    assert redact(text, [short, long]) == expected
    assert redact(text, [long, short]) == expected


def test_short_and_empty_known_values_are_not_masked():
    # Seven characters or fewer would mask ordinary words all over a flow.
    assert redact("the key abc1234 is short", ["abc1234", ""]) == "the key abc1234 is short"
    assert redact("eight ch: abcd1234", ["abcd1234"]) == f"eight ch: {MASK}"


@pytest.mark.parametrize("token", [KIRO_ACCESS, KIRO_REFRESH, ANTHROPIC_KEY, KIRO_API_KEY])
def test_token_shapes_are_masked_without_being_known(token):
    assert redact({"note": f"here: {token}."}) == {"note": f"here: {MASK}."}
    assert redact_text(f"{token}") == MASK


@pytest.mark.parametrize("text", [
    "aoa-short", "aor1234", "sk-ant-short", "ksk_short", "a boa constrictor", "sk-proj-not-a-kiro-shape",
    "x" + token_like("aoa", "AAAAAGnotAtAWordBoundary012345"),
])
def test_text_that_only_resembles_a_token_is_kept(text):
    assert TOKEN_SHAPES.search(text) is None
    assert redact_text(text) == text


def test_redact_text_masks_every_occurrence():
    secret = "0123456789-secret"
    assert redact_text(f"{secret}/{secret}", [secret]) == f"{MASK}/{MASK}"


# ----- safe_headers ------------------------------------------------------------------------------

def test_safe_headers_keep_only_the_allow_list_lowercased():
    headers = {"User-Agent": "claude-cli/2.0", "Anthropic-Version": "2023-06-01", "Content-Type": "application/json",
               "Authorization": "Bearer x", "X-Api-Key": "k", "Cookie": "c=1", "X-Forwarded-For": "10.0.0.1",
               "Proxy-Authorization": "Basic y", "X-Goog-Api-Key": "g"}
    assert safe_headers(headers) == {"user-agent": "claude-cli/2.0", "anthropic-version": "2023-06-01",
                                     "content-type": "application/json"}


def test_the_allow_list_carries_no_credential_header():
    assert not [h for h in SAFE_HEADERS if is_secret_key(h)]


def test_a_kiro_token_with_its_signature_part_is_masked_whole():
    token = token_like("aoa", "AAAAAGhgZ1Xn2Kq8bVwYt:MGQCMFx8Yq+abc/def==")
    assert redact_text(f"token={token} end") == "token=[redacted] end"


# ----- Redactor ----------------------------------------------------------------------------------

def test_a_redactor_is_rebuilt_only_when_the_secrets_change():
    first = Redactor(["secret-one-value", "secret-two-value", "short"])
    assert set(first.secrets) == {"secret-one-value", "secret-two-value"}
    assert first.refreshed(iter(["secret-two-value", "secret-one-value", "tiny", ""])) is first
    changed = first.refreshed(["secret-one-value", "secret-three-value"])
    assert changed is not first and set(changed.secrets) == {"secret-one-value", "secret-three-value"}
    assert changed.refreshed(["secret-three-value", "secret-one-value"]) is changed


def test_redactor_orders_secrets_longest_first():
    redactor = Redactor(["abcdefgh", "abcdefgh-and-more", "abcdefgh-and"])
    assert redactor.secrets == ("abcdefgh-and-more", "abcdefgh-and", "abcdefgh")
    assert redactor.text("x abcdefgh-and-more y abcdefgh") == f"x {MASK} y {MASK}"


def test_present_finds_only_the_secrets_that_occur():
    redactor = Redactor(["first-secret-value", "second-secret-value", "third-secret-value"])
    assert set(redactor.present("has second-secret-value", "and first-secret-value")) == {
        "first-secret-value", "second-secret-value"}
    assert redactor.present("nothing here") == ()


def test_present_in_a_pickle_finds_strings_anywhere_in_the_structure():
    secret = "nested-secret-üñï-value"
    blob = pickle.dumps({"a": [{"b": f"text {secret} text"}], "c": "plain"}, protocol=pickle.HIGHEST_PROTOCOL)
    redactor = Redactor([secret, "absent-secret-value"])
    assert redactor.present_in_utf8(blob) == (secret,)


@pytest.mark.parametrize("secret", ['quote"inside-secret', "back\\slash-secret", "üñïcode-secret", "tab\tsecret-x",
                                    "plain-secret-value"])
def test_present_in_json_sees_through_escaping(secret):
    for ascii_only in (False, True):
        document = json.dumps({"k": [f"before {secret} after"]}, ensure_ascii=ascii_only).encode()
        if ascii_only and not secret.isascii():
            continue  # documents we write keep non-ASCII characters as they are
        assert Redactor([secret]).present_in_json(document) == (secret,)
    assert Redactor([secret]).present_in_json(b'{"k": "other"}') == ()


def test_redact_with_present_masks_those_and_still_masks_keys_and_shapes():
    redactor = Redactor(["known-secret-value", "other-known-value"])
    value = {"text": "known-secret-value and other-known-value", "api_key": "x", "t": f"{KIRO_ACCESS}"}
    out = redactor.redact(value, ("known-secret-value",))
    assert out == {"text": f"{MASK} and other-known-value", "api_key": MASK, "t": MASK}
    assert redactor.redact(value)["text"] == f"{MASK} and {MASK}"


@pytest.mark.parametrize("prefix", ["sk-", "sk-proj-", "sk-ant-api03-", "AIza"])
def test_api_key_shapes_are_masked(prefix):
    key = token_like(prefix, "Ab3" * 14)
    assert redact_text(f"use {key} please") == f"use {MASK} please"


def test_a_bearer_value_is_masked_and_the_word_kept():
    value = token_like("", "eyJhbGciOi" + "Q" * 20)
    assert redact_text(f"Authorization: Bearer {value}\n") == f"Authorization: Bearer {MASK}\n"
    assert redact_text("the bearer of bad news") == "the bearer of bad news"


def test_other_mappings_and_string_subclasses_are_walked_like_dicts_and_strings():
    class Text(str):
        pass

    frozen = types.MappingProxyType({"api_key": "secret-value", "nested": collections.OrderedDict(
        password="hunter2-hunter2", note=Text("my sk-" + "a" * 40))})
    assert redact(frozen) == {"api_key": MASK, "nested": {"password": MASK, "note": f"my {MASK}"}}


def test_present_never_matches_a_secret_across_two_texts():
    redactor = Redactor(["split-secret-value", "other-secret-value"])
    assert redactor.present("ends with split-sec", "ret-value starts") == ()
    assert redactor.present("a\0b", "split-secret-value") == ("split-secret-value",)
    nul = Redactor(["nul\0in-the-secret", "plain-secret-value"])
    assert nul.present("ends nul", "in-the-secret") == ()  # joined with NUL it would match
    assert set(nul.present("x nul\0in-the-secret y", "plain-secret-value")) == {"nul\0in-the-secret",
                                                                               "plain-secret-value"}
