"""Tests for store.flows.records: the snapshot, the index entry, the search text and the redacted body record."""
from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any, List, Optional, Sequence

import pytest

from kiroproxy import chat
from kiroproxy.exchange import CANCELLED, COMPLETED, ERROR, STREAMING, Attempt, ExchangeSnapshot
from kiroproxy.redaction import MASK, Redactor
from kiroproxy.store.flows import records
from kiroproxy.store.flows.records import SNIPPET
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
             **changes: Any) -> ExchangeSnapshot:
    """A finished exchange as the relay leaves it: the client's body (parsed, and raw as sent),
    parsed request, reply, usage, one ok attempt."""
    body = changes.pop("body", None) or factories.anthropic_body(question)
    if "raw_body" not in changes:
        try:
            changes["raw_body"] = json.dumps(body).encode()
        except TypeError:  # not JSON: no raw bytes (the flow store snapshots it at once)
            changes["raw_body"] = None
    ex = ExchangeSnapshot(
        protocol=protocol, path="/v1/messages", requested_model="claude-sonnet-4-5", stream=False,
        body=body, headers={"user-agent": "tests/1.0"}, client="tests",
        request=factories.request(question), id=flow_id(), model="claude-sonnet-4.5", account_id=account_id,
        state=state, received_at=at, first_byte_at=at + 0.125, completed_at=at + 1.5,
        usage=usage or chat.Usage(input_tokens=12, output_tokens=34),
        attempts=(Attempt(account_id or "", "ok", at=at),) if attempts is None else tuple(attempts),
        reply=reply(answer) if answer is not None else None, status=200)
    return replace(ex, **changes)


def failed(ex: ExchangeSnapshot, status: int, kind: str, message: str, now: float) -> ExchangeSnapshot:
    """`ex` as Exchange.fail() leaves it."""
    return replace(ex, state=ERROR, status=status, error={"kind": kind, "status": status, "message": message},
                   completed_at=now)


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
    ex = failed(ex, 400, "invalid_request", "max_tokens must be positive", now=T0 + 2)
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


def test_the_snippet_is_the_start_of_the_last_user_message():
    request = factories.request("first question", "an answer", "  Latest " + "x" * 500)
    entry = records.index_entry(exchange(request=request), 1)
    assert entry["snippet"] == ("Latest " + "x" * 500)[:SNIPPET]
    assert records.index_entry(exchange(request=None), 1)["snippet"] == ""


def test_public_drops_only_where_the_flow_is_stored():
    entry = {**records.index_entry(exchange(), 1), "segment": 3, "size": 10}
    shown = records.public(entry)
    assert set(shown) == set(entry) - {"segment"} and shown["size"] == 10
    assert "segment" in entry


# ----- snapshot ----------------------------------------------------------------------------------

def test_a_snapshot_does_not_change_when_the_body_or_the_reply_does():
    calls = [chat.ToolUse("t1", "Read", {"path": "a"})]
    ex = exchange(reply=reply("the answer", tools=calls), headers={"user-agent": "tests/1.0"})
    ex = failed(ex, 502, "upstream", "first message", now=T0 + 2)
    snap = records.snapshot(ex)
    # The request thread goes on using the body it parsed (the exchange itself no longer changes).
    ex.body["messages"][0]["content"] = "changed later"
    ex.body["extra"] = "added later"
    ex.headers["user-agent"] = "changed"
    ex.error["message"] = "changed message"
    ex.reply.parts.append(chat.Text(" more"))
    assert records.thaw(snap) == factories.anthropic_body("the question")
    assert snap.headers == {"user-agent": "tests/1.0"}
    assert [a["account_id"] for a in snap.meta["attempts"]] == ["acc-1"]
    assert snap.meta["error"]["message"] == "first message"
    assert records.response_of(snap)["text"] == "the answer"
    assert records.response_of(snap)["tool_calls"] == [{"id": "t1", "name": "Read", "input": {"path": "a"}}]


