"""A scriptable fake Kiro upstream: a real loopback HTTP/1.1 server speaking the event stream.

Point KIROPROXY_KIRO_API_URL, KIROPROXY_KIRO_AUTH_URL and KIROPROXY_AWS_OIDC_URL at `fake.url`.
Test support only: it never leaves 127.0.0.1 and never sleeps on the test's behalf.

    with FakeKiro() as fake:                          # or fake = FakeKiro().start(); ...; fake.stop()
        fake.queue(text_answer("Hi"), token="acc-A")  # chat: this access token's queue first,
        fake.queue(throttled("3"))                    # then the shared FIFO, then default_script()
        fake.route(lambda r: "score" in r.body.decode(), text_answer("{}"))  # before any queue, every match
        fake.queue_refresh(Reply(400, {"error": "invalid_grant"}), refresh_token="rt-A")
        fake.queue_token(Reply(400, {"error": "authorization_pending"}), grant=DEVICE_CODE_GRANT)
        fake.queue_models(Reply(500)); fake.queue_usage(Reply(403)); fake.queue_json("POST", "/x", Reply())
        fake.device_interval = 0; fake.device_expires_in = 1   # what /device_authorization answers
        fake.models = [...]; fake.models_page_size = 2; fake.usage = {...}; fake.rotate_refresh = True
        fake.new_connection_delay = 0.1   # each new TCP connection waits this long before its request
                                          # is read (a TCP + TLS handshake; benchmarks only)
        fake.connections_opened           # TCP connections accepted so far
        fake.wait_gate("gate", 5); fake.release("gate"); fake.wait_disconnect(5); fake.wait_streams(1, 5)
        fake.requests / fake.requests_to(path) / fake.wait_requests(n, path, timeout)  -> [Recorded]
        fake.streams -> [StreamResult(token, outcome, frames_sent)]
        fake.refresh_count; fake.refresh_tokens_seen
        fake.refreshes -> [Refreshed(sent, issued, at)]  # social refreshes answered, when fully sent

Routes: POST /generateAssistantResponse (also /SendMessageStreaming and RPC `POST /` by x-amz-target),
GET /ListAvailableModels (nextToken paging), GET /getUsageLimits, POST /refreshToken, POST /token;
sign-in (kiro-upstream.md §10): POST /client/register, POST /device_authorization, GET /login (the
social sign-in page: answers the 302 to kiro://...?code=&state= a browser would follow) and
POST /oauth/token (checks the PKCE verifier against the challenge /login saw: wrong -> 400).
A queue_json reply for one of these paths answers first. Unscripted device-code polls succeed at
once (script pending / slow_down with queue_token(..., grant=DEVICE_CODE_GRANT)). A POST
/client/register without a clientName is not a registration: it answers like an unknown path.
Issued refresh tokens are longer than 100 characters, as real ones are.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, Hashable, List, Optional, Set, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from requests.structures import CaseInsensitiveDict

from .scripts import (
    SOCIAL_PROFILE_ARN,
    Drop,
    Gate,
    Reply,
    Script,
    default_models,
    default_script,
    default_usage,
)

log = logging.getLogger(__name__)

REFRESH_GRANT = "refresh_token"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
AUTHORIZATION_CODE_GRANT = "authorization_code"
EVENTSTREAM = "application/vnd.amazon.eventstream"

# Stream outcomes recorded in StreamResult.outcome.
COMPLETE = "complete"          # every step written and the body terminated
DISCONNECTED = "disconnected"  # the client closed the connection before the end
DROPPED = "dropped"            # the script's drop() cut the connection
HOLD_TIMEOUT = "hold-timeout"  # a gate was never released; the connection was cut
HTTP_ERROR = "http-error"      # the script answered a non-200 status
STOPPED = "stopped"            # fake.stop() ended a held stream; the connection was cut

_POLL = 0.01  # how often a held stream looks for a client disconnect, in seconds
SOCIAL_REDIRECT_URI = "kiro://kiro.kiroAgent/authenticate-success"
_RPC_OPERATIONS = {"GenerateAssistantResponse": "chat", "SendMessage": "chat",
                   "ListAvailableModels": "models", "GetUsageLimits": "usage"}


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it. `headers` is case-insensitive; `json` is None if not JSON."""

    method: str
    path: str
    query: Dict[str, str]
    headers: CaseInsensitiveDict
    json: Any
    body: bytes
    token: Optional[str]
    connection: int = 0  # which TCP connection carried it: 1 for the first the fake accepted


