"""Tests for accounts.transfer: export masking, document validation, the import plan and apply()."""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Dict, List

import pytest

from kiroproxy.accounts import transfer
from kiroproxy.accounts.credentials import IDC, Credentials, machine_id_for, mask
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.errors import BadRequest
from tests.factories import refresh_token

T0 = 1_700_000_000.0
SETTINGS = {"port": 9000, "admin_key": "admin-key-0123456789", "api_keys": ["client-key-0123456789", "second-key-x"],
            "data_dir": "/somewhere/private", "cooldown_seconds": 30.0}


def creds(tag: str, **kw: Any) -> Credentials:
    """An account whose secrets carry its tag, so leaks are easy to spot."""
    base: Dict[str, Any] = dict(id=tag, access_token=f"access-{tag}-SECRET",
                                refresh_token=refresh_token(f"{tag}SECRET"), name=tag.upper(), expires_at=T0 + 3600,
                                created_at=T0, machine_id=f"{tag}-machine")
    if kw.get("auth_method") == IDC:
        base.update(client_id=f"client-{tag}", client_secret=f"client-secret-{tag}-SECRET")
    base.update(kw)
    return Credentials(**base)


def pool_of(*accounts: Credentials) -> AccountPool:
    pool = AccountPool(clock=lambda: T0)
    for account in accounts:
        pool.add(account)
    return pool


