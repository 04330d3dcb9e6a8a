"""Finding the running server: its server.json marker in the data directory, else the configured
address, and the admin key from the flag, the settings or admin.key. Every command that needs the
server goes through here (login, status, accounts, keys, logs, flows)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Optional

from ..config import Settings
from ..errors import ProxyError
from ..server import local_url, owner

if TYPE_CHECKING:
    import requests

UNREACHABLE = "unreachable"  # the kind of ProxyError that means "no server answers" (exit status 2)


class AdminApi:
    """The running server's admin API; answers are JSON documents, failures ProxyError."""

    def __init__(self, url: str, key: str, timeout: float = 30.0) -> None:
        import requests  # only commands that talk to a server load it, never `serve`

        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: no proxy from the environment
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.timeout = timeout

    def probe(self) -> int:
        """The status of GET /api/accounts, 0 when nothing answers."""
        import requests

        try:
            return self.http.get(self.url + "/api/accounts", timeout=5).status_code
        except requests.RequestException:
            return 0

    def raw(self, method: str, path: str, **kw: Any) -> requests.Response:
        import requests

        kw.setdefault("timeout", self.timeout)
        try:
            response = self.http.request(method, self.url + "/api" + path, **kw)
        except requests.RequestException as exc:
            raise ProxyError(f"the server at {self.url} failed: {type(exc).__name__}", status=502,
                             kind=UNREACHABLE) from None
        if response.status_code >= 400:
            try:
                error = response.json().get("error") or {}
                message = error.get("message") or f"HTTP {response.status_code}"
            except (ValueError, AttributeError):
                message = f"HTTP {response.status_code}"
            raise ProxyError(str(message), status=response.status_code)
        return response

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self.raw(method, path, **kw)
        try:
            return response.json()
        except ValueError:
            raise ProxyError(f"the server at {self.url} answered something that is not JSON", status=502) from None

    def close(self) -> None:
        self.http.close()


def admin_key(settings: Settings, args: argparse.Namespace) -> str:
    key_file = settings.home / "admin.key"
    given = getattr(args, "admin_key", None) or settings.admin_key
    if given:
        return given
    try:
        return key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ProxyError(f"cannot read {key_file} ({exc.strerror}); run as the user that owns the data "
                         "directory, or pass --admin-key", kind=UNREACHABLE) from None


def find_server(settings: Settings, args: argparse.Namespace) -> Optional[AdminApi]:
    """The admin API of the server that owns the data directory (its server.json says where it
    listens), else of a server answering at the configured address; None when no server runs.
    Raises ProxyError (kind UNREACHABLE) when --server or a live owner does not answer, or when
    the server refuses the key: writing underneath a live server would lose the change."""
    key = admin_key(settings, args)
    server = getattr(args, "server", None)
    if server:
        return _through(server, key, f"no kiroproxy server answers at {server}")
    running = owner(settings.home)
    if running is not None:
        return _through(running.url, key, (
            f"the kiroproxy server that uses {settings.home} (pid {running.pid}) does not answer at "
            f"{running.url}; not changing anything underneath it. Try again once it answers, or pass "
            f"--server (if no kiroproxy runs, delete {settings.home / 'server.json'})"))
    return _admin_api(local_url(settings.host, settings.port), key)


def require_server(settings: Settings, args: argparse.Namespace, what: str) -> AdminApi:
    """find_server(), or ProxyError saying that `what` needs the running server."""
    api = find_server(settings, args)
    if api is None:
        raise ProxyError(f"{what} needs the running server, and none runs for {settings.home} (nor at "
                         f"{local_url(settings.host, settings.port)}); start it with `kiroproxy serve`, "
                         "or pass --server URL", kind=UNREACHABLE)
    return api


def _through(url: str, key: str, unreachable: str) -> AdminApi:
    api = _admin_api(url, key)
    if api is None:
        raise ProxyError(unreachable, kind=UNREACHABLE)
    return api


def _admin_api(url: str, key: str) -> Optional[AdminApi]:
    """The admin API at `url` when it accepts `key`; None when nothing answers there."""
    api = AdminApi(url, key)
    status = api.probe()
    if status == 200:
        return api
    api.close()
    if status == 401:
        raise ProxyError(f"the server at {url} refused the admin key; pass --admin-key", kind=UNREACHABLE)
    return None
