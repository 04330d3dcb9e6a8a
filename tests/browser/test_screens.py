"""Settings, Stats and Connect in a real browser, and every screen at phone size (390x844) with no
horizontal scroll, no console error and a screenshot; Tab reaches each view's main action."""
from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests import factories

pytestmark = pytest.mark.browser
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
SCREENS = ["#/", "#/accounts", "#/accounts/add", "#/accounts/add?method=social", "#/accounts/add?method=scan",
           "#/accounts/add?method=paste", "#/flows", "#/stats", "#/settings", "#/connect", "#/more"]


def traffic(proxy, count=3):
    for i in range(count):
        answer = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC, timeout=30,
                                 json=factories.anthropic_body(f"question {i}"))
        assert answer.status_code == 200
    assert proxy.services.flows.flush()


def test_export_masked_then_import_a_broken_file_changes_nothing(page, proxy, add_accounts, tmp_path):
    add_accounts("alpha")
    secret = proxy.services.pool.creds(proxy.services.pool.ids()[0]).refresh_token
    page.signed_in("#/settings")
    page.button("Download (secrets masked)", "main").click()
    found = page.wait(lambda d: [p for p in d.downloads.iterdir() if p.name == "kiroproxy-config.json"])
    text = page.wait(lambda d: found[0].read_text())
    assert json.loads(text)["accounts"][0]["name"] == "alpha" and secret not in text

    page.button("Download with tokens…", "main").click()
    dialog = page.wait_visible("dialog[open]")
    assert "Anyone with this file can use your accounts" in dialog.text
    dialog.find_element(By.XPATH, ".//button[text()='Cancel']").click()

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"kiroproxy_export": 1, "accounts": [{"name": "x"}], "settings": {"port": "nope"}}))
    page.css("#import-file").send_keys(str(broken))
    page.wait_text("1 account found", "#import-preview")
    page.button("Import", "main").click()
    page.wait_text("Nothing was changed")
    page.screenshot("import-refused")
    assert [a["name"] for a in proxy.services.pool.summaries()] == ["alpha"]
    assert page.console_errors() == [] or all("400" in e["message"] for e in page.console_errors())


def test_stats_charts_have_labels_and_tables_with_the_same_numbers(page, proxy, add_accounts):
    add_accounts("alpha")
    traffic(proxy, 3)
    page.signed_in("#/stats")
    chart = page.wait(lambda d: [s for s in page.all("svg.chart") if "3 in all" in (s.get_attribute("aria-label") or "")])
    assert chart[0].get_attribute("role") == "img"
    page.all("main button.link")[0].click()  # Show as table
    table = page.wait_visible("main table")
    assert sum(int(td.text) for td in table.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2)")) == 3
    page.wait_text("alpha")
    page.screenshot("stats")


def test_connect_snippets_carry_this_address_and_the_check_works(page):
    page.signed_in("#/connect")
    page.wait(lambda d: f"export ANTHROPIC_BASE_URL={page.url}\n" in page.css("main textarea").get_attribute("value"))
    page.button("Codex", "main").click()
    page.wait(lambda d: f'base_url = "{page.url}/v1"' in page.css("main textarea").get_attribute("value"))
    page.button("Check connection", "main").click()
    page.wait_text("Connected:")


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 900)])
def test_every_screen_fits_and_loads_cleanly(page, proxy, add_accounts, width, height):
    add_accounts("alpha", "<b>bold</b>")
    traffic(proxy, 2)
    flow_id = proxy.admin("GET", "/flows").json()["flows"][0]["id"]
    account_id = proxy.services.pool.ids()[0]
    page.d.set_window_size(width, height)
    page.signed_in()
    for screen in SCREENS + [f"#/flows/{flow_id}", f"#/accounts/{account_id}"]:
        page.go(screen)
        page.wait(lambda d: d.execute_script(
            "return !document.querySelector('main .placeholder') && !!document.querySelector('main h1')"))
        assert page.horizontal_overflow() <= 0, screen
        name = screen.strip("#/").replace("/", "-").replace("?method=", "-") or "overview"
        page.screenshot(f"{width}-{name[:40]}")
        assert page.console_errors() == [], screen
        assert page.foreign_requests() == [], screen


def test_tab_reaches_the_nav_and_the_main_action(page, add_accounts):
    add_accounts("alpha")
    page.signed_in("#/accounts")
    page.wait_text("alpha")
    reached = []
    for _ in range(25):
        page.d.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(page.d.switch_to.active_element.text)
    assert "Flows" in reached and "Add account" in reached


def test_client_keys_are_created_shown_once_and_revoked(page, proxy):
    page.signed_in("#/settings")
    page.wait_text("No client keys yet")
    page.css("#key-name").send_keys("laptop")
    page.button("Create key", "main").click()
    page.wait_text('New key "laptop"')
    shown = page.css("main input.code").get_attribute("value")
    (listed,) = proxy.admin("GET", "/keys").json()["keys"]
    assert listed["name"] == "laptop" and shown.startswith(listed["prefix"])
    models = proxy.http.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {shown}"}, timeout=10)
    assert models.status_code == 200
    page.go("#/connect")
    page.wait_visible("#client-key").send_keys(shown)
    page.button("Check connection", "main").click()
    page.wait_text("Connected:")
    page.go("#/settings")
    page.button("Revoke…", "main").click()
    page.wait_visible("dialog[open]").find_element(By.XPATH, ".//button[text()='Revoke key']").click()
    page.wait_text("No client keys yet")
    assert proxy.admin("GET", "/keys").json()["keys"] == []