def document(*accounts: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    return {"kiroproxy_export": 1, "accounts": list(accounts), **extra}


def account_doc(tag: str, **kw: Any) -> Dict[str, Any]:
    """An account as a full export (with secrets) writes it."""
    record = creds(tag, **{k: v for k, v in kw.items() if k in ("auth_method",)}).to_record()
    record.pop("source_path")
    record["enabled"] = True
    record.update(kw)
    return record


def planned(doc: Dict[str, Any], pool: AccountPool, settings_file: Dict[str, Any] = None) -> tuple:
    return transfer.plan(transfer.parse_document(doc), pool, settings_file or {})


def snapshot(pool: AccountPool) -> List[tuple]:
    return [(pool.creds(i), pool.summary(i)["enabled"]) for i in pool.ids()]


# ----- export ------------------------------------------------------------------------------------

def test_export_masks_every_secret_by_default():
    pool = pool_of(creds("a", source_path="/home/me/.aws/sso/cache/kiro-auth-token.json"), creds("b", auth_method=IDC))
    pool.set_enabled("b", False)
    exported = transfer.export(pool, SETTINGS, include_secrets=False)
    text = json.dumps(exported)
    for secret in ("SECRET", SETTINGS["admin_key"], *SETTINGS["api_keys"], "/home/me", "/somewhere/private"):
        assert secret not in text
    a, b = exported["accounts"]
    assert a["access_token"] == mask("access-a-SECRET") and a["refresh_token"] == mask(refresh_token("aSECRET"))
    assert b["client_secret"] == mask("client-secret-b-SECRET") and b["client_id"] == "client-b"
    assert (a["enabled"], b["enabled"]) == (True, False)
    assert "source_path" not in a and a["machine_id"] == "a-machine" and a["name"] == "A"
    assert exported["settings"] == {"port": 9000, "admin_key": mask(SETTINGS["admin_key"]),
                                    "api_keys": [mask(k) for k in SETTINGS["api_keys"]], "cooldown_seconds": 30.0}
    assert exported["kiroproxy_export"] == 1 and exported["secrets_included"] is False


def test_export_with_secrets_when_asked():
    pool = pool_of(creds("a"), creds("b", auth_method=IDC))
    exported = transfer.export(pool, SETTINGS, include_secrets=True)
    a, b = exported["accounts"]
    assert (a["access_token"], a["refresh_token"]) == ("access-a-SECRET", refresh_token("aSECRET"))
    assert b["client_secret"] == "client-secret-b-SECRET"
    assert exported["settings"]["admin_key"] == SETTINGS["admin_key"]
    assert exported["settings"]["api_keys"] == SETTINGS["api_keys"]
    assert "data_dir" not in exported["settings"] and exported["secrets_included"] is True


def test_export_leaves_empty_secrets_and_the_settings_file_alone():
    settings = {"admin_key": None, "api_keys": []}
    before = copy.deepcopy(settings)
    exported = transfer.export(pool_of(creds("a", access_token="")), settings, include_secrets=False)
    assert exported["settings"] == {"admin_key": None, "api_keys": []} and settings == before
    assert exported["accounts"][0]["access_token"] == ""


def test_both_exports_read_back():
    pool = pool_of(creds("a"), creds("b", auth_method=IDC))
    for include in (False, True):
        doc = transfer.parse_document(json.loads(json.dumps(transfer.export(pool, SETTINGS, include_secrets=include))))
        assert [a.id for a in doc.accounts] == ["a", "b"]


# ----- parse_document ----------------------------------------------------------------------------

@pytest.mark.parametrize("data", [None, [], "text", 1])
def test_a_document_must_be_an_object(data):
    with pytest.raises(BadRequest) as raised:
        transfer.parse_document(data)
    assert "JSON object" in raised.value.message


def test_every_shape_problem_is_listed():
    data = {"accounts": [{"expires_at": "soon"}, {"enabled": "perhaps"}], "settings": "x"}
    with pytest.raises(BadRequest) as raised:
        transfer.parse_document(data)
    message = raised.value.message
    for where in ("kiroproxy_export", "accounts.0.expires_at", "accounts.1.enabled", "settings"):
        assert where in message


def test_every_account_problem_is_listed():
    data = document({"auth_method": "martian", "refresh_token": refresh_token("a")},
                    {"refresh_token": "aor-too-short"},
                    {"refresh_token": refresh_token("c") + "..."},
                    {"refresh_token": mask(refresh_token("d"))})  # masked is not truncated
    with pytest.raises(BadRequest) as raised:
        transfer.parse_document(data)
    message = raised.value.message
    assert "accounts.0.auth_method" in message and "accounts.1.refresh_token" in message
    assert "accounts.2.refresh_token" in message and "accounts.3" not in message


def test_an_unknown_format_is_refused():
    with pytest.raises(BadRequest) as raised:
        transfer.parse_document({"kiroproxy_export": 2})
    assert "format 2" in raised.value.message


# ----- plan: matching and merging ----------------------------------------------------------------

def test_matched_by_id():
    pool = pool_of(creds("a"))
    changes, result = planned(document(account_doc("a", refresh_token=refresh_token("other"), machine_id="x")),
                              pool)
    assert result.updated == [{"id": "a", "name": "A"}] and result.added == [] and result.skipped == []
    ((action, merged, enabled),) = changes
    assert action == "update" and merged.id == "a" and enabled is True
    assert merged.refresh_token == refresh_token("other") and merged.machine_id == "a-machine"


def test_matched_by_machine_id():
    pool = pool_of(creds("a"))
    changes, result = planned(document(account_doc("zz", id="elsewhere", machine_id="a-machine", name="Moved")),
                              pool)
    assert result.updated == [{"id": "a", "name": "Moved"}]
    assert changes[0][1].id == "a" and changes[0][1].name == "Moved"


def test_matched_by_refresh_token():
    pool = pool_of(creds("a"))
    doc = account_doc("a", id=None, machine_id=None, name="")
    changes, result = planned(document(doc), pool)
    assert [u["id"] for u in result.updated] == ["a"] and changes[0][1].id == "a"


def test_masked_secrets_keep_the_current_tokens():
    pool = pool_of(creds("a"), creds("b", auth_method=IDC))
    masked = transfer.export(pool, {}, include_secrets=False)
    masked["accounts"][0]["name"] = "renamed"
    changes, result = planned(masked, pool)
    assert [u["id"] for u in result.updated] == ["a", "b"]
    a, b = (merged for _, merged, _ in changes)
    assert (a.access_token, a.refresh_token, a.expires_at, a.name) == (
        "access-a-SECRET", refresh_token("aSECRET"), T0 + 3600, "renamed")
    assert b.client_secret == "client-secret-b-SECRET"


def test_a_later_access_token_in_the_document_wins():
    pool = pool_of(creds("a"))
    changes, _ = planned(document(account_doc("a", access_token="access-newer", expires_at=T0 + 7200)), pool)
    assert (changes[0][1].access_token, changes[0][1].expires_at) == ("access-newer", T0 + 7200)


@pytest.mark.parametrize("expires_at", [T0 + 3600, T0 + 60])
def test_an_access_token_that_is_not_later_is_ignored(expires_at):
    pool = pool_of(creds("a"))
    changes, _ = planned(document(account_doc("a", access_token="access-older", expires_at=expires_at)), pool)
    assert (changes[0][1].access_token, changes[0][1].expires_at) == ("access-a-SECRET", T0 + 3600)


def test_a_masked_access_token_does_not_bring_its_expiry():
    # The document's expiry belongs to the document's token; ours keeps its own.
    pool = pool_of(creds("a"))
    doc = account_doc("a", access_token=mask("access-from-elsewhere"), expires_at=T0 + 9999)
    changes, _ = planned(document(doc), pool)
    assert (changes[0][1].access_token, changes[0][1].expires_at) == ("access-a-SECRET", T0 + 3600)


# ----- plan: new and skipped accounts ------------------------------------------------------------

def test_a_new_account_is_added_with_its_identity():
    pool = pool_of(creds("a"))
    doc = account_doc("n", id=None, machine_id=None, created_at=None, enabled=False)
    changes, result = planned(document(doc), pool)
    ((action, added, enabled),) = changes
    assert action == "add" and enabled is False
    assert result.added == [{"id": added.id, "name": "N"}] and added.id not in ("", "a")
    assert added.machine_id == machine_id_for(refresh_token("nSECRET"))
    assert added.refresh_token == refresh_token("nSECRET") and added.created_at > 0


def test_a_new_account_keeps_the_id_and_machine_id_of_the_document():
    changes, _ = planned(document(account_doc("n")), pool_of())
    assert (changes[0][1].id, changes[0][1].machine_id) == ("n", "n-machine")


@pytest.mark.parametrize("token", [None, "", mask(refresh_token("x"))])
def test_unmatched_account_without_a_refresh_token_is_skipped(token):
    changes, result = planned(document(account_doc("x", id="x", machine_id="m", refresh_token=token, name="Lost")),
                              pool_of(creds("a")))
    assert changes == [] and result.added == [] and result.updated == []
    assert result.skipped[0]["name"] == "Lost" and "without secrets" in result.skipped[0]["reason"]


@pytest.mark.parametrize("secret", [None, mask("client-secret-i-SECRET")])
def test_idc_account_without_its_client_secret_is_skipped(secret):
    doc = account_doc("i", auth_method=IDC, client_secret=secret)
    changes, result = planned(document(doc), pool_of())
    assert changes == [] and "client secret" in result.skipped[0]["reason"]


def test_skipped_account_is_labelled_by_id_or_position_without_a_name():
    _, result = planned(document(account_doc("x", name="", refresh_token=None),
                                 account_doc("y", name="", id=None, refresh_token=None)), pool_of())
    assert [s["name"] for s in result.skipped] == ["x", "accounts.1"]


# ----- plan: settings ----------------------------------------------------------------------------

def test_settings_are_merged_into_the_settings_file():
    doc = document(settings={"cooldown_seconds": 42, "admin_key": mask("new-admin-key-0123"), "data_dir": "/x",
                             "api_keys": [mask("k1-0123456789")], "model_aliases": {"fast": "claude-haiku-4.5"}})
    _, result = planned(doc, pool_of(), {"port": 9000, "admin_key": "keep-this-admin-key"})
    assert result.settings == {"port": 9000, "admin_key": "keep-this-admin-key", "cooldown_seconds": 42,
                               "model_aliases": {"fast": "claude-haiku-4.5"}}
    summary = result.summary()
    assert summary["settings_changed"] == ["admin_key", "cooldown_seconds", "model_aliases", "port"]
    assert summary["restart_required"] is True


def test_no_settings_means_nothing_to_write():
    _, result = planned(document(settings={"data_dir": "/x"}), pool_of())
    assert result.settings is None and result.summary()["restart_required"] is False


@pytest.mark.parametrize("settings, fragment", [
    ({"no_such_setting": 1}, "no_such_setting"),
    ({"port": "high"}, "port"),
    ({"port": 70000}, "port"),
    ({"api_keys": {"a": 1}}, "api_keys"),
])
def test_bad_settings_are_refused(settings, fragment):
    with pytest.raises(BadRequest) as raised:
        planned(document(settings=settings), pool_of())
    assert fragment in raised.value.message


# ----- apply -------------------------------------------------------------------------------------

def test_plan_changes_nothing_and_apply_does_it_all():
    pool = pool_of(creds("a"))
    doc = document(account_doc("a", name="Updated", enabled=False), account_doc("n"))
    before = snapshot(pool)
    changes, _ = planned(doc, pool)
    assert snapshot(pool) == before
    transfer.apply(changes, pool)
    assert pool.ids() == ["a", "n"]
    assert pool.creds("a").name == "Updated" and pool.summary("a")["enabled"] is False
    assert pool.creds("n").refresh_token == refresh_token("nSECRET") and pool.summary("n")["enabled"] is True


@pytest.mark.parametrize("doc", [
    document(account_doc("n"), settings={"port": "high"}),
    document(account_doc("n"), {"auth_method": "martian", "refresh_token": refresh_token("m")}),
    document(account_doc("n"), {"refresh_token": "short"}),
])
def test_a_bad_document_never_reaches_apply(doc):
    pool = pool_of(creds("a"))
    before = snapshot(pool)
    reached: List[Any] = []
    with pytest.raises(BadRequest):
        changes, _ = planned(doc, pool)
        reached.append(changes)
        transfer.apply(changes, pool)
    assert reached == [] and snapshot(pool) == before


# ----- duplicates, ids, all or nothing ------------------------------------------------------------

def test_an_account_listed_twice_is_taken_once_and_the_rest_still_comes():
    token = refresh_token("dupSECRET")
    doc = document(account_doc("x1", refresh_token=token), account_doc("x2", refresh_token=token),
                   account_doc("x3"))
    changes, result = planned(doc, pool_of())
    assert [a["id"] for a in result.added] == ["x1", "x3"]
    assert result.skipped == [{"name": "X2", "reason": "the same account as accounts.0 of this document"}]
    pool = pool_of()
    transfer.apply(changes, pool)
    assert pool.ids() == ["x1", "x3"]


def test_two_entries_matching_one_account_here_update_it_once():
    pool = pool_of(creds("a"))
    doc = document(account_doc("a", name="by id"), account_doc("zz", id="elsewhere", machine_id="a-machine"))
    changes, result = planned(doc, pool)
    assert [u["name"] for u in result.updated] == ["by id"] and len(changes) == 1
    assert "accounts.0" in result.skipped[0]["reason"]


def test_the_id_match_wins_over_a_machine_id_match():
    pool = pool_of(creds("a"), creds("b", machine_id="a-machine"))
    _, result = planned(document(account_doc("b", machine_id="a-machine", name="B2")), pool)
    assert result.updated == [{"id": "b", "name": "B2"}]


def test_apply_sets_enabled_on_the_account_the_pool_stored():
    # The pool can store a change under another id than the one planned (it matched the refresh
    # token): the enabled flag must follow the stored account, not the planned id.
    pool = pool_of(creds("a"))
    same = creds("planned-id", refresh_token=refresh_token("aSECRET"))
    transfer.apply([transfer.Change(transfer.ADD, same, False)], pool)
    assert pool.ids() == ["a"] and pool.summary("a")["enabled"] is False


@pytest.mark.parametrize("unsafe", ["a/b", "../../x", "with space", "x" * 65])
def test_an_unusable_id_is_replaced(unsafe):
    changes, result = planned(document(account_doc("n", id=unsafe)), pool_of())
    new_id = changes[0].creds.id
    assert new_id != unsafe and re.fullmatch(r"[A-Za-z0-9_-]+", new_id)
    assert result.added[0]["id"] == new_id and unsafe in result.added[0]["note"]


class FailingDB:
    """A JsonDB stand-in whose upserts start failing after `good` of them (a full disk)."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.records: Dict[str, Any] = {}

    def all(self) -> List[Dict[str, Any]]:
        return list(self.records.values())

    def upsert(self, record: Dict[str, Any]) -> None:
        if self.good <= 0:
            raise OSError(28, "No space left on device")
        self.good -= 1
        self.records[record["id"]] = record

    def remove(self, account_id: str) -> None:
        self.records.pop(account_id, None)


def failing_pool(good_writes: int) -> tuple:
    db = FailingDB(100)
    pool = AccountPool(db, clock=lambda: T0)
    pool.add(creds("a"))
    db.good = good_writes
    return pool, db


@pytest.mark.parametrize("good_writes", [0, 1, 2])
def test_a_failing_write_undoes_the_whole_import(good_writes):
    pool, _ = failing_pool(good_writes)
    before = snapshot(pool)
    doc = document(account_doc("a", name="Updated", access_token="access-newer", expires_at=T0 + 7200),
                   account_doc("n"), account_doc("m"))
    changes, result = planned(doc, pool, {"port": 9000})
    written: List[Any] = []
    with pytest.raises(OSError):
        transfer.apply(changes, pool, result.settings, written.append)
    assert snapshot(pool) == before and written == []


def test_a_failing_settings_write_undoes_the_accounts():
    pool = pool_of(creds("a"))
    before = snapshot(pool)
    changes, result = planned(document(account_doc("a", name="Updated", enabled=False), account_doc("n"),
                                       settings={"cooldown_seconds": 5}), pool)

    def full_disk(settings: Dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        transfer.apply(changes, pool, result.settings, full_disk)
    assert snapshot(pool) == before


def test_apply_writes_the_settings_after_the_accounts():
    pool = pool_of()
    changes, result = planned(document(account_doc("n"), settings={"cooldown_seconds": 5}), pool)
    written: List[Any] = []
    transfer.apply(changes, pool, result.settings, lambda settings: written.append((settings, pool.ids())))
    assert written == [({"cooldown_seconds": 5}, ["n"])]


# ----- values are checked like the account API checks them ---------------------------------------

@pytest.mark.parametrize("field, value, fragment", [
    ("enabled", "false", "enabled"),
    ("enabled", 0, "enabled"),
    ("expires_at", True, "expires_at"),
    ("expires_at", float("inf"), "expires_at"),
    ("expires_at", 1e300, "expires_at"),
    ("expires_at", -1, "expires_at"),
    ("created_at", 1e300, "created_at"),
    ("proxy_url", "not a url", "proxy_url"),
    ("name", 5, "name"),
])
def test_bad_account_values_are_refused(field, value, fragment):
    with pytest.raises(BadRequest) as raised:
        transfer.parse_document(document(account_doc("n", **{field: value})))
    assert f"accounts.0.{fragment}" in raised.value.message


def test_a_bad_global_proxy_url_is_refused():
    with pytest.raises(BadRequest, match="settings.proxy_url"):
        planned(document(settings={"proxy_url": "not a url"}), pool_of())


def test_a_document_without_a_name_keeps_the_name_here():
    pool = pool_of(creds("a", proxy_url="http://p:1"))
    changes, _ = planned(document({"refresh_token": refresh_token("aSECRET")}), pool)
    assert (changes[0].creds.name, changes[0].creds.proxy_url) == ("A", "http://p:1")
    changes, _ = planned(document({"id": "a", "name": "", "proxy_url": None}), pool)
    assert (changes[0].creds.name, changes[0].creds.proxy_url) == ("A", "http://p:1")


# ----- proxy passwords ---------------------------------------------------------------------------

def test_proxy_passwords_are_masked_like_secrets():
    pool = pool_of(creds("a", proxy_url="http://me:pr0xypw@h:1"))
    settings = {"proxy_url": "http://glob:g1obalpw@h:2"}
    masked = transfer.export(pool, settings, include_secrets=False)
    assert "pr0xypw" not in json.dumps(masked) and "g1obalpw" not in json.dumps(masked)
    assert masked["accounts"][0]["proxy_url"] == "http://me:***@h:1"
    full = transfer.export(pool, settings, include_secrets=True)
    assert full["accounts"][0]["proxy_url"] == "http://me:pr0xypw@h:1"
    assert full["settings"]["proxy_url"] == "http://glob:g1obalpw@h:2"
    changes, result = planned(masked, pool, settings)
    assert changes[0].creds.proxy_url == "http://me:pr0xypw@h:1" and result.settings is None


def test_a_new_account_with_a_masked_proxy_password_is_skipped():
    _, result = planned(document(account_doc("n", proxy_url="http://me:***@h:1")), pool_of())
    assert result.added == [] and "proxy" in result.skipped[0]["reason"]
