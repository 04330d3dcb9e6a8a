"""Where Kiro lives and how we reach it: endpoint selection, headers, per-thread HTTP sessions.

No request is sent here; this module only builds URLs, headers and sessions.
"""
from __future__ import annotations

import socket
import threading
import uuid
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, ContextManager, Dict, List, Mapping, Optional, Tuple

from .credentials import EXTERNAL_IDP, IDC, Credentials
from .warm import WarmConnections

if TYPE_CHECKING:
    import requests

SDK_VERSION = "1.0.34"


@dataclass(frozen=True)
class Endpoints:
    """Base URLs. `api_url` overrides every Kiro service host, `auth_url` the social auth host,
    `oidc_url` the AWS OIDC host (tests point all three at a loopback fake)."""

    api_url: Optional[str] = None
    auth_url: Optional[str] = None
    oidc_url: Optional[str] = None

    def chat_hosts(self, creds: Credentials) -> List[str]:
        """Hosts to try in order. runtime.*.kiro.dev needs a profile ARN; profile-less Builder ID
        accounts only work on the older q.* host."""
        if self.api_url:
            return [self.api_url.rstrip("/")]
        region = creds.api_region
        runtime = f"https://runtime.{region}.kiro.dev"
        legacy = f"https://q.{region}.amazonaws.com"
        if creds.profile_arn or creds.auth_method not in (IDC,):
            return [runtime, legacy]
        return [legacy]

    def management_host(self, creds: Credentials) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        region = creds.api_region
        if creds.profile_arn or creds.auth_method != IDC:
            return f"https://management.{region}.kiro.dev"
        return f"https://q.{region}.amazonaws.com"

    def social_auth(self, region: str = "us-east-1") -> str:
        return (self.auth_url or f"https://prod.{region}.auth.desktop.kiro.dev").rstrip("/")

    def oidc(self, region: str = "us-east-1") -> str:
        return (self.oidc_url or f"https://oidc.{region}.amazonaws.com").rstrip("/")


@dataclass(frozen=True)
class ClientIdentity:
    """The versions we present upstream; stable so accounts look like ordinary Kiro installs."""

    kiro_version: str = "0.11.63"
    node_version: str = "22.22.0"
    os_version: str = "darwin#24.6.0"

    def chat_headers(self, creds: Credentials, *, streaming: bool = True,
                     api: str = "codewhispererstreaming") -> Dict[str, str]:
        tag = f"KiroIDE-{self.kiro_version}-{creds.machine_id}"
        version = SDK_VERSION if api == "codewhispererstreaming" else "1.0.0"
        headers = {
            "Authorization": f"Bearer {creds.access_token}",
            "Content-Type": "application/json",
            "Accept": "application/json" if not streaming else "*/*",
            "x-amzn-codewhisperer-optout": "true",
            "x-amzn-kiro-agent-mode": "vibe",
            "x-amz-user-agent": f"aws-sdk-js/{SDK_VERSION} {tag}",
            "user-agent": (f"aws-sdk-js/{SDK_VERSION} ua/2.1 os/{self.os_version} lang/js "
                           f"md/nodejs#{self.node_version} api/{api}#{version} m/E {tag}"),
            "amz-sdk-invocation-id": str(uuid.uuid4()),
            "amz-sdk-request": "attempt=1; max=3" if streaming else "attempt=1; max=1",
        }
        if streaming:
            headers["Connection"] = "close"
        if creds.auth_method == EXTERNAL_IDP:
            headers["TokenType"] = "EXTERNAL_IDP"
        if creds.access_token.startswith("ksk_"):
            headers["tokentype"] = "API_KEY"
        return headers

    def auth_headers(self, creds: Credentials) -> Dict[str, str]:
        if creds.auth_method == IDC:
            return {"Content-Type": "application/json",
                    "x-amz-user-agent": "aws-sdk-js/3.980.0 KiroIDE",
                    "user-agent": f"aws-sdk-js/3.980.0 ua/2.1 os/{self.os_version} lang/js "
                                  f"md/nodejs#{self.node_version} api/sso-oidc#3.980.0 m/E KiroIDE"}
        return {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*",
                "User-Agent": f"KiroIDE-{self.kiro_version}-{creds.machine_id}"}


