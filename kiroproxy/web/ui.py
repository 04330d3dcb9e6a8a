"""The admin page: the static files in web/static, served at / and /ui/<file> with strict headers.

The page holds no data and no secrets, so it needs no key: everything it shows comes from /api with
the admin key. Files are read from the package (an upgrade takes effect on the next revalidation).
"""
from __future__ import annotations

import gzip
import hashlib
import threading
from pathlib import Path
from typing import Dict, Tuple

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

bp = Blueprint("ui", __name__)

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


class Files:
    """Static file bytes with their ETag and gzip form, re-read when the file changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: Dict[str, Tuple[Tuple[int, int], bytes, bytes, str]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Tuple[bytes, bytes, str]:
        """(plain, gzipped, etag); NotFound for anything outside the folder or of an unknown type."""
        joined = safe_join(str(self.root), name)
        path = Path(joined) if joined else None
        if path is None or path.suffix not in TYPES or not path.is_file():
            raise NotFound()  # the app answers 404 in its JSON error shape
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(name)
        if cached is None or cached[0] != key:
            plain = path.read_bytes()
            etag = hashlib.sha256(plain).hexdigest()[:20]
            cached = (key, plain, gzip.compress(plain, 9, mtime=0), etag)
            with self._lock:
                self._cache[name] = cached
        return cached[1], cached[2], cached[3]


FILES = Files(STATIC)


def serve(name: str) -> Response:
    plain, packed, etag = FILES.get(name)
    use_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower() and len(packed) < len(plain)
    response = Response(packed if use_gzip else plain, mimetype=None)
    response.headers["Content-Type"] = TYPES[Path(name).suffix]
    response.set_etag(etag + ("-gz" if use_gzip else ""))
    response.headers["Vary"] = "Accept-Encoding"
    if use_gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.headers.update(HEADERS)
    return response.make_conditional(request)


@bp.get("/")
def index() -> Response:
    return serve("index.html")


@bp.get("/ui/<path:name>")
def asset(name: str) -> Response:
    return serve(name)
