"""Tests for store.records: the index entry and the redacted body record built from an Exchange."""
from __future__ import annotations

import itertools
from typing import Any, List, Optional, Sequence

import pytest

from kiroproxy import chat
from kiroproxy.exchange import CANCELLED, COMPLETED, ERROR, STREAMING, Attempt, Exchange
from kiroproxy.redaction import MASK
from kiroproxy.store import records
from kiroproxy.store.records import SNIPPET
from tests import factories

T0 = 1_700_000_000.0
_ids = itertools.count(1)


def flow_id() -> str:
    return f"{next(_ids):032x}"


def reply(text: str = "the answer", *, thinking: str = "", tools: Sequence[chat.ToolUse] = (),
          finish: str = "end_turn") -> chat.Reply:
    parts: List[Any] = [chat.Thinking(thinking)] if thinking else []
    parts += [chat.Text(text), *tools]
    return chat.Reply(model="claude-sonnet-4.5", parts=parts, finish=finish)


def exchange(question: str = "the question", answer: Optional[str] = "the answer", *, at: float = T0,
             protocol: str = "anthropic", state: str = COMPLETED, account_id: Optional[str] = "acc-1",
             usage: Optional[chat.Usage] = None, attempts: Optional[List[Attempt]] = None,
             **changes: Any) -> Exchange:
    """A finished exchange as the relay leaves it: parsed request, reply, usage, one ok attempt."""
    ex = Exchange(
        protocol=protocol, path="/v1/messages", requested_model="claude-sonnet-4-5", stream=False,
        body=factories.anthropic_body(question), headers={"user-agent": "tests/1.0"}, client="tests",
        request=factories.request(question), id=flow_id(), model="claude-sonnet-4.5", account_id=account_id,
        state=state, received_at=at, first_byte_at=at + 0.125, completed_at=at + 1.5,
        usage=usage or chat.Usage(input_tokens=12, output_tokens=34),
        attempts=[Attempt(account_id or "", "ok", at=at)] if attempts is None else attempts,
        reply=reply(answer) if answer is not None else None, status=200)
    for key, value in changes.items():
        setattr(ex, key, value)
    return ex


# ----- index_entry -------------------------------------------------------------------------------

def test_index_entry_copies_the_exchange():
    ex = exchange(usage=chat.Usage(input_tokens=100, output_tokens=20, cache_read_tokens=7, cache_write_tokens=3,
                                   reasoning_tokens=5, credits=0.25))
    entry = records.index_entry(ex, 42, "primary")
    assert {k: entry[k] for k in ("id", "seq", "protocol", "path", "requested_model", "model", "account_id",
                                  "account_name", "stream", "state", "status", "client", "user_agent")} == {
        "id": ex.id, "seq": 42, "protocol": "anthropic", "path": "/v1/messages",
        "requested_model": "claude-sonnet-4-5", "model": "claude-sonnet-4.5", "account_id": "acc-1",
        "account_name": "primary", "stream": False, "state": "completed", "status": 200, "client": "tests",
        "user_agent": "tests/1.0"}
    assert (entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"], entry["cache_write_tokens"],
            entry["reasoning_tokens"], entry["credits"]) == (100, 20, 7, 3, 5, 0.25)
    assert (entry["received_at"], entry["first_byte_at"], entry["completed_at"]) == (T0, T0 + 0.125, T0 + 1.5)
    assert (entry["ttfb_ms"], entry["duration_ms"]) == (125.0, 1500.0)
    assert (entry["tags"], entry["note"], entry["bookmarked"], entry["error"], entry["error_kind"]) == (
        [], "", False, None, None)
    assert entry["stop_reason"] == "end_turn" and entry["tool_calls"] == 0


def test_unknown_usage_and_times_read_as_zero_and_none():
    ex = exchange(usage=chat.Usage(), first_byte_at=None, completed_at=None, state=STREAMING, answer=None)
    entry = records.index_entry(ex, 1)
    assert (entry["input_tokens"], entry["output_tokens"], entry["credits"]) == (0, 0, None)
    assert (entry["ttfb_ms"], entry["duration_ms"], entry["stop_reason"], entry["tool_calls"]) == (
        None, None, None, 0)