def test_a_snapshot_without_reply_has_no_response():
    snap = records.snapshot(exchange(answer=None))
    assert records.response_of(snap) is None and snap.parts == ()


def test_a_body_that_cannot_be_pickled_is_kept_as_text():
    snap = records.snapshot(exchange(body={"f": lambda: 1}))
    assert isinstance(records.thaw(snap), str) and "'f'" in records.thaw(snap)


# ----- search text -------------------------------------------------------------------------------

def test_search_text_holds_the_whole_request_and_response():
    long_tail = "pad " * 5000 + "LateWord"
    result = chat.ToolResult("t0", (chat.Text("Tool Output Here"),))
    history = (chat.Message("user", (chat.Text("Earlier Question"),)),
               chat.Message("assistant", (chat.Thinking("Old Thought"), chat.Text("earlier answer"),
                                          chat.ToolUse("t0", "Grep", {"pattern": "NeedleArg"}))),
               chat.Message("user", (result, chat.Text(long_tail))))
    request = chat.ChatRequest(model="m", messages=history, system="System Prompt Word",
                               tools=(chat.Tool("ToolDefinitionName", "Tool Description Word", {}),))
    ex = exchange(request=request, reply=reply("The Answer " + "a" * 5000 + " AnswerTail", thinking="Deep Thought",
                                                tools=[chat.ToolUse("t1", "Write", {"text": "CallArgument"})]))
    ex = replace(ex, error={"kind": "upstream", "message": "Upstream Said No"})
    text = records.search_text(records.snapshot(ex))
    for piece in (ex.id, "System Prompt Word", "Earlier Question", "Old Thought", "earlier answer", "Grep",
                  "NeedleArg", "Tool Output Here", "LateWord", "The Answer", "AnswerTail", "Deep Thought", "Write",
                  "CallArgument", "Upstream Said No"):
        assert piece in text
    assert "ToolDefinitionName" not in text and "Tool Description Word" not in text


def test_search_text_without_request_or_reply():
    ex = exchange(request=None, answer=None)
    assert records.search_text(records.snapshot(ex)) == ex.id


# ----- finish_entry, prepare and record_of -------------------------------------------------------

SECRET = "client-secret-value-0123456789"


def test_finish_entry_masks_secrets_in_error_attempts_and_snippet_without_touching_the_snapshot():
    attempts = [Attempt("acc-1", "rotate", f"refresh with {SECRET} failed", 400, T0)]
    ex = exchange(question=f"tell {SECRET}", attempts=attempts)
    ex = failed(ex, 502, "upstream", f"upstream echoed {SECRET}", now=T0 + 1)
    snap = records.snapshot(ex)
    entry = records.finish_entry(snap.meta, 7, "primary", Redactor([SECRET]))
    assert (entry["seq"], entry["account_name"]) == (7, "primary")
    assert entry["error"]["message"] == f"upstream echoed {MASK}"
    assert entry["attempts"][0]["message"] == f"refresh with {MASK} failed"
    assert entry["snippet"] == f"tell {MASK}"
    assert snap.meta["error"]["message"] == f"upstream echoed {SECRET}"  # shown again later: left as it was
    assert snap.meta["attempts"][0]["message"] == f"refresh with {SECRET} failed"


def test_finish_entry_masks_the_longest_secret_first_and_unknown_token_shapes():
    short, long = "abcdefgh", "abcdefgh-longer-secret"
    token = factories.token_like("aor", "UnknownRefreshToken0123456789abcdef")
    ex = exchange(question=f"x {long} y {token}")
    ex = failed(ex, 500, "upstream", f"x {long} y", now=T0 + 1)
    entry = records.finish_entry(records.snapshot(ex).meta, 1, "", Redactor([short, long]))
    assert entry["error"]["message"] == f"x {MASK} y"
    assert entry["snippet"] == f"x {MASK} y {MASK}"


