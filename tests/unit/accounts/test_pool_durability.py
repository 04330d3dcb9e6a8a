"""New tokens from a refresh reach the disk before anything can use them."""
from __future__ import annotations

from typing import Any, Dict, List

from kiroproxy.accounts.credentials import from_token_file
from kiroproxy.accounts.pool import AccountPool
from kiroproxy.store.jsondb import JsonDB
from tests import factories


class WatchedDB(JsonDB):
    """Notes, at each write, which refresh token the pool was handing out at that moment."""

    pool: AccountPool
    account_id: str = ""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seen: List[Dict[str, str]] = []

    def upsert(self, doc: Dict[str, Any], table: str = "_default") -> None:
        if self.account_id:
            self.seen.append({"written": doc["refresh_token"],
                              "in_use": self.pool.creds(self.account_id).refresh_token})
        super().upsert(doc, table)


def test_rotated_tokens_are_written_before_the_pool_hands_them_out(tmp_path):
    db = WatchedDB(tmp_path / "accounts.json")
    pool = db.pool = AccountPool(db)
    account = pool.add(from_token_file(factories.token_file("acc-D"))).id
    old = pool.creds(account).refresh_token
    new = factories.refresh_token("rotated")
    db.account_id = account
    pool.update_creds(account, lambda c: c.with_tokens("acc-D2", new, 9e9))
    assert db.seen == [{"written": new, "in_use": old}]  # on disk while the old one was still in use
    assert pool.creds(account).refresh_token == new
    assert AccountPool(JsonDB(tmp_path / "accounts.json")).creds(account).refresh_token == new


def test_new_tokens_stay_in_use_when_the_disk_refuses_them(tmp_path):
    class Full(JsonDB):
        def upsert(self, doc: Dict[str, Any], table: str = "_default") -> None:
            raise OSError(28, "No space left on device")

    pool = AccountPool()
    account = pool.add(from_token_file(factories.token_file("acc-F"))).id
    pool._db = Full(tmp_path / "accounts.json")
    new = factories.refresh_token("kept")
    assert pool.update_creds(account, lambda c: c.with_tokens("acc-F2", new, 9e9)).refresh_token == new
    assert pool.creds(account).refresh_token == new  # the old one may be dead already
