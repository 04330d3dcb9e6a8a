"""What the fake Kiro upstream answers: chat scripts, JSON replies and default documents.

A Script is an immutable builder; each method returns a new Script with one more step, so a
base script can be shared between tests. Pure data: nothing here touches sockets or threads.

    Script().text("Hel", "lo").tool_use("t1", "get_weather", '{"city":', '"Paris"}').context_usage(12.5)
    Script().text("a").gate("mid").text("b").context_usage(3)     # pauses until fake.release("mid")
    Script().slow_first_byte(5)                                    # waits before the status line
    text_answer(*chunks).paced(0.002)                              # frames 2 ms apart (benchmarks only)
    throttled(retry_after="3"), bearer_invalid(), suspended(), monthly_limit(), server_error(),
    improperly_formed(), http_error(status, message, reason=None, headers=None, body=None)
    Reply(400, {...}) for the JSON endpoints; oauth_error("authorization_pending") for token polls
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from kiroproxy.kiro import eventstream

DEFAULT_TEXT = "Hello from fake Kiro"
DEFAULT_CONTEXT_USAGE = 1.5
SOCIAL_PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"


@dataclass(frozen=True)
class Gate:
    """Pause the stream until the test calls fake.release(name) (or the fake's hold timeout)."""

    name: str


@dataclass(frozen=True)
class Drop:
    """Close the connection abruptly: no chunked terminator, the client sees a broken body."""


Step = Union[bytes, Gate, Drop]


@dataclass(frozen=True)
class Script:
    """One answer of POST /generateAssistantResponse.

    status 200 streams `steps` (frames, raw bytes, gates, drops) as a chunked event stream;
    any other status answers `body` (JSON bytes) with `headers`. `first_byte_wait` is
    (event name, max seconds) to wait before sending anything; `interval` is a pause, in seconds,
    between two byte steps (benchmarks pace an answer like a model does; tests leave it 0).
    """

    status: int = 200
    body: bytes = b""
    headers: Tuple[Tuple[str, str], ...] = ()
    steps: Tuple[Step, ...] = ()
    first_byte_wait: Optional[Tuple[str, float]] = None
    interval: float = 0.0

    def _then(self, *steps: Step) -> Script:
        return replace(self, steps=self.steps + steps)

    def event(self, event_type: str, payload: object) -> Script:
        return self._then(eventstream.event(event_type, payload))

    def raw(self, *chunks: bytes) -> Script:
        """Arbitrary bytes, each written (and flushed) as its own chunk."""
        return self._then(*chunks)

    def text(self, *chunks: str) -> Script:
        return self._then(*(eventstream.event("assistantResponseEvent", {"content": c}) for c in chunks))

    def thinking(self, *chunks: str) -> Script:
        """Prompt-tag thinking: `<thinking>\\n` + chunks + `\\n</thinking>\\n\\n` as text events."""
        parts = list(chunks) or [""]
        parts[0] = "<thinking>\n" + parts[0]
        parts[-1] = parts[-1] + "\n</thinking>\n\n"
        return self.text(*parts)

    def tool_use(self, tool_use_id: str, name: str, *fragments: Union[str, dict],
                 separate_stop: bool = False) -> Script:
        """One tool call as toolUseEvent frames; the last fragment carries "stop": true.

        A dict fragment is sent as a JSON object (Kiro sometimes does that). With no
        fragments, or separate_stop=True, the stop arrives in its own frame without input.
        """
        frames = [{"toolUseId": tool_use_id, "name": name, "input": f} for f in fragments]
        if separate_stop or not frames:
            frames.append({"toolUseId": tool_use_id, "name": name})
        frames[-1] = {**frames[-1], "stop": True}
        return self._then(*(eventstream.event("toolUseEvent", f) for f in frames))

    def reasoning(self, text: Optional[str] = None, *, signature: Optional[str] = None,
                  redacted: Optional[str] = None) -> Script:
        payload = {k: v for k, v in (("text", text), ("signature", signature),
                                     ("redactedContent", redacted)) if v is not None}
        return self.event("reasoningContentEvent", payload)

    def context_usage(self, percentage: float = DEFAULT_CONTEXT_USAGE) -> Script:
        return self.event("contextUsageEvent", {"contextUsagePercentage": percentage})

    def metering(self, usage: float = 0.0169) -> Script:
        return self.event("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": usage})

    def metadata(self, *, uncached_input: int = 10, output: int = 5, cache_read: int = 0,
                 cache_write: int = 0, stop_reason: Optional[str] = None) -> Script:
        usage = {"uncachedInputTokens": uncached_input, "outputTokens": output,
                 "totalTokens": uncached_input + cache_read + cache_write + output,
                 "cacheReadInputTokens": cache_read, "cacheWriteInputTokens": cache_write}
        payload: Dict[str, Any] = {"tokenUsage": usage}
        if stop_reason is not None:
            payload["stopReason"] = stop_reason
        return self.event("metadataEvent", payload)

    def exception(self, exception_type: str = "ThrottlingException",
                  message: str = "Rate exceeded") -> Script:
        return self._then(eventstream.exception(exception_type, message))

    def gate(self, name: str = "gate") -> Script:
        return self._then(Gate(name))

    def cut_mid_frame(self, text: str = "cut here") -> Script:
        """Half of a text frame; the body then ends cleanly (chunked terminator) unless drop() follows."""
        frame = eventstream.event("assistantResponseEvent", {"content": text})
        return self._then(frame[:len(frame) // 2])

    def bad_crc(self, text: str = "corrupted") -> Script:
        frame = bytearray(eventstream.event("assistantResponseEvent", {"content": text}))
        frame[-1] ^= 0xFF
        return self._then(bytes(frame))

    def drop(self) -> Script:
        return self._then(Drop())

    def slow_first_byte(self, seconds: float, name: str = "first-byte") -> Script:
        """Wait up to `seconds` (or until fake.release(name)) before the status line."""
        return replace(self, first_byte_wait=(name, seconds))

    def paced(self, seconds: float) -> Script:
        """Pause `seconds` between two byte steps (for benchmarks; a test never waits on a clock)."""
        return replace(self, interval=seconds)

    @property
    def frames(self) -> Tuple[bytes, ...]:
        """The byte steps of the script, in order (gates and drops left out)."""
        return tuple(s for s in self.steps if isinstance(s, bytes))


def text_answer(*chunks: str, usage: float = DEFAULT_CONTEXT_USAGE) -> Script:
    """A normal answer: text chunks ending with a contextUsageEvent."""
    return Script().text(*chunks).context_usage(usage)


def default_script() -> Script:
    return text_answer("Hello", " from fake Kiro")


def http_error(status: int, message: str = "", reason: Optional[str] = None,
               headers: Optional[Mapping[str, str]] = None, body: Optional[object] = None) -> Script:
    """A non-200 answer; the body is Kiro's `{"message","reason"}` unless `body` is given."""
    document = {"message": message, "reason": reason} if body is None else body
    return Script(status=status, body=json.dumps(document).encode("utf-8"),
                  headers=tuple((headers or {}).items()))


def throttled(retry_after: Optional[str] = None) -> Script:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return http_error(429, "Rate limit exceeded", "USER_REQUEST_RATE_EXCEEDED", headers)


def bearer_invalid() -> Script:
    return http_error(403, "The bearer token included in the request is invalid.")


def suspended() -> Script:
    return http_error(403, "Your User ID temporarily is suspended.", "TEMPORARILY_SUSPENDED")


def monthly_limit() -> Script:
    return http_error(402, "You have reached the limit.", "MONTHLY_REQUEST_COUNT")


def server_error() -> Script:
    return http_error(500, "Encountered unexpectedly high load when processing the request, "
                           "please try again.")


def improperly_formed() -> Script:
    return http_error(400, "Improperly formed request.")


@dataclass(frozen=True)
class Reply:
    """A scripted JSON answer for the non-chat endpoints. body None on 200: the endpoint's default."""

    status: int = 200
    body: Optional[object] = None
    headers: Tuple[Tuple[str, str], ...] = ()


def oauth_error(error: str, status: int = 400) -> Reply:
    """An OIDC token error, e.g. a device-code poll: authorization_pending, slow_down,
    expired_token, access_denied (kiro-upstream.md §10.1)."""
    return Reply(status, {"error": error, "error_description": f"fake {error}"})


def _model(model_id: str, name: str, rate: float, max_input: int = 200000, max_output: int = 64000,
           schema: Optional[dict] = None) -> dict:
    model = {"modelId": model_id, "modelName": name, "description": f"{name} (fake catalogue)",
             "rateMultiplier": rate, "rateUnit": "Credit", "supportedInputTypes": ["TEXT", "IMAGE"],
             "tokenLimits": {"maxInputTokens": max_input, "maxOutputTokens": max_output},
             "supportsPromptCache": model_id != "auto"}
    if schema is not None:
        model["additionalModelRequestFieldsSchema"] = schema
    return model


# The 4.6 models advertise native thinking, as newer catalogues do (kiro-upstream.md §3.4).
NATIVE_THINKING_SCHEMA = {
    "type": "object",
    "properties": {
        "thinking": {"type": "object", "properties": {"type": {"type": "string", "enum": ["adaptive"]}}},
        "output_config": {"type": "object", "properties": {
            "effort": {"type": "string", "enum": ["low", "medium", "high", "max"]}}},
    },
}


def default_models() -> list:
    return [
        _model("auto", "Auto", 1.0),
        _model("claude-sonnet-4", "Claude Sonnet 4", 1.3),
        _model("claude-sonnet-4.5", "Claude Sonnet 4.5", 1.3),
        _model("claude-haiku-4.5", "Claude Haiku 4.5", 0.4),
        _model("claude-opus-4.5", "Claude Opus 4.5", 2.2, max_output=32000),
        _model("claude-sonnet-4.6", "Claude Sonnet 4.6", 1.3, 1000000, 64000, NATIVE_THINKING_SCHEMA),
        _model("claude-opus-4.6", "Claude Opus 4.6", 2.2, 1000000, 128000, NATIVE_THINKING_SCHEMA),
    ]


def default_usage() -> dict:
    """The getUsageLimits document of kiro-upstream.md §1 (37.5 + 400 + 97 credits remaining)."""
    return {
        "daysUntilReset": 12,
        "nextDateReset": 1767225600.0,
        "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
        "overageConfiguration": {"overageStatus": "DISABLED"},
        "userInfo": {"email": "u@example.com", "userId": "fake-user"},
        "usageBreakdownList": [{
            "resourceType": "CREDIT", "displayName": "Credit",
            "currentUsageWithPrecision": 12.5, "usageLimitWithPrecision": 50.0,
            "nextDateReset": 1767225600.0,
            "freeTrialInfo": {"freeTrialStatus": "ACTIVE", "freeTrialExpiry": 1767225600.0,
                              "usageLimitWithPrecision": 500.0, "currentUsageWithPrecision": 100.0},
            "bonuses": [{"usageLimit": 100, "currentUsage": 3}],
        }],
    }