def test_prepare_redacts_everything():
    calls = [chat.ToolUse("t1", "Login", {"password": "hunter2-long", "user": "me"})]
    body = {**factories.anthropic_body(f"My Key is {SECRET}"), "metadata": {"api_key": "body-key"}}
    ex = exchange(question=f"My Key is {SECRET}", reply=reply(f"Echo {SECRET}", tools=calls), body=body,
                  headers={"user-agent": f"ua {SECRET}", "x-api-key": "anything"})
    prepared = records.prepare(records.snapshot(ex), 3, "primary", Redactor([SECRET, "unrelated-secret-99"]))
    record = prepared.record
    assert record["request"]["headers"] == {"user-agent": f"ua {MASK}", "x-api-key": MASK}
    assert record["request"]["body"]["messages"][0]["content"] == f"My Key is {MASK}"
    assert record["request"]["body"]["metadata"] == {"api_key": MASK}
    assert record["response"] == {"text": f"Echo {MASK}", "thinking": "",
                                  "tool_calls": [{"id": "t1", "name": "Login",
                                                  "input": {"password": MASK, "user": "me"}}],
                                  "stop_reason": "end_turn", "stop_sequence": None}
    assert record["flow"]["id"] == ex.id and record["flow"]["account_name"] == "primary"
    assert record["flow"]["seq"] == 3 and prepared.entry["seq"] == 3
    assert SECRET not in prepared.search and f"My Key is {MASK}" in prepared.search
    assert record["texts"] == []  # nothing long enough to store once
    assert ex.body["metadata"] == {"api_key": "body-key"}  # the exchange itself is left alone


def test_prepare_masks_a_secret_that_only_the_pickled_body_holds():
    secret = "only-in-a-nested-body-field-42"
    ex = exchange(body={"model": "m", "deep": [{"x": [f"has {secret} inside"]}]})
    prepared = records.prepare(records.snapshot(ex), 1, "", Redactor([secret]))
    assert prepared.record["request"]["body"]["deep"] == [{"x": [f"has {MASK} inside"]}]



def test_a_snapshot_keeps_the_raw_json_bytes_without_copying_the_parsed_body():
    raw = json.dumps(factories.anthropic_body("the question")).encode()
    ex = exchange(raw_body=raw)
    snap = records.snapshot(ex)
    assert snap.body is raw and snap.body_json  # no copy on the request thread
    ex.body["messages"][0]["content"] = "changed later"
    assert records.thaw(snap) == factories.anthropic_body("the question")


def test_prepare_masks_a_secret_the_raw_json_escapes():
    secret = "tok/with+slash=="
    raw = b'{"model": "m", "deep": ["has tok\\/with\\u002bslash== inside"]}'
    assert json.loads(raw)["deep"] == [f"has {secret} inside"]
    prepared = records.prepare(records.snapshot(exchange(body=json.loads(raw), raw_body=raw)), 1, "",
                               Redactor([secret]))
    assert prepared.record["request"]["body"]["deep"] == [f"has {MASK} inside"]
    queued = records.record_of(records.snapshot(exchange(body=json.loads(raw), raw_body=raw)), Redactor([secret]))
    assert queued["request"]["body"]["deep"] == [f"has {MASK} inside"]

def test_prepare_without_reply():
    prepared = records.prepare(records.snapshot(exchange(answer=None)), 1, "", Redactor())
    assert prepared.record["response"] is None


def test_record_of_masks_with_the_secrets_known_now():
    ex = exchange(question=f"q {SECRET}", reply=reply(f"a {SECRET}"))
    record = records.record_of(records.snapshot(ex), Redactor([SECRET]))
    assert SECRET not in json.dumps(record) and record["response"]["text"] == f"a {MASK}"



