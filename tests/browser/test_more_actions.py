"""The remaining controls: account detail (rename, proxy, usage), refresh all / check tokens, filter
chips, a note and tags on a flow, Load more, the dark theme and copy buttons without a clipboard."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests import factories

pytestmark = pytest.mark.browser
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def test_account_detail_rename_and_proxy_then_bulk_token_actions(page, proxy, add_accounts):
    (alpha,) = add_accounts("alpha")
    page.signed_in(f"#/accounts/{alpha}")
    page.wait_text("Subscription")  # the live usage breakdown
    assert "KIRO FREE" in page.text("main")
    name = page.wait_visible("#acc-name")
    name.clear()
    name.send_keys("renamed")
    page.css("#acc-proxy").send_keys("http://user:secret@127.0.0.1:3128")
    page.button("Save", "main").click()
    page.wait(lambda d: proxy.services.pool.summary(alpha)["name"] == "renamed")
    page.wait_text("http://user:***@127.0.0.1:3128")
    assert "secret" not in page.text("main")

    page.go("#/accounts")
    page.button("Refresh all tokens", "main").click()
    page.wait_text("Refreshed 1 account", "#toasts")
    page.button("Check tokens", "main").click()
    page.wait_text("Checked 1 token", "#toasts")
    page.css("a.chip[href*='show=cooldown']").click()
    page.wait_text("No accounts match this filter")
    assert page.console_errors() == []


def test_note_tags_load_more_and_dark_theme(page, proxy, add_accounts):
    add_accounts("alpha")
    for i in range(52):
        answer = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC, timeout=30,
                                 json=factories.anthropic_body(f"question {i}"))
        assert answer.status_code == 200
    assert proxy.services.flows.flush()
    page.signed_in("#/flows")
    page.wait(lambda d: len(page.all("main .flow-row")) == 50)
    page.button("Load more", "main").click()
    page.wait(lambda d: len(page.all("main .flow-row")) == 52)

    page.go(page.all("main .flow-row")[0].get_attribute("href").split("/", 3)[3])
    page.wait_text("Hello from fake Kiro")
    page.d.find_element(By.XPATH, "//summary[starts-with(text(), 'Note and tags')]").click()
    page.css("#flow-note").send_keys("looks fine")
    page.css("#flow-tags").send_keys("demo, keep")
    page.button("Save note", "main").click()
    page.wait_text("Note saved", "#toasts")
    flow_id = page.d.current_url.split("#/flows/")[1].split("?")[0]
    stored = proxy.admin("GET", f"/flows/{flow_id}").json()
    assert (stored["note"], stored["tags"]) == ("looks fine", ["demo", "keep"])

    page.d.execute_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")  # plain http on a LAN
    page.button("Copy as curl", "main").click()
    page.wait_text("Press Ctrl+C", "main")

    page.go("#/settings")
    page.wait_visible("#theme-select")
    from selenium.webdriver.support.ui import Select
    Select(page.css("#theme-select")).select_by_value("dark")
    assert page.d.execute_script("return document.documentElement.dataset.theme") == "dark"
    page.go("#/")
    page.wait_text("Recent requests")
    page.screenshot("overview-dark")
    assert page.console_errors() == []
