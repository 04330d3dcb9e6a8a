"""Accounts in a real browser: states, reasons, quota text and bars from the fake pool; actions."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests import factories

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


def usage_document(used: float, limit: float) -> dict:
    return {"daysUntilReset": 12, "nextDateReset": 1893456000.0,
            "subscriptionInfo": {"subscriptionTitle": "KIRO PRO", "type": "Q_DEVELOPER_STANDALONE_PRO"},
            "userInfo": {"email": "alpha@example.com"},
            "usageBreakdownList": [{"resourceType": "CREDIT", "currentUsageWithPrecision": used,
                                    "usageLimitWithPrecision": limit}]}


def card(page, name):
    for el in page.all("article.account"):
        if el.find_element(By.CSS_SELECTOR, ".title a").text == name:
            return el
    return None


def card_text(page, name):
    found = card(page, name)
    return found.text if found is not None else ""


def test_states_reasons_quota_and_an_account_name_that_is_markup(page, proxy, fake, add_accounts):
    fake.usage = usage_document(412, 500)
    alpha, beta, gamma, evil = add_accounts("alpha", "beta", "gamma", XSS)
    pool = proxy.services.pool
    pool.cooldown(beta, 600, "rate limited (429)")
    pool.suspend(gamma, "TEMPORARILY_SUSPENDED")
    pool.set_enabled(evil, False)

    page.signed_in("#/accounts")
    page.wait(lambda d: "412 / 500 used · 88 left" in card_text(page, "alpha"))
    bar = card(page, "alpha").find_element(By.CSS_SELECTOR, "[role=progressbar]")
    assert (bar.get_attribute("aria-valuenow"), bar.get_attribute("aria-valuemax")) == ("412", "500")
    assert "meter warn" in bar.get_attribute("class")  # 82 % used: amber
    assert "alpha@example.com" in card_text(page, "alpha")
    assert "Cooling down: rate limited (429)" in card_text(page, "beta")
    assert "cooling down for" in card_text(page, "beta")
    assert "Suspended: TEMPORARILY_SUSPENDED" in card_text(page, "gamma")
    assert "Quota not checked while suspended" in card_text(page, "gamma")
    assert "disabled by hand" in card_text(page, XSS)  # the name shows as text
    assert page.all("main img") == []
    assert "0 requests · 0 errors" in card_text(page, "alpha")
    page.screenshot("accounts")
    assert page.console_errors() == []

    # alpha is the only account that serves: one request makes its count singular
    answer = proxy.http.post(proxy.url + "/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                             json=factories.anthropic_body("hello"), timeout=30)
    assert answer.status_code == 200, answer.text
    page.go("#/flows")
    page.go("#/accounts")
    page.wait(lambda d: "1 request · 0 errors" in card_text(page, "alpha"))

    # one main action per state: Restore for the cooling account, Enable for the disabled one
    card(page, "beta").find_element(By.XPATH, ".//button[text()='Restore']").click()
    page.wait(lambda d: "Active" in card_text(page, "beta") and "Cooling" not in card_text(page, "beta"))
    page.wait_text("beta is back in the pool", "#toasts")
    assert pool.summary(beta)["state"] == "active"
    card(page, XSS).find_element(By.XPATH, ".//button[text()='Enable']").click()
    page.wait(lambda d: pool.summary(evil)["state"] == "active")

    gamma_card = card(page, "gamma")
    gamma_card.find_element(By.CSS_SELECTOR, "details summary").click()
    gamma_card.find_element(By.XPATH, ".//button[text()='Delete…']").click()
    dialog = page.wait_visible("dialog[open]")
    assert "tokens will be removed from this machine" in dialog.text
    dialog.find_element(By.XPATH, ".//button[text()='Delete account']").click()
    page.wait(lambda d: card(page, "gamma") is None)
    assert gamma not in pool.ids()
    assert page.console_errors() == []


def test_disable_from_the_menu_and_cancel_a_delete_with_escape(page, proxy, add_accounts):
    (alpha,) = add_accounts("alpha")
    page.signed_in("#/accounts")
    page.wait(lambda d: card(page, "alpha") is not None)
    card(page, "alpha").find_element(By.CSS_SELECTOR, "details summary").click()
    card(page, "alpha").find_element(By.XPATH, ".//button[text()='Disable']").click()
    page.wait(lambda d: "disabled by hand" in card_text(page, "alpha"))
    assert proxy.services.pool.summary(alpha)["enabled"] is False

    card(page, "alpha").find_element(By.CSS_SELECTOR, "details summary").click()
    card(page, "alpha").find_element(By.XPATH, ".//button[text()='Delete…']").click()
    page.wait_visible("dialog[open]")
    from selenium.webdriver.common.keys import Keys
    page.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    page.wait(lambda d: not page.all("dialog[open]"))
    assert alpha in proxy.services.pool.ids()


def test_no_accounts_offers_the_one_action(page):
    page.signed_in("#/")
    page.wait_text("Add your first account")
    page.screenshot("overview-empty")
    page.button("Add your first account")
