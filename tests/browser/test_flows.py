"""Flows from the page: requests made through the API are found by full-text search, filters live in
the URL, the detail shows request, response and attempts with no token value, bookmark, export."""
from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

from tests import factories

pytestmark = pytest.mark.browser
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def ask(proxy, text):
    answer = proxy.http.post(proxy.url + "/v1/messages", headers=ANTHROPIC, timeout=30,
                             json=factories.anthropic_body(text))
    assert answer.status_code == 200, answer.text


def rows(page):
    return page.all("main .flow-row")


def test_search_detail_without_tokens_bookmark_and_reload(page, proxy, add_accounts):
    add_accounts("alpha")
    refresh = proxy.services.pool.creds(proxy.services.pool.ids()[0]).refresh_token
    ask(proxy, "tell me about the purple elephant")
    ask(proxy, f"my token is {refresh} please keep it")
    ask(proxy, "a green giraffe")
    assert proxy.services.flows.flush()

    page.signed_in("#/flows")
    page.wait(lambda d: len(rows(page)) == 3)
    page.wait_text("3 flows match", "#flows-line")
    assert "secrets are never stored" in page.text("#flows-line")
    page.button("Log", "main").click()  # the raw request log, one line per request
    page.wait(lambda d: len(page.css("pre.log").text.splitlines()) == 3)
    assert " anthropic claude-sonnet-4.5 alpha 200 completed " in page.css("pre.log").text
    page.css("#flow-q").send_keys("elephant")
    page.wait(lambda d: len(rows(page)) == 1 and "q=elephant" in d.current_url)
    page.screenshot("flows-search")
    page.d.refresh()  # the filter survives a reload: it is in the URL
    page.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    page.wait(lambda d: len(rows(page)) == 1)
    assert page.css("#flow-q").get_attribute("value") == "elephant"

    page.css("#flow-q").clear()
    page.css("#flow-q").send_keys("token")
    page.wait(lambda d: len(rows(page)) == 1 and "q=token" in d.current_url)
    rows(page)[0].click()
    page.wait_text("Hello from fake Kiro")
    page.wait_text("1 · alpha · ok")
    page.wait_text("my token is")
    page.d.find_element(By.XPATH, "//summary[text()='Raw JSON']").click()
    page.wait(lambda d: '"request"' in page.text())
    text = page.text()
    assert refresh not in text and refresh[:40] not in text
    assert "acc-alpha" not in text
    assert refresh not in page.d.page_source
    page.screenshot("flow-detail")

    page.button("☆ Bookmark", "main").click()
    page.wait(lambda d: page.button("★ Bookmarked", "main"))
    flow_id = page.d.current_url.split("#/flows/")[1].split("?")[0]
    assert proxy.admin("GET", f"/flows/{flow_id}").json()["bookmarked"] is True
    assert page.console_errors() == []


def test_export_downloads_the_filtered_flows(page, proxy, add_accounts):
    add_accounts("alpha")
    ask(proxy, "first question")
    ask(proxy, "second question")
    assert proxy.services.flows.flush()
    wanted = [f["id"] for f in proxy.admin("GET", "/flows", params={"q": "second"}).json()["flows"]]
    page.signed_in("#/flows?q=second")
    page.wait(lambda d: len(rows(page)) == 1)
    page.button("Export…", "main").click()
    dialog = page.wait_visible("dialog[open]")
    dialog.find_element(By.XPATH, ".//button[text()='Download']").click()
    found = page.wait(lambda d: [p for p in d.downloads.iterdir() if p.suffix == ".jsonl"])
    lines = page.wait(lambda d: found[0].read_text().splitlines())
    assert [json.loads(line)["id"] for line in lines] == wanted
    assert found[0].name.startswith("kiroproxy-flows-")


def test_failover_is_one_row_with_its_tries(page, proxy, fake, add_accounts):
    from tests.fakes.scripts import Script
    add_accounts("alpha", "beta")
    fake.queue(Script(status=429, body=b'{"message": "Too many requests"}'))
    ask(proxy, "retry me")
    assert proxy.services.flows.flush()
    page.signed_in("#/flows")
    page.wait_text("2 tries")
    assert len(rows(page)) == 1
    rows(page)[0].click()
    page.wait_text("Timing · 2 tries")
    page.wait_text("2 · ")


def test_no_flows_points_at_connect_clients(page):
    page.signed_in("#/flows")
    page.wait_text("No requests yet")
    page.button("Connect clients", "main")
    page.go("#/flows?state=error")
    page.wait_text("No flows match these filters")
