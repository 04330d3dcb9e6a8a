"""Property-based fuzzing of every endpoint against the real server (waitress on loopback, the fake
Kiro upstream): whatever the body, query string, path segment or header, the answer is never a 5xx
other than the documented upstream-unavailable ones (502, 503, 504, 529), and every admin view
still answers afterwards.

Bodies are generated three ways: any JSON value; a valid body of the endpoint with values
replaced by others of any type at any depth; and a valid body's bytes cut short or with bytes
spliced in (invalid UTF-8, an encoded surrogate, a NUL). Fixed seed (derandomize), no example
database: the same cases on every run.
"""
from __future__ import annotations

import copy
import json
import os
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Proxy

UPSTREAM_UNAVAILABLE = {502, 503, 504, 529}
CLIENT_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 1500))   # per client test below
ADMIN_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 1500))

ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
OPENAI = {"Authorization": "Bearer k"}
GEMINI = {"x-goog-api-key": "k"}

MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 16, "stream": False, "system": "be brief",
            "temperature": 0.5, "stop_sequences": ["x"], "metadata": {"user_id": "u"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "Read", "description": "d", "input_schema": {"type": "object", "properties": {
                "p": {"type": "string"}}}}], "tool_choice": {"type": "auto"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {
                "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "assistant",
                 "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": "a"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}
CHAT = {"model": "gpt-4o", "stream": False, "max_tokens": 16, "temperature": 1, "n": 1, "stop": ["x"],
        "response_format": {"type": "json_object"}, "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "json please"}, {
                         "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                             "function": {"name": "Read",
                                                                                          "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}
RESPONSES = {"model": "gpt-4o", "stream": False, "instructions": "be brief", "max_output_tokens": 16,
             "store": True, "reasoning": {"effort": "low"}, "text": {"format": {"type": "text"}},
             "tools": [{"type": "function", "name": "Read", "parameters": {"type": "object"}}],
             "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                       {"type": "function_call", "call_id": "c1", "name": "Read", "arguments": "{}"},
                       {"type": "function_call_output", "call_id": "c1", "output": "ok"}]}
GEMINI_BODY = {"systemInstruction": {"parts": [{"text": "be brief"}]},
               "generationConfig": {"maxOutputTokens": 16, "temperature": 0.5, "stopSequences": ["x"],
                                    "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 128},
                                    "responseMimeType": "application/json"},
               "tools": [{"functionDeclarations": [{"name": "Read", "parameters": {"type": "OBJECT"}}]}],
               "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
               "contents": [{"role": "user", "parts": [{"text": "hi"}, {
                   "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                   {"role": "model", "parts": [{"functionCall": {"name": "Read", "args": {"p": "a"}}}]},
                   {"role": "user", "parts": [{"functionResponse": {"name": "Read", "response": {"r": "ok"}}}]}]}

# (path, headers, a valid body): every client endpoint that takes a body.
CLIENT_ENDPOINTS: List[Tuple[str, Dict[str, str], Dict[str, Any]]] = [
    ("/v1/messages", ANTHROPIC, MESSAGES),
    ("/v1/messages/count_tokens", ANTHROPIC, {k: v for k, v in MESSAGES.items() if k != "max_tokens"}),
    ("/v1/chat/completions", OPENAI, CHAT),
    ("/v1/responses", OPENAI, RESPONSES),
    ("/v1beta/models/gemini-2.5-pro:generateContent", GEMINI, GEMINI_BODY),
    ("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", GEMINI, GEMINI_BODY),
    ("/v1/models/gemini-2.5-pro:streamGenerateContent", GEMINI, GEMINI_BODY),
    ("/v1beta/models/gemini-2.5-pro:countTokens", GEMINI, GEMINI_BODY),
]

# ----- strategies ---------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", " ", "\x00", "\ufffd", "😀", "a" * 300, "auto", "gpt-4o", "claude-sonnet-4-6", "user", "assistant",
     "text", "image", "tool_use", "function", "base64", "data:,", "true", "-1", "1e999", "../..", "%00"])
NUMBERS = (st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 1e308, -0.0, 0.5]))
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)
SPLICE = st.sampled_from([b"\xed\xa0\x80", b"\xff", b"\xc3", b"\x00", b"\\ud800", b"\\", b'"', b"}", b"]", b",",
                          b"NaN", b"1e400", b"-", b"\xef\xbb\xbf", b"[" * 200])