@dataclass(frozen=True)
class Refreshed:
    """A social refresh the fake answered: the refresh token sent, the one issued (the same unless
    rotate_refresh), and time.monotonic() once the answer was written."""

    sent: str
    issued: str
    at: float


@dataclass(frozen=True)
class StreamResult:
    token: Optional[str]
    outcome: str
    frames_sent: int


class _Queues:
    """FIFO queues under several keys; pop() takes from the first non-empty key. Caller locks."""

    def __init__(self) -> None:
        self._queues: Dict[Hashable, Deque[Any]] = {}

    def push(self, key: Hashable, items: tuple) -> None:
        self._queues.setdefault(key, deque()).extend(items)

    def pop(self, *keys: Hashable) -> Any:
        for key in keys:
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        return None


class FakeKiro:
    """The fake upstream. Every public method is thread-safe; scripts are taken in FIFO order."""

    def __init__(self, hold_timeout: float = 30.0) -> None:
        self.hold_timeout = hold_timeout
        self.models: List[dict] = default_models()
        self.models_page_size: Optional[int] = None
        self.usage: dict = default_usage()
        self.profile_arn = SOCIAL_PROFILE_ARN
        self.rotate_refresh = False
        self.device_interval = 5
        self.device_expires_in = 600
        self.new_connection_delay = 0.0
        self._connections_opened = 0
        self._clients: Dict[str, str] = {}             # clientId -> clientSecret (/client/register)
        self._social_codes: Dict[str, str] = {}        # code -> code_challenge (/login), used once
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queues = _Queues()
        self._routes: List[Tuple[Callable[[Recorded], bool], Script]] = []
        self._events: Dict[str, threading.Event] = {}
        self._reached: Set[str] = set()
        self._requests: List[Recorded] = []
        self._streams: List[StreamResult] = []
        self._refresh_tokens: List[str] = []
        self._refreshed: List[Refreshed] = []
        self._serial = itertools.count(1)
        self._connections: Set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> FakeKiro:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-kiro", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every waiting stream, cut open connections and close the listening socket."""
        if self._server is None:
            return
        self._stopping.set()
        with self._lock:
            for event in self._events.values():
                event.set()
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeKiro:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeKiro is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, predicate: Callable[[Recorded], bool], script: Script) -> None:
        """Answer every chat request for which predicate(recorded) is true with `script`.

        Routes are checked in the order added, before the queues, and stay until the fake stops:
        for a client that makes a side call (e.g. Gemini CLI's JSON router) an unknown number of times.
        """
        with self._lock:
            self._routes.append((predicate, script))

    def queue(self, *scripts: Script, token: Optional[str] = None) -> None:
        """Chat answers, FIFO. With `token`, only requests bearing that access token take them."""
        with self._lock:
            self._queues.push(("chat", token), scripts)

    def queue_refresh(self, *replies: Reply, refresh_token: Optional[str] = None) -> None:
        """Answers of POST /refreshToken (social); a 200 reply with body None issues fresh tokens."""
        with self._lock:
            self._queues.push(("refresh", refresh_token), replies)

    def queue_token(self, *replies: Reply, grant: str = REFRESH_GRANT,
                    refresh_token: Optional[str] = None) -> None:
        """Answers of POST /token (OIDC) for one grantType, e.g. DEVICE_CODE_GRANT polling replies."""
        with self._lock:
            self._queues.push(("token", grant, refresh_token), replies)

    def queue_models(self, *replies: Reply, token: Optional[str] = None) -> None:
        with self._lock:
            self._queues.push(("models", token), replies)

    def queue_usage(self, *replies: Reply, token: Optional[str] = None) -> None:
        with self._lock:
            self._queues.push(("usage", token), replies)

    def queue_json(self, method: str, path: str, *replies: Reply) -> None:
        """Replies for any other route (e.g. POST /client/register); unscripted paths answer 404."""
        with self._lock:
            self._queues.push(("json", method.upper(), path), replies)

    def release(self, name: str = "gate") -> None:
        """Open a gate (or end a slow first byte) for every stream waiting on `name`, now and later."""
        self._event(name).set()

    @property
    def requests(self) -> List[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> List[Recorded]:
        return [r for r in self.requests if r.path == path]

    @property
    def streams(self) -> List[StreamResult]:
        with self._lock:
            return list(self._streams)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    def wait_connections(self, count: int, timeout: float = 5.0) -> bool:
        """True once `count` TCP connections have been accepted in all."""
        return self._wait_until(lambda: self._connections_opened >= count, timeout)

    @property
    def refresh_tokens_seen(self) -> List[str]:
        with self._lock:
            return list(self._refresh_tokens)

    @property
    def refreshes(self) -> List[Refreshed]:
        with self._lock:
            return list(self._refreshed)

    @property
    def refresh_count(self) -> int:
        return len(self.refresh_tokens_seen)

    def wait_requests(self, count: int, path: Optional[str] = None, timeout: float = 5.0) -> bool:
        return self._wait_until(
            lambda: sum(1 for r in self._requests if path is None or r.path == path) >= count, timeout)

    def wait_gate(self, name: str = "gate", timeout: float = 5.0) -> bool:
        """True once a stream has written everything before gate `name` and is held there."""
        return self._wait_until(lambda: name in self._reached, timeout)

    def wait_streams(self, count: int, timeout: float = 5.0) -> bool:
        """True once `count` chat answers have ended (any outcome)."""
        return self._wait_until(lambda: len(self._streams) >= count, timeout)

    def wait_disconnect(self, timeout: float = 5.0, count: int = 1) -> bool:
        return self._wait_until(
            lambda: sum(1 for s in self._streams if s.outcome == DISCONNECTED) >= count, timeout)

    def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            event = self._events.setdefault(name, threading.Event())
            if self._stopping.is_set():
                event.set()
            return event

    def _record(self, **changes: Any) -> None:
        with self._changed:
            if "request" in changes:
                self._requests.append(changes["request"])
            if "stream" in changes:
                self._streams.append(changes["stream"])
            if "reached" in changes:
                self._reached.add(changes["reached"])
            if "refresh_token" in changes:
                self._refresh_tokens.append(changes["refresh_token"])
            if "refreshed" in changes:
                self._refreshed.append(changes["refreshed"])
            self._changed.notify_all()

    def _next_script(self, request: Recorded) -> Script:
        with self._lock:
            for predicate, script in self._routes:
                if predicate(request):
                    return script
            return self._queues.pop(("chat", request.token), ("chat", None)) or default_script()

    def _next_reply(self, *keys: Hashable) -> Optional[Reply]:
        with self._lock:
            return self._queues.pop(*keys)

    def _issue_tokens(self, refresh_token: Optional[str]) -> dict:
        serial = next(self._serial)
        if self.rotate_refresh or not refresh_token:
            refresh_token = f"fake-refresh-{serial}-".ljust(120, "r")  # real ones are long; short ones are refused
        return {"accessToken": f"fake-access-{serial}", "refreshToken": refresh_token, "expiresIn": 3600}

    def _register_client(self) -> Tuple[str, str]:
        serial = next(self._serial)
        client = (f"fake-client-{serial}", f"fake-client-secret-{serial}")
        with self._lock:
            self._clients[client[0]] = client[1]
        return client

    def _client_ok(self, client_id: Any, client_secret: Any) -> bool:
        """Clients this fake registered must present their secret; others pass (older tests use any)."""
        with self._lock:
            known = self._clients.get(client_id)
        return known is None or known == client_secret

    def _issue_social_code(self, challenge: str) -> str:
        code = f"fake-code-{next(self._serial)}"
        with self._lock:
            self._social_codes[code] = challenge
        return code

    def _redeem_social_code(self, code: Any) -> Optional[str]:
        with self._lock:
            return self._social_codes.pop(code, None) if isinstance(code, str) else None

    def _track(self, connection: socket.socket, alive: bool) -> int:
        """Count a connection opening (returns its number) or closing."""
        with self._changed:
            (self._connections.add if alive else self._connections.discard)(connection)
            if alive:
                self._connections_opened += 1
                self._changed.notify_all()
            return self._connections_opened


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open 64 connections at once; 5 would drop SYNs
    fake: FakeKiro

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping a kept-alive connection is routine; anything else is a fake bug.
        log.debug("fake kiro: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeKiro/1.0"

    server: _Server

    @property
    def fake(self) -> FakeKiro:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        # Frames are small separate writes; Nagle plus delayed ACKs would stall each by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_number = self.fake._track(self.connection, True)
        if self.fake.new_connection_delay:
            # A handshake's round trips: the client's request waits, a connection opened early does not.
            time.sleep(self.fake.new_connection_delay)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake kiro: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        auth = self.headers.get("Authorization", "")
        request = Recorded(method=self.command, path=parts.path, query=dict(parse_qsl(parts.query)),
                           headers=CaseInsensitiveDict(self.headers.items()), json=document, body=body,
                           token=auth[7:].strip() if auth.lower().startswith("bearer ") else None,
                           connection=self.connection_number)
        self.fake._record(request=request)
        route = self._route(request)
        if route == "chat":
            _Stream(self, request.token).run(self.fake._next_script(request))
        elif route == "models":
            self._models(request)
        elif route == "usage":
            reply = self.fake._next_reply(("usage", request.token), ("usage", None))
            self._reply(reply, self.fake.usage)
        elif route == "refresh":
            self._refresh(request)
        elif route == "token":
            self._token(request)
        elif route in _SIGN_IN:
            scripted = self.fake._next_reply(("json", request.method, request.path))
            if scripted is not None:
                self._reply(scripted, {})
            else:
                getattr(self, _SIGN_IN[route])(request)
        else:
            reply = self.fake._next_reply(("json", request.method, request.path))
            self._reply(reply or Reply(404, {"message": f"no route for {request.method} {request.path}"}), {})

    def _route(self, request: Recorded) -> str:
        if request.method == "POST" and request.path == "/":
            target = request.headers.get("x-amz-target", "")
            return _RPC_OPERATIONS.get(target.rsplit(".", 1)[-1], "")
        return {("POST", "/generateAssistantResponse"): "chat", ("POST", "/SendMessageStreaming"): "chat",
                ("GET", "/ListAvailableModels"): "models", ("GET", "/getUsageLimits"): "usage",
                ("POST", "/refreshToken"): "refresh", ("POST", "/token"): "token",
                ("POST", "/device_authorization"): "device", ("GET", "/login"): "login",
                ("POST", "/oauth/token"): "social-token",
                ("POST", "/client/register"): "register" if _field(request, "clientName") else "",
                }.get((request.method, request.path), "")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _models(self, request: Recorded) -> None:
        reply = self.fake._next_reply(("models", request.token), ("models", None))
        params = {**request.query, **(request.json if isinstance(request.json, dict) else {})}
        models = list(self.fake.models)
        start = int(params.get("nextToken") or 0)
        size = self.fake.models_page_size or int(params.get("maxResults") or 0) or len(models) or 1
        page: Dict[str, Any] = {"defaultModel": {"modelId": "auto"}, "models": models[start:start + size]}
        if start + size < len(models):
            page["nextToken"] = str(start + size)
        self._reply(reply, page)

    def _refresh(self, request: Recorded) -> None:
        sent = request.json.get("refreshToken") if isinstance(request.json, dict) else None
        self.fake._record(refresh_token=sent or "")
        reply = self.fake._next_reply(("refresh", sent), ("refresh", None))
        issued = self.fake._issue_tokens(sent)
        self._reply(reply, {**issued, "profileArn": self.fake.profile_arn})
        if reply is None or (reply.status == 200 and reply.body is None):
            self.fake._record(refreshed=Refreshed(sent or "", issued["refreshToken"], time.monotonic()))

    def _token(self, request: Recorded) -> None:
        document = request.json if isinstance(request.json, dict) else {}
        grant = document.get("grantType", "")
        sent = document.get("refreshToken") if grant == REFRESH_GRANT else None
        if grant == REFRESH_GRANT:
            self.fake._record(refresh_token=sent or "")
        reply = self.fake._next_reply(("token", grant, sent), ("token", grant, None))
        if reply is None and grant == DEVICE_CODE_GRANT and not self.fake._client_ok(
                document.get("clientId"), document.get("clientSecret")):
            reply = Reply(400, {"error": "invalid_client", "error_description": "Invalid client secret"})
        if grant in (REFRESH_GRANT, DEVICE_CODE_GRANT, AUTHORIZATION_CODE_GRANT):
            # Unscripted logins succeed at once; a later test scripts authorization_pending etc.
            self._reply(reply, {**self.fake._issue_tokens(sent), "tokenType": "Bearer"})
        else:
            self._reply(reply or Reply(400, {"error": "unsupported_grant_type"}), {})

    def _register(self, request: Recorded) -> None:
        client_id, client_secret = self.fake._register_client()
        now = int(time.time())
        self._reply(None, {"clientId": client_id, "clientSecret": client_secret, "clientIdIssuedAt": now,
                           "clientSecretExpiresAt": now + 90 * 86400})

    def _device(self, request: Recorded) -> None:
        if not self.fake._client_ok(_field(request, "clientId"), _field(request, "clientSecret")):
            self._reply(Reply(400, {"error": "invalid_client", "error_description": "Invalid client secret"}), {})
            return
        serial = next(self.fake._serial)
        user_code = f"FAKE-{serial:04d}"
        verification = self.fake.url + "/device"
        self._reply(None, {"deviceCode": f"fake-device-code-{serial}", "userCode": user_code,
                           "verificationUri": verification,
                           "verificationUriComplete": f"{verification}?user_code={user_code}",
                           "expiresIn": self.fake.device_expires_in, "interval": self.fake.device_interval})

    def _login(self, request: Recorded) -> None:
        query = request.query
        if (query.get("idp") not in ("Google", "Github") or query.get("redirect_uri") != SOCIAL_REDIRECT_URI
                or query.get("code_challenge_method") != "S256" or not query.get("code_challenge")
                or not query.get("state")):
            self._reply(Reply(400, {"message": "invalid sign-in request"}), {})
            return
        code = self.fake._issue_social_code(query["code_challenge"])
        location = f"{SOCIAL_REDIRECT_URI}?{urlencode({'code': code, 'state': query['state']})}"
        self._reply(Reply(302, {"location": location}, (("Location", location),)), {})

    def _social_token(self, request: Recorded) -> None:
        challenge = self.fake._redeem_social_code(_field(request, "code"))
        verifier = _field(request, "code_verifier")
        if (challenge is None or _field(request, "redirect_uri") != SOCIAL_REDIRECT_URI
                or not isinstance(verifier, str) or _s256(verifier) != challenge):
            self._reply(Reply(400, {"error": "invalid_grant", "message": "Invalid code or code verifier"}), {})
            return
        self._reply(None, {**self.fake._issue_tokens(None), "profileArn": self.fake.profile_arn})

    def _reply(self, reply: Optional[Reply], default_body: object) -> None:
        reply = reply or Reply()
        document = reply.body
        if document is None:
            failure = {"message": "scripted failure", "reason": None}
            document = default_body if reply.status == 200 else failure
        data = json.dumps(document).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


_SIGN_IN = {"register": "_register", "device": "_device", "login": "_login", "social-token": "_social_token"}


def _field(request: Recorded, name: str) -> Any:
    return request.json.get(name) if isinstance(request.json, dict) else None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _Stream:
    """Writes one chat Script to the socket, noticing when the client goes away."""

    def __init__(self, handler: _Handler, token: Optional[str]) -> None:
        self.handler = handler
        self.fake = handler.fake
        self.token = token
        self.frames_sent = 0

    def run(self, script: Script) -> None:
        outcome = self._play(script)
        if outcome != COMPLETE:
            self.handler.close_connection = True
        if outcome in (DISCONNECTED, DROPPED, HOLD_TIMEOUT, STOPPED):
            self._cut()
        self.fake._record(stream=StreamResult(self.token, outcome, self.frames_sent))

    def _play(self, script: Script) -> str:
        if script.first_byte_wait is not None:
            name, seconds = script.first_byte_wait
            outcome = self._hold(self.fake._event(name), seconds)
            if outcome:
                return outcome
        handler = self.handler
        if script.status != 200:
            handler.send_response(script.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(script.body)))
            for name, value in script.headers:
                handler.send_header(name, value)
            return HTTP_ERROR if self._flush_headers() and self._write(script.body) else DISCONNECTED
        handler.send_response(200)
        handler.send_header("Content-Type", EVENTSTREAM)
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in script.headers:
            handler.send_header(name, value)
        if not self._flush_headers():
            return DISCONNECTED
        for number, step in enumerate(script.steps):
            if number and script.interval:
                time.sleep(script.interval)
            outcome = self._step(step)
            if outcome:
                return outcome
        # Not checked for a disconnect: a client that read every frame may close right away.
        self._write(b"0\r\n\r\n")
        return COMPLETE

    def _step(self, step: object) -> Optional[str]:
        if isinstance(step, Drop):
            return DROPPED
        if isinstance(step, Gate):
            self.fake._record(reached=step.name)
            gate = self.fake._event(step.name)
            return self._hold(gate, self.fake.hold_timeout, timeout_outcome=HOLD_TIMEOUT)
        assert isinstance(step, bytes)
        if self._peer_closed() or not self._write(b"%x\r\n%s\r\n" % (len(step), step)):
            return DISCONNECTED
        self.frames_sent += 1
        return None

    def _hold(self, event: threading.Event, seconds: float,
              timeout_outcome: Optional[str] = None) -> Optional[str]:
        """Wait for `event`, watching the socket.

        Returns DISCONNECTED, STOPPED, timeout_outcome after `seconds`, or None once released.
        """
        deadline = time.monotonic() + seconds
        while not event.wait(_POLL):
            if self._peer_closed():
                return DISCONNECTED
            if time.monotonic() >= deadline:
                log.debug("fake kiro: hold expired after %.1f s", seconds)
                return timeout_outcome
        if self.fake._stopping.is_set():
            return STOPPED
        return DISCONNECTED if self._peer_closed() else None

    def _peer_closed(self) -> bool:
        """True if the client closed its side: the socket reads EOF (or a reset) without blocking.

        The request body is already consumed and a client never pipelines during a stream,
        so a readable socket here means the connection is gone.
        """
        connection = self.handler.connection
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            if not readable:
                return False
            return connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _flush_headers(self) -> bool:
        try:
            self.handler.end_headers()
            return True
        except OSError:
            return False

    def _write(self, data: bytes) -> bool:
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
            return True
        except OSError:
            return False

    def _cut(self) -> None:
        try:
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client is already gone
