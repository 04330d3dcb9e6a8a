"""tidy(): at start, crash leftovers go and everything in the data directory becomes private."""
from __future__ import annotations

import os
import stat

from kiroproxy.store.jsondb import tidy, write_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_stale_temp_files_go_and_everything_becomes_private(tmp_path):
    home = tmp_path / "home"
    (home / "flows" / "bodies" / "000001").mkdir(parents=True, mode=0o755)
    os.chmod(home, 0o755)
    stale = home / ".accounts.json.123.456.tmp"
    stale.write_text('{"refresh_token": "secret"}')
    deep = home / "flows" / "bodies" / "000001" / ".x.json.gz.1.2.tmp"
    deep.write_text("half a body")
    kept = home / "config.json"
    kept.write_text("{}")
    os.chmod(kept, 0o644)
    tidy(home)
    assert not stale.exists() and not deep.exists()
    assert kept.read_text() == "{}" and mode(kept) == 0o600
    for folder, _, _ in os.walk(home):
        assert mode(folder) == 0o700, folder


def test_write_atomic_creates_missing_folders_private(tmp_path):
    write_atomic(tmp_path / "a" / "b" / "file.json", b"{}")
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "file.json") == 0o600


def test_links_are_neither_followed_nor_changed(tmp_path):
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    (outside / "inner").mkdir(parents=True)
    os.chmod(outside / "inner", 0o755)
    target = outside / "shared.txt"
    target.write_text("x")
    os.chmod(target, 0o644)
    (home / "link.txt").symlink_to(target)
    (home / "linked-folder").symlink_to(outside)
    (outside / ".y.json.1.2.tmp").write_text("not ours")
    tidy(home)
    assert mode(target) == 0o644 and mode(outside / "inner") == 0o755
    assert (outside / ".y.json.1.2.tmp").exists() and (home / "link.txt").is_symlink()