def _paths(value: Any, at: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every key path of a JSON value (the value itself first)."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


def _replace(body: Any, path: Tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return body


@st.composite
def mutated(draw, template: Dict[str, Any]) -> Any:
    """`template` with one to three values (any depth) replaced, removed or given a new sibling."""
    body = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)[1:] or [()]
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        try:
            if how == "replace":
                body = _replace(body, path, draw(JSON))
            elif how == "drop" and path:
                parent = body
                for step in path[:-1]:
                    parent = parent[step]
                del parent[path[-1]]
            else:
                parent = body
                for step in path[:-1]:
                    parent = parent[step]
                if isinstance(parent, dict):
                    parent[draw(TEXT)] = draw(JSON)
                elif isinstance(parent, list):
                    parent.append(draw(JSON))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the place
    return body


@st.composite
def raw_body(draw, template: Dict[str, Any]) -> bytes:
    """Bytes: any JSON, a mutated valid body, or a valid body cut short or with bytes spliced in."""
    kind = draw(st.sampled_from(["json", "mutated", "mutated", "mutated", "bytes", "empty"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\n", b"{}"]))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    body = draw(mutated(template))
    data = json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:at]
        else:
            data = data[:at] + draw(SPLICE) + data[at:]
    return data


CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "application/json; charset=latin-1", "", "*/*"])
# Mostly JSON: other content types are refused (415) before the body is read.
JSON_MOSTLY = st.just("application/json") | st.just("application/json; charset=utf-8") | CONTENT_TYPES
SEGMENT = st.binary(max_size=12) | st.sampled_from([b"\xed\xa0\x80", b"..", b"%", b"models", b"gpt-4o", b":",
                                                    b"resp_x", b"\x00", b"a" * 400])


def quoted(data: bytes) -> str:
    return quote(data, safe="")


QUERY = st.lists(st.tuples(st.sampled_from(["alt", "key", "q", "limit", "offset", "cursor", "since", "until",
                                            "model", "state", "format", "errors", "has_error", "bookmarked",
                                            "include_secrets", "id", "ids", "x"]), SEGMENT), max_size=3)


def query_string(pairs: List[Tuple[str, bytes]]) -> str:
    return "&".join(f"{name}={quoted(value)}" for name, value in pairs)


# ----- the checks ---------------------------------------------------------------------------------


class Sent:
    def __init__(self) -> None:
        self.count = 0
        self.statuses: Counter = Counter()

    def report(self, name: str) -> None:
        print(f"\n{name}: {self.count} requests, by status {dict(sorted(self.statuses.items()))}")


def send(proxy: Proxy, sent: Sent, method: str, path: str, headers: Dict[str, Any],
         data: Optional[bytes] = None) -> int:
    response = proxy.http.request(method, proxy.url + path, data=data, headers=headers, timeout=30, stream=True)
    with response:
        for _ in response.iter_content(65536):
            pass  # a stream must end cleanly too
    sent.count += 1
    status = response.status_code
    sent.statuses[status] += 1
    assert status < 500 or status in UPSTREAM_UNAVAILABLE, (method, path, data[:300] if data else data, status)
    return status


def admin_views_answer(proxy: Proxy, sent: Sent) -> None:
    assert proxy.services.flows.flush(20)
    auth = {"Authorization": "Bearer test-admin-key"}
    for path in ("/api/flows", "/api/logs", "/api/logs?format=text", "/api/stats", "/api/stats/detailed",
                 "/api/flows/stats", "/api/status", "/api/flows?q=a"):
        assert send(proxy, sent, "GET", path, auth) == 200, path
    for flow in proxy.admin("GET", "/flows", params={"limit": 500}).json()["flows"]:
        assert send(proxy, sent, "GET", f"/api/flows/{flow['id']}", auth) == 200
    assert send(proxy, sent, "POST", "/api/flows/export", {**auth, "Content-Type": "application/json"}, b"{}") == 200


def fuzz_settings(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture
def fuzzed(make_proxy):
    proxy = make_proxy(flows_max_count=2000)
    proxy.add_account("acc-A")
    return proxy


def test_fuzz_client_bodies(fuzzed):
    """Generated bodies, content types and header values on every client endpoint that takes one."""
    sent = Sent()

    @fuzz_settings(CLIENT_EXAMPLES)
    @given(endpoint=st.sampled_from(CLIENT_ENDPOINTS), data=st.data(), content_type=JSON_MOSTLY,
           stream=st.booleans())
    def run(endpoint, data, content_type, stream):
        path, headers, template = endpoint
        if "stream" in template and not path.startswith("/v1beta"):
            template = {**template, "stream": stream}
        body = data.draw(raw_body(template))
        send(fuzzed, sent, "POST", path, {**headers, "Content-Type": content_type}, body)

    run()
    admin_views_answer(fuzzed, sent)
    sent.report("client bodies")
    assert sent.count >= CLIENT_EXAMPLES


def test_fuzz_client_paths_queries_and_headers(fuzzed):
    """Generated path segments (the Gemini model, a model id, a response id), query strings and
    header values (raw bytes included) on every client route."""
    sent = Sent()
    routes = [("POST", "/v1beta/models/{}:generateContent", GEMINI), ("POST", "/v1/models/{}:countTokens", GEMINI),
              ("POST", "/v1beta/models/{}", GEMINI), ("GET", "/v1beta/models/{}", GEMINI),
              ("GET", "/v1/models/{}", OPENAI), ("GET", "/v1/responses/{}", OPENAI), ("GET", "/v1/models", ANTHROPIC),
              ("GET", "/v1beta/models", GEMINI), ("POST", "/v1/{}", OPENAI), ("GET", "/{}", {}),
              ("POST", "/v1/messages", ANTHROPIC), ("POST", "/v1/chat/completions", OPENAI)]

    @fuzz_settings(CLIENT_EXAMPLES)
    @given(route=st.sampled_from(routes), segment=SEGMENT, query=QUERY, header=SEGMENT,
           header_name=st.sampled_from(["x-api-key", "Authorization", "anthropic-version", "User-Agent",
                                        "x-goog-api-key", "anthropic-beta", "x-claude-code-session-id"]))
    def run(route, segment, query, header, header_name):
        method, template, headers = route
        path = template.format(quoted(segment)) + ("?" + query_string(query) if query else "")
        value = header.replace(b"\r", b"").replace(b"\n", b"").lstrip(b" \t\x0b\x0c")
        body = json.dumps(GEMINI_BODY if "models/" in template else MESSAGES if "messages" in template else CHAT)
        headers = {**headers, "Content-Type": "application/json", header_name: value}
        send(fuzzed, sent, method, path, headers, body.encode() if method == "POST" else None)

    run()
    admin_views_answer(fuzzed, sent)
    sent.report("client paths, queries and headers")
    assert sent.count >= CLIENT_EXAMPLES


ADMIN_ROUTES = [
    ("GET", "/accounts"), ("POST", "/accounts"), ("GET", "/accounts/{}"), ("PATCH", "/accounts/{}"),
    ("POST", "/accounts/{}/toggle"), ("POST", "/accounts/{}/restore"), ("GET", "/accounts/{}/usage"),
    ("POST", "/accounts/{}/refresh"), ("DELETE", "/accounts/{}"), ("GET", "/quota"), ("GET", "/token/scan"),
    ("POST", "/token/add-from-scan"), ("POST", "/token/refresh-check"), ("GET", "/config/export"),
    ("POST", "/config/import"), ("GET", "/flows"), ("GET", "/flows/stats"), ("GET", "/flows/{}"),
    ("POST", "/flows/{}/bookmark"), ("POST", "/flows/export"), ("GET", "/flows/export"), ("GET", "/stats"),
    ("GET", "/stats/detailed"), ("GET", "/logs"), ("GET", "/status"), ("GET", "/kiro/login/poll"),
    ("POST", "/kiro/login/cancel"), ("POST", "/kiro/social/exchange"), ("GET", "/{}"), ("PUT", "/flows"),
]
ADMIN_TEMPLATES = {
    "/accounts": {"name": "n", "token": {"accessToken": "a", "refreshToken": "r", "expiresAt": "2030-01-01T00:00:00Z",
                                         "authMethod": "social", "provider": "Google"}},
    "/accounts/{}": {"name": "n", "proxy_url": "http://127.0.0.1:9", "enabled": True},
    "/accounts/{}/toggle": {"enabled": False},
    "/token/add-from-scan": {"path": "/nonexistent/x.json", "name": "n"},
    "/config/import": {"version": 1, "accounts": [{"name": "n", "refreshToken": "r"}], "settings": {"port": 1}},
    "/flows/{}/bookmark": {"bookmarked": True, "note": "n", "tags": ["a"]},
    "/flows/export": {"format": "jsonl", "include_bodies": True, "model": "m", "since": 0, "ids": ["x"]},
    "/kiro/login/cancel": {"id": "x"},
    "/kiro/social/exchange": {"url": "kiro://x?code=c&state=s", "state": "s", "id": "x"},
}


def test_fuzz_admin_api(fuzzed):
    """Generated bodies, path segments and query strings on every admin route."""
    sent = Sent()
    account = fuzzed.admin("GET", "/accounts").json()["accounts"][0]["id"]
    flow = fuzzed.admin("GET", "/flows").json()["flows"]
    segments = SEGMENT | st.sampled_from([account.encode(), (flow[0]["id"] if flow else "0" * 32).encode()])

    @fuzz_settings(ADMIN_EXAMPLES)
    @given(route=st.sampled_from(ADMIN_ROUTES), data=st.data(), segment=segments, query=QUERY,
           content_type=CONTENT_TYPES)
    def run(route, data, segment, query, content_type):
        method, template = route
        path = "/api" + template.format(quoted(segment)) + ("?" + query_string(query) if query else "")
        body = data.draw(raw_body(ADMIN_TEMPLATES.get(template, {}))) if method != "GET" else None
        headers = {"Authorization": "Bearer test-admin-key", "Content-Type": content_type}
        send(fuzzed, sent, method, path, headers, body)

    run()
    admin_views_answer(fuzzed, sent)
    sent.report("admin API")
    assert sent.count >= ADMIN_EXAMPLES