def test_times_are_rounded_to_hundredths_of_a_millisecond():
    ex = exchange(first_byte_at=T0 + 0.0123456, completed_at=T0 + 2.0009876)
    entry = records.index_entry(ex, 1)
    assert entry["ttfb_ms"] == pytest.approx(12.35) and entry["duration_ms"] == pytest.approx(2000.99)


def test_attempts_retries_and_error():
    attempts = [Attempt("acc-1", "rotate", "throttled " + "x" * 500, 429, T0),
                Attempt("acc-2", "fail", "bad request", 400, T0 + 1)]
    ex = exchange(attempts=attempts, answer=None)
    ex.fail(400, "invalid_request", "max_tokens must be positive", now=T0 + 2)
    entry = records.index_entry(ex, 1)
    assert [(a["account_id"], a["outcome"], a["status"]) for a in entry["attempts"]] == [
        ("acc-1", "rotate", 429), ("acc-2", "fail", 400)]
    assert len(entry["attempts"][0]["message"]) == 300 and entry["attempts"][1]["message"] == "bad request"
    assert entry["retries"] == 1
    assert entry["error"] == {"kind": "invalid_request", "status": 400, "message": "max_tokens must be positive"}
    assert entry["error_kind"] == "invalid_request" and entry["state"] == ERROR and entry["status"] == 400
    assert entry["error"] is not ex.error  # a copy: later redaction must not touch the exchange


def test_no_attempt_is_zero_retries():
    assert records.index_entry(exchange(attempts=[]), 1)["retries"] == 0


@pytest.mark.parametrize("state", [CANCELLED, ERROR, STREAMING])
def test_stop_reason_only_when_completed(state):
    assert records.index_entry(exchange(state=state), 1)["stop_reason"] is None


def test_stop_reason_and_tool_calls_of_a_completed_reply():
    calls = [chat.ToolUse(f"t{n}", "Read", {"path": str(n)}) for n in range(3)]
    ex = exchange(reply=reply("calling", tools=calls, finish="tool_use"))
    entry = records.index_entry(ex, 1)
    assert entry["stop_reason"] == "tool_use" and entry["tool_calls"] == 3


def test_model_from_the_body_when_none_was_requested():
    ex = exchange(requested_model="", body={"model": "gpt-4o", "messages": []})
    assert records.index_entry(ex, 1)["requested_model"] == "gpt-4o"
    assert records.index_entry(exchange(requested_model="", body={"model": 7}), 1)["requested_model"] == ""
    assert records.index_entry(exchange(requested_model="", body=["x"]), 1)["requested_model"] == ""
    assert records.index_entry(exchange(body={"model": "ignored"}), 1)["requested_model"] == "claude-sonnet-4-5"


def test_long_user_agent_is_cut():
    ex = exchange(headers={"user-agent": "u" * 500})
    assert records.index_entry(ex, 1)["user_agent"] == "u" * 200


def test_public_drops_only_the_search_text():
    entry = records.index_entry(exchange(), 1)
    shown = records.public(entry)
    assert "search" not in shown and set(shown) == set(entry) - {"search"}
    assert "search" in entry


# ----- search text -------------------------------------------------------------------------------

def test_search_text_holds_the_new_content_of_the_turn_lowercased():
    calls = [chat.ToolUse("t1", "Grep", {"pattern": "NeedleInput"})]
    request = factories.request("Earlier Question", "earlier answer", "Latest Question")
    ex = exchange(request=request, reply=reply("The Answer", thinking="Deep Thought", tools=calls))
    ex.error = {"kind": "upstream", "message": "Upstream Said No"}
    text = records.search_text(ex)
    for piece in (ex.id, "latest question", "the answer", "deep thought", "grep", "needleinput", "upstream said no"):
        assert piece in text
    assert "earlier question" not in text and "earlier answer" not in text
    assert text == text.lower()


def test_search_text_includes_tool_results_of_the_last_user_message():
    result = chat.ToolResult("t1", (chat.Text("Tool Output Here"),))
    request = chat.ChatRequest(model="m", messages=(chat.Message("user", (result, chat.Text("go on"))),))
    assert "tool output here\ngo on" in records.search_text(exchange(request=request))


def test_search_text_without_request_or_reply():
    ex = exchange(request=None, answer=None)
    assert records.search_text(ex) == ex.id


