"""The shell in a real browser: the key dialog, the status header, and what every screen must hold."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.keys import Keys

pytestmark = pytest.mark.browser


def test_wrong_key_then_right_key_then_reload_then_forget(page, add_accounts):
    add_accounts("alpha")
    page.open()
    page.wait_visible("#key-dialog")
    assert "kiroproxy admin-key" in page.text("#key-dialog")
    page.sign_in("not-the-key")
    page.wait_text("That key was refused", "#key-error")
    assert page.css("#key-input").get_attribute("aria-invalid") == "true"
    assert page.css("#key-dialog").get_attribute("open")
    page.screenshot("key-refused")

    page.sign_in()
    page.wait_text("Running · 1 of 1 account ready", "#conn")
    page.wait_text("Last 24 hours")
    assert page.d.execute_script("return localStorage.getItem('kiroproxy.adminKey')") is not None

    page.open()  # a reload keeps the remembered key: no dialog, the overview loads
    page.wait_text("Recent requests")
    assert not page.css("#key-dialog").get_attribute("open")

    page.css("#menu summary").click()
    page.button("Forget key on this device").click()
    page.wait_visible("#key-dialog")
    assert page.d.execute_script("return localStorage.getItem('kiroproxy.adminKey')") is None
    page.open()
    page.wait_visible("#key-dialog")
    assert page.console_errors() == [] or all("401" in e["message"] for e in page.console_errors())


def test_unticked_remember_keeps_the_key_for_this_tab_only(page):
    page.open()
    page.sign_in(remember=False)
    page.wait_text("Running", "#conn")
    store = page.d.execute_script("return [localStorage.getItem('kiroproxy.adminKey'),"
                                  " sessionStorage.getItem('kiroproxy.adminKey')]")
    assert store[0] is None and store[1]


def test_a_key_changed_on_the_server_reopens_the_dialog(page):
    page.signed_in()
    page.wait_text("Recent requests")
    page.d.execute_script("localStorage.setItem('kiroproxy.adminKey', 'stale')")
    page.go("#/accounts")
    page.wait_visible("#key-dialog")
    page.wait_text("refused or changed", "#key-dialog")


def test_requests_stay_on_the_page_origin_with_no_console_errors(page, add_accounts):
    add_accounts("alpha")
    page.signed_in()
    page.wait_text("Pool credits")
    assert page.foreign_requests() == []
    assert page.console_errors() == []


def test_escape_closes_the_key_dialog_and_tab_reaches_the_nav(page):
    page.open()
    page.wait_visible("#key-dialog")
    page.css("#key-input").send_keys(Keys.ESCAPE)
    page.wait(lambda d: not page.css("#key-dialog").get_attribute("open"))
    body = page.css("body")
    seen = []
    for _ in range(12):
        body = page.d.switch_to.active_element
        body.send_keys(Keys.TAB)
        seen.append(page.d.switch_to.active_element.text)
    assert "Skip to content" in seen and "Accounts" in seen and "Flows" in seen


def test_an_unreachable_server_shows_a_banner_and_keeps_the_data_greyed(page, add_accounts):
    from kiroproxy.server import _channels, _socket_map, stop_accepting

    add_accounts("alpha")
    page.signed_in("#/accounts")
    page.wait_text("alpha")
    stop_accepting(page.proxy.server)
    for channel in _channels(_socket_map(page.proxy.server)):
        channel.handle_close()
    page.button("Check usage", "main").click()
    page.wait_text("Can't reach the proxy: retrying in", "#banner")
    assert "stale" in page.css("main").get_attribute("class")
    assert "alpha" in page.text("main")  # what was shown stays on screen
    page.wait_text("Can't reach the proxy", "#conn")
    page.screenshot("unreachable")