class Sessions:
    """One requests.Session per thread and proxy URL (sessions are not thread-safe).

    With `warm`, chat calls made inside `ahead()` use a connection opened ahead of time."""

    def __init__(self, default_proxy: Optional[str] = None, warm: Optional[WarmConnections] = None) -> None:
        self.default_proxy = default_proxy
        self.warm = warm
        self._local = threading.local()
        # Weak: a session lives as long as its thread (the thread-local holds it), so short-lived
        # threads (model sync, sign-ins) leave nothing behind; close() reaches those still alive.
        self._all: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._targets: Dict[str, Optional[str]] = {}  # URL -> as requests prepares it (None: has credentials)

    def get(self, proxy_url: Optional[str] = None) -> requests.Session:
        proxy = proxy_url or self.default_proxy or ""
        cache = getattr(self._local, "sessions", None)
        if cache is None:
            cache = self._local.sessions = {}
        session = cache.get(proxy)
        if session is None:
            import requests  # loaded by the first upstream call, not at start-up

            session = requests.Session()
            session.trust_env = False  # never pick up a proxy or netrc from the environment silently
            if proxy:
                session.proxies = {"http": proxy, "https": proxy}
            if self.warm is not None:
                adapter = self.warm.adapter()
                session.mount("https://", adapter)
                session.mount("http://", adapter)
            cache[proxy] = session
            with self._all_lock:
                self._all.add(session)
        return session

    def post(self, session: requests.Session, url: str, *, data: bytes, headers: Mapping[str, str],
             timeout: Tuple[float, float]) -> requests.Response:
        """session.post(url, data=data, headers=headers, stream=True, timeout=timeout), minus the
        work Session.request redoes on every call for settings that never change here (URL parsing,
        environment and hook merging, cookie-jar copies). The same prepared request goes through
        the same adapter (warm connections, outbound proxy, TLS verification, timeouts) with the
        same headers, cookies sent and kept; sessions with hooks, auth, params or environment
        settings, URLs with credentials, and redirects take requests' own path."""
        import requests  # loaded already: the session is requests'
        from requests.cookies import extract_cookies_to_jar
        from requests.structures import CaseInsensitiveDict

        target = self._target(url)
        if target is None or session.trust_env or session.auth or session.params or any(session.hooks.values()):
            return session.post(url, data=data, headers=headers, stream=True, timeout=timeout)
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = target
        merged = CaseInsensitiveDict(session.headers)  # requests' merge_setting, without its generic checks
        merged.update(headers)
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]
        prepared.prepare_headers(merged)
        if len(session.cookies):
            prepared.prepare_cookies(session.cookies)
        prepared.prepare_body(data, None)
        prepared.prepare_hooks({})
        response = session.get_adapter(target).send(prepared, stream=True, timeout=timeout, verify=session.verify,
                                                    cert=session.cert, proxies=session.proxies)
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            extract_cookies_to_jar(session.cookies, prepared, response.raw)
        if response.is_redirect:  # Kiro does not redirect; if it ever does, requests follows it
            response.close()
            return session.post(url, data=data, headers=headers, stream=True, timeout=timeout)
        return response

    def _target(self, url: str) -> Optional[str]:
        """`url` as requests prepares it (cached: Kiro's few hosts), None if it carries credentials."""
        target = self._targets.get(url, "")
        if target == "":
            import requests
            from requests.utils import get_auth_from_url

            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, None)
            target = None if any(get_auth_from_url(prepared.url)) else prepared.url
            if len(self._targets) >= 64:
                self._targets.clear()
            self._targets[url] = target
        return target

    def ahead(self) -> ContextManager[None]:
        """Requests in this block take a warm connection where they would open a new one."""
        return self.warm.ahead() if self.warm is not None else nullcontext()

    def close(self) -> None:
        """Close every session of every thread (at shutdown), and the warm connections."""
        with self._all_lock:
            sessions, self._all = list(self._all), weakref.WeakSet()
        for session in sessions:
            session.close()
        if self.warm is not None:
            self.warm.close()

    def for_account(self, creds: Credentials) -> requests.Session:
        return self.get(creds.proxy_url)


def _socket(response: requests.Response) -> Optional[socket.socket]:
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:  # urllib3 1.x
        fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock


def set_read_timeout(response: requests.Response, seconds: float) -> None:
    """Change the socket read timeout of an open streaming response (first-event vs idle)."""
    sock = _socket(response)
    if sock is not None:
        sock.settimeout(seconds)


def abort(response: requests.Response) -> None:
    """Cut a streaming response's connection from another thread (a blocked read returns)."""
    sock = _socket(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
