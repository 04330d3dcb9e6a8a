"""Browser harness: the real server on waitress (loopback, free port) with the fake Kiro upstream and
fake OIDC, driven by Debian's headless Chromium through selenium and chromedriver.

Without chromium the tests skip, unless KIROPROXY_REQUIRE_BROWSER=1 (CI), where that is a failure.
Screenshots land in tests/browser/artifacts/ (or $KIROPROXY_ARTIFACTS) for people to look at.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from tests.e2e.conftest import ADMIN_KEY, Proxy, fake, make_proxy, proxy, wait_for  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("KIROPROXY_ARTIFACTS") or Path(__file__).parent / "artifacts")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


def browser_present() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    wanted = [item for item in items if "browser" in item.keywords]
    if not wanted or browser_present():
        return
    if os.environ.get("KIROPROXY_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"chromium / chromedriver not found ({CHROMIUM}, {CHROMEDRIVER}): "
                                "apt-get install chromium chromium-driver")
    skip = pytest.mark.skip(reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    for item in wanted:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One browser for the session; each test opens its own server (so its own origin and storage)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('profile')}", "--window-size=1280,900"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(15)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture
def page(chrome: Any, proxy: Proxy, request: pytest.FixtureRequest) -> Iterator[Any]:
    from .pages import Page

    chrome.set_window_size(1280, 900)
    for old in chrome.downloads.iterdir():
        old.unlink()
    chrome.get_log("browser")  # drop what earlier tests left
    artifacts = ARTIFACTS / request.node.name
    shutil.rmtree(artifacts, ignore_errors=True)
    yield Page(chrome, proxy, artifacts)
    chrome.get("about:blank")


@pytest.fixture
def add_accounts(proxy: Proxy) -> Callable[..., List[str]]:
    def add(*names: str) -> List[str]:
        return [proxy.add_account(f"acc-{name}", name=name) for name in names]
    return add