def test_long_strings_are_stored_once_in_the_search_text_and_come_back():
    system_blocks = ["S" * 300, "T" * 400]
    tool_output = "tool output " * 100
    question = "long question " * 100
    answer = "long answer " * 100
    body = {"model": "m", "system": [{"type": "text", "text": t} for t in system_blocks],
            "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                       "content": tool_output},
                                                      {"type": "text", "text": question}]}],
            "metadata": {"note": "short"}}
    request = chat.ChatRequest(model="m", system="\n".join(system_blocks), messages=(chat.Message("user", (
        chat.ToolResult("t1", (chat.Text(tool_output),)), chat.Text(question))),))
    prepared = records.prepare(records.snapshot(exchange(body=body, request=request, reply=reply(answer))), 1, "",
                               Redactor())
    record = prepared.record
    assert record["request"]["body"]["messages"][0]["content"][1]["text"] == ""
    assert record["request"]["body"]["system"][1]["text"] == ""  # a part of the joined system prompt
    assert record["response"]["text"] == "" and record["request"]["body"]["metadata"] == {"note": "short"}
    assert len(record["texts"]) == 5
    stored = json.loads(json.dumps(record))
    for text in (*system_blocks, tool_output, question, answer):
        assert text in prepared.search and text not in json.dumps(stored)  # stored once
    restored = records.restore(stored, prepared.search)
    assert restored["request"]["body"] == body and restored["response"]["text"] == answer
    assert "texts" not in restored


def test_restore_skips_references_that_do_not_fit():
    record = {"request": {"body": {"a": "", "b": "kept"}},
              "texts": [["request", "body", "a", 0, 3], ["request", "nope", "b", 0, 1], ["request", 5, 0, 1],
                        ["request", "body", "b", 0, 2], "junk", [1]]}
    assert records.restore(record, "abcdef") == {"request": {"body": {"a": "abc", "b": "kept"}}}


@pytest.mark.parametrize("make", [lambda: exchange("q"), lambda: failed(exchange("q"), 502, "upstream", "x", T0 + 1),
                                  lambda: exchange("q", answer=None, account_id=None, usage=chat.Usage())])
def test_the_stats_entry_holds_the_index_entrys_values(make):
    ex = make()
    entry = records.stats_entry(ex)
    assert entry == {k: v for k, v in records.index_entry(ex, 0).items() if k in entry}
    assert set(entry) == {"received_at", "protocol", "model", "account_id", "error", "error_kind", "input_tokens",
                          "output_tokens"}


def test_the_deferred_cost_grows_with_the_raw_body_and_the_answer():
    base = records.deferred_cost(exchange("q", answer=""))
    assert records.deferred_cost(exchange("q", answer="a" * 1000)) - base == 1000
    longer = exchange("q" * 500, answer="")
    assert records.deferred_cost(longer) - base == 3 * (len(longer.raw_body) - len(exchange("q").raw_body))
    assert records.deferred_cost(exchange("q", answer="", raw_body=None)) == records.META_COST


@pytest.mark.parametrize("raw", [
    b'{"model":"m","deep":[{"x":"has sec\\u0072et-\\"quoted\\\\-1234 inside"}]}',   # escaped beyond json.dumps
    b'{"model":"m","deep":[{"x":"has secret-\\"quoted\\\\-1234 inside"}]}',         # escaped as json.dumps does
    b'{"model":"m","deep":[{"x":"has secret-\\"quoted\\\\-1234 inside \\/ slash"}]}',
])
def test_a_secret_in_the_raw_body_is_masked_however_the_client_escaped_it(raw):
    secret = 'secret-"quoted\\-1234'
    body = json.loads(raw)
    ex = exchange("q", body=body, raw_body=raw)
    for record in (records.prepare(records.snapshot(ex), 1, "", Redactor([secret, "other-secret-5678"])).record,
                   records.record_of(records.snapshot(ex), Redactor([secret]))):
        assert secret not in json.dumps(record["request"]["body"], ensure_ascii=False)
        assert MASK in json.dumps(record["request"]["body"], ensure_ascii=False)


def test_a_body_without_secrets_is_recorded_as_the_client_sent_it():
    raw = b'{"model":"m","messages":[{"role":"user","content":"caf\\u00e9 \\/ ok"}]}'
    ex = exchange("q", body=json.loads(raw), raw_body=raw)
    record = records.prepare(records.snapshot(ex), 1, "", Redactor(["unrelated-secret-99"])).record
    assert records.restore(json.loads(json.dumps(record)), "")["request"]["body"] == json.loads(raw)
