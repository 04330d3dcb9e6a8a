"""The admin page's static files through the real server: headers, revalidation, gzip, and what the
sources may not contain (so the strict CSP holds and the page works offline)."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "kiroproxy" / "web" / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def test_the_page_at_root_carries_the_security_headers(proxy):
    page = proxy.http.get(proxy.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-cache"
    assert '<script type="module" src="ui/js/app.js">' in page.text


def test_assets_revalidate_with_an_etag_and_gzip_when_asked(proxy):
    url = proxy.url + "/ui/js/app.js"
    plain = proxy.http.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert plain.headers["Content-Security-Policy"] == CSP
    assert plain.content == (STATIC / "js" / "app.js").read_bytes()
    again = proxy.http.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["ETag"]},
                           timeout=10)
    assert again.status_code == 304 and again.content == b""
    packed = proxy.http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.raw.read()) == plain.content
    assert packed.headers["ETag"] != plain.headers["ETag"]
    css = proxy.http.get(proxy.url + "/ui/style.css", timeout=10)
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"


def test_nothing_outside_the_static_folder_is_served(proxy):
    for path in ("/ui/../ui.py", "/ui/%2e%2e/ui.py", "/ui/..%2fui.py", "/ui/js/missing.js", "/ui/", "/ui/js"):
        answer = proxy.http.get(proxy.url + path, timeout=10)
        assert answer.status_code == 404, path
        assert "def serve" not in answer.text


def test_the_page_needs_no_key_but_the_api_still_does(proxy):
    assert proxy.http.get(proxy.url + "/", timeout=10).status_code == 200
    assert proxy.http.get(proxy.url + "/api/status", timeout=10).status_code == 401


def sources():
    return [p for p in STATIC.rglob("*") if p.is_file()]


# What a phone on the LAN fetches: the first screen (the Overview and the modules it imports) and,
# as served (gzip), everything. Per-screen modules load only when their screen opens.
FIRST_SCREEN = ["index.html", "style.css", "js/app.js", "js/api.js", "js/dom.js", "js/strings.js", "js/charts.js",
                "js/views/overview.js", "js/views/accounts.js", "js/views/flows.js"]


def test_static_payload_and_module_budgets():
    total = sum(p.stat().st_size for p in sources())
    assert total <= 115 * 1024, f"static payload is {total} bytes uncompressed"
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in sources())
    assert packed <= 45 * 1024, f"static payload is {packed} bytes as served (gzip)"
    first = sum((STATIC / name).stat().st_size for name in FIRST_SCREEN)
    assert first <= 80 * 1024, f"the first screen needs {first} bytes"
    for path in sources():
        if path.suffix in (".js", ".css"):
            lines = path.read_text("utf-8").count("\n")
            assert lines < 400, f"{path.name} has {lines} lines"


def test_sources_keep_the_csp_and_work_offline():
    for path in sources():
        text = path.read_text("utf-8")
        assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text, path
        assert not re.search(r"\balert\(|\bconfirm\(|\bprompt\(", text.replace("alert(1)", "")), path
        assert "eval(" not in text and "new Function" not in text, path
        assert not re.search(r"https?://(?!127\.0\.0\.1|user:pass@host|www\.w3\.org/2000/svg|your-org\.awsapps\.com)", text), f"external URL in {path}"
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline script"
            assert not re.search(r"\son[a-z]+=", text), "inline event handler"
        assert not re.search(r"\sstyle=|setAttribute\(\s*['\"]style", text), f"style attribute in {path}"
