"""A thin page object over selenium: open the page, sign in, wait for text, check what every
screen must satisfy (no console errors, same-origin requests only, no horizontal scroll)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import ADMIN_KEY, Proxy

TIMEOUT = 15


class Page:
    def __init__(self, driver: Any, proxy: Proxy, artifacts: Path) -> None:
        self.d = driver
        self.proxy = proxy
        self.url = proxy.url
        self.artifacts = artifacts

    # ----- navigation -------------------------------------------------------------------

    def open(self, hash_path: str = "#/") -> Page:
        self.d.get(f"{self.url}/{hash_path}")
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        return self

    def go(self, hash_path: str) -> None:
        self.d.execute_script("location.hash = arguments[0]", hash_path)

    def sign_in(self, key: str = ADMIN_KEY, remember: bool = True) -> None:
        self.wait_visible("#key-input")
        field = self.css("#key-input")
        field.clear()
        field.send_keys(key)
        box = self.css("#key-remember")
        if box.is_selected() != remember:
            box.click()
        self.css("#key-submit").click()

    def signed_in(self, hash_path: str = "#/") -> Page:
        self.open(hash_path)
        self.sign_in()
        self.wait(lambda d: not self.css("#key-dialog").get_attribute("open"))
        return self

    # ----- finding and waiting ----------------------------------------------------------

    def css(self, selector: str) -> Any:
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> List[Any]:
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def wait(self, condition: Any, timeout: float = TIMEOUT) -> Any:
        try:
            return WebDriverWait(self.d, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            self.screenshot("timeout")
            raise AssertionError(f"timed out; the page shows:\n{self.d.find_element(By.TAG_NAME, 'body').text}\n"
                                 f"console: {self.d.get_log('browser')}") from None

    def wait_visible(self, selector: str) -> Any:
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def wait_text(self, text: str, selector: str = "main") -> Any:
        return self.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text))

    def button(self, label: str, within: str = "body") -> Any:
        """The visible button or link whose text is `label`."""
        def find(d: Any) -> Any:
            for el in self.css(within).find_elements(By.CSS_SELECTOR, "button, a.button, summary"):
                if el.is_displayed() and el.text.strip() == label:
                    return el
            return False
        return self.wait(find)

    def text(self, selector: str = "body") -> str:
        return self.css(selector).text

    # ----- checks every screen must pass ------------------------------------------------

    def console_errors(self) -> List[dict]:
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"]

    def foreign_requests(self) -> List[str]:
        names = self.d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        return [n for n in names if not n.startswith(self.url + "/")]

    def horizontal_overflow(self) -> int:
        return self.d.execute_script(
            "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth")

    def screenshot(self, name: str) -> Path:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        assert self.d.save_screenshot(str(path))
        return path
