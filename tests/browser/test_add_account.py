"""Adding accounts from the page: paste a token file, scan the server, device code (the fake OIDC
approves, expires, or the user cancels), and the Google copy-back."""
from __future__ import annotations

import json

import pytest
import requests
from selenium.webdriver.common.by import By

from tests import factories
from tests.fakes.kiro import DEVICE_CODE_GRANT
from tests.fakes.scripts import oauth_error

pytestmark = pytest.mark.browser


def names(proxy):
    return sorted(s["name"] for s in proxy.services.pool.summaries())


def test_paste_a_token_file(page, proxy):
    token = factories.token_file("acc-pasted")
    page.signed_in("#/accounts/add?method=paste")
    field = page.wait_visible("#paste-token")
    field.send_keys("{not json")
    page.wait_text("Not valid JSON", "#paste-check")
    assert not page.css("form button[type=submit]").is_enabled()
    field.clear()
    page.d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                          field, json.dumps(token))
    page.wait_text("refreshToken ✓", "#paste-check")
    assert token["refreshToken"] not in page.text()  # shown masked
    page.css("#paste-name").send_keys("pasted")
    page.screenshot("paste")
    page.css("form button[type=submit]").click()
    page.wait_text("Added account pasted")
    assert names(proxy) == ["pasted"]
    assert page.css("#paste-token").get_attribute("value") == ""
    assert page.console_errors() == []


def test_scan_this_server(page, proxy):
    cache = proxy.home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    (cache / "kiro-auth-token.json").write_text(json.dumps(factories.token_file("acc-scanned")))
    page.signed_in("#/accounts/add?method=scan")
    page.wait_text("kiro-auth-token.json")
    page.screenshot("scan")
    page.button("Add", "main").click()
    page.wait_text("Already added")
    assert len(proxy.services.pool.ids()) == 1


def test_scan_with_nothing_found_says_what_to_do(page):
    page.signed_in("#/accounts/add?method=scan")
    page.wait_text("No Kiro token files under")
    page.button("Sign in with a code", "main")


def test_device_code_shown_then_approved(page, proxy, fake):
    fake.device_interval = 1
    fake.queue_token(oauth_error("authorization_pending"), oauth_error("authorization_pending"), grant=DEVICE_CODE_GRANT)
    page.signed_in("#/accounts/add")
    page.button("Start", "main").click()
    code = page.wait_visible("input.code.big")
    assert code.get_attribute("value").startswith("FAKE-")
    link = page.d.find_element(By.LINK_TEXT, "Open sign-in page")
    assert link.get_attribute("href") == f"{fake.url}/device?user_code={code.get_attribute('value')}"
    assert link.get_attribute("rel") == "noopener noreferrer"
    page.wait_text("Waiting for you to approve", ".login-status")
    page.screenshot("device-code")
    page.wait_text("Added account", "main")
    assert len(proxy.services.pool.ids()) == 1
    assert page.console_errors() == []


def test_device_code_expires_or_is_cancelled(page, proxy, fake):
    fake.device_interval = 1
    fake.queue_token(oauth_error("expired_token"), grant=DEVICE_CODE_GRANT)
    page.signed_in("#/accounts/add")
    page.button("Start", "main").click()
    page.wait_text("The code expired before it was approved")
    page.button("Start again", "main").click()
    fake.queue_token(*[oauth_error("authorization_pending")] * 20, grant=DEVICE_CODE_GRANT)
    page.button("Start", "main").click()
    page.wait_visible("input.code.big")
    page.button("Cancel", "main").click()
    page.wait_text("The sign-in was cancelled")
    assert proxy.services.pool.ids() == []


def test_google_copy_back(page, proxy):
    page.signed_in("#/accounts/add?method=social")
    page.button("Google", "main").click()
    link = page.wait(lambda d: d.find_element(By.LINK_TEXT, "Open sign-in page"))
    landed = requests.get(link.get_attribute("href"), allow_redirects=False, timeout=10).headers["Location"]
    field = page.css("#social-paste")
    field.send_keys(landed.replace("state=", "state=x"))
    page.wait_text("belongs to another sign-in", "#social-check")
    assert not page.button("Finish", "main").is_enabled()
    field.clear()
    field.send_keys(landed)
    page.wait_text("contains code ✓ · state ✓", "#social-check")
    page.screenshot("social")
    page.button("Finish", "main").click()
    page.wait_text("Added account", "main")
    (account,) = proxy.services.pool.summaries()
    assert account["provider"] == "Google"


def test_a_used_sign_in_is_refused_with_start_again(page, proxy):
    page.signed_in("#/accounts/add?method=social")
    page.button("GitHub", "main").click()
    link = page.wait(lambda d: d.find_element(By.LINK_TEXT, "Open sign-in page"))
    landed = requests.get(link.get_attribute("href"), allow_redirects=False, timeout=10).headers["Location"]
    assert proxy.admin("POST", "/kiro/social/exchange", json={"url": landed}).status_code == 201  # used elsewhere
    page.css("#social-paste").send_keys(landed)
    page.button("Finish", "main").click()
    page.wait_text("start again", "main")
    page.button("Start again", "main")