def test_search_text_pieces_are_bounded():
    calls = [chat.ToolUse(f"t{n}", f"tool{n:02d}", {"data": "i" * 1000}) for n in range(30)]
    ex = exchange(request=factories.request("q" * 5000),
                  reply=reply("a" * 5000, thinking="h" * 5000, tools=calls))
    text = records.search_text(ex)
    assert text.count("q") == SNIPPET
    assert "a" * SNIPPET in text and "a" * (SNIPPET + 1) not in text
    assert "h" * (SNIPPET // 2) in text and "h" * (SNIPPET // 2 + 1) not in text
    assert "tool19" in text and "tool20" not in text  # at most 20 tool calls
    line = next(piece for piece in text.split("\n") if piece.startswith("tool00 "))
    assert len(line) == len("tool00 ") + 200


# ----- body_record and redact_entry --------------------------------------------------------------

SECRET = "client-secret-value-0123456789"


def test_body_record_redacts_request_response_and_headers():
    calls = [chat.ToolUse("t1", "Login", {"password": "hunter2-long", "user": "me"})]
    ex = exchange(question=f"my key is {SECRET}", reply=reply(f"echo {SECRET}", tools=calls),
                  headers={"user-agent": f"ua {SECRET}", "x-api-key": "anything"})
    ex.body["metadata"] = {"api_key": "body-key"}
    entry = records.index_entry(ex, 3, "primary")
    record = records.body_record(ex, entry, [SECRET])
    assert record["request"]["headers"] == {"user-agent": f"ua {MASK}", "x-api-key": MASK}
    assert record["request"]["body"]["messages"][0]["content"] == f"my key is {MASK}"
    assert record["request"]["body"]["metadata"] == {"api_key": MASK}
    assert record["response"] == {"text": f"echo {MASK}", "thinking": "",
                                  "tool_calls": [{"id": "t1", "name": "Login",
                                                  "input": {"password": MASK, "user": "me"}}],
                                  "stop_reason": "end_turn", "stop_sequence": None}
    assert record["flow"]["id"] == ex.id and record["flow"]["account_name"] == "primary"
    assert "search" not in record["flow"] and record["search"] == entry["search"]
    assert ex.body["metadata"] == {"api_key": "body-key"}  # the exchange itself is left alone


def test_body_record_without_reply():
    ex = exchange(answer=None)
    assert records.body_record(ex, records.index_entry(ex, 1), [])["response"] is None


def test_redact_entry_masks_secrets_in_error_attempts_and_search():
    mixed = "MixedCase-Secret-0123456789"
    attempts = [Attempt("acc-1", "rotate", f"refresh with {SECRET} failed", 400, T0)]
    ex = exchange(question=f"tell {mixed} and {SECRET}", attempts=attempts)
    ex.fail(502, "upstream", f"upstream echoed {SECRET}", now=T0 + 1)
    entry = records.index_entry(ex, 1)
    records.redact_entry(entry, [SECRET, mixed])
    assert entry["error"]["message"] == f"upstream echoed {MASK}"
    assert entry["attempts"][0]["message"] == f"refresh with {MASK} failed"
    assert SECRET not in entry["search"] and mixed.lower() not in entry["search"]
    assert f"tell {MASK} and {MASK}" in entry["search"]
    assert ex.error["message"] == f"upstream echoed {SECRET}"


def test_redact_entry_masks_the_longest_secret_first():
    short, long = "abcdefgh", "abcdefgh-longer-secret"
    ex = exchange(question=f"x {long} y")
    ex.fail(500, "upstream", f"x {long} y", now=T0 + 1)
    entry = records.redact_entry(records.index_entry(ex, 1), [short, long])
    assert entry["error"]["message"] == f"x {MASK} y"
    assert f"x {MASK} y" in entry["search"] and "longer-secret" not in entry["search"]


def test_redact_entry_masks_token_shapes_it_was_not_told_about():
    token = factories.token_like("aor", "UnknownRefreshToken0123456789abcdef")
    ex = exchange(question=f"token {token}")
    ex.fail(500, "upstream", f"token {token}", now=T0 + 1)
    entry = records.redact_entry(records.index_entry(ex, 1), [])
    assert token not in entry["error"]["message"] and token.lower() not in entry["search"]
