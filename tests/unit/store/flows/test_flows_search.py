"""Tests for `q` in the flow store: full text from disk, newest first, within a budget, with a cursor."""
from __future__ import annotations

from typing import List

import pytest

from kiroproxy import chat
from kiroproxy.redaction import MASK
from kiroproxy.store.flows.queries import Budget, Filter
from tests.unit.store.flows.test_flows import add, body_file, ids, in_flight
from tests.unit.store.flows.test_records import T0, exchange, reply

ALL = Filter()


def long_exchange(at: float = T0):
    """A Claude Code-like turn: system prompt, history, a long tool result, a long answer."""
    history = (chat.Message("user", (chat.Text("Earlier question about Pelicans"),)),
               chat.Message("assistant", (chat.Text("ok"), chat.ToolUse("t1", "Grep", {"pattern": "NeedleArg"}))),
               chat.Message("user", (chat.ToolResult("t1", (chat.Text("pad " * 3000 + "ToolResultTail"),)),
                                     chat.Text("pad " * 1000 + "LateUserWord"))))
    request = chat.ChatRequest(model="m", messages=history, system="SystemWord in the system prompt")
    answer = reply("filler words " * 1000 + "AnswerTailWord", thinking="ThinkingWord",
                   tools=[chat.ToolUse("t2", "Write", {"text": "CallArgWord"})])
    return exchange(request=request, reply=answer, at=at)


WORDS = ["systemword", "Pelicans", "NEEDLEARG", "toolresulttail", "lateuserword", "answertailword", "thinkingword",
         "callargword", "write", "pelicans lateuserword"]


@pytest.mark.parametrize("reopen", [False, True])
def test_q_searches_the_whole_request_and_response(open_store, reopen):
    store = open_store()
    target = long_exchange()
    store.finished(target)
    other = exchange("nothing special", at=T0 + 1)
    store.finished(other)
    store.close()
    if reopen:
        store = open_store()
    for word in WORDS:
        assert ids(store.query(Filter(q=word))) == [target.id], word
    assert store.query(Filter(q="pelicans nowhere"))["flows"] == []  # every word must match


def test_the_index_in_memory_holds_no_long_text(open_store):
    store = open_store()
    store.finished(long_exchange())
    store.close()
    (entry,) = open_store().query(ALL)["flows"]
    assert "search" not in entry and len(entry["snippet"]) <= 200
    assert max(len(value) for value in entry.values() if isinstance(value, str)) <= 200


def test_the_search_text_on_disk_is_masked_and_searched_without_case(open_store, tmp_path):
    secret = "a-secret-in-the-prompt-12345"
    store = open_store(secrets=lambda: [secret])
    ex = exchange(f"Mixed Case {secret} Words")
    store.finished(ex)
    store.flush()
    search, _ = body_file(tmp_path, ex.id)
    assert f"Mixed Case {MASK} Words" in search and secret not in search
    assert store.query(Filter(q=secret))["flows"] == []
    assert ids(store.query(Filter(q="mixed CASE words"))) == [ex.id]


@pytest.mark.parametrize("written", [False, True])
def test_q_stops_at_limit_and_continues_with_the_cursor(open_store, written):
    store = open_store()
    made = [exchange(("zebra " if n % 2 else "lion ") + str(n), at=T0 + n) for n in range(10)]
    for ex in made:
        store.finished(ex)
    if written:
        store.flush()
    zebras = [ex.id for ex in reversed(made) if "zebra" in ex.body["messages"][0]["content"]]
    first = store.query(Filter(q="zebra"), limit=2)
    assert ids(first) == zebras[:2] and first["partial"] is False
    assert first["total"] is None and first["next_cursor"] == 8  # the seq of the last flow read
    rest = store.query(Filter(q="zebra"), limit=10, cursor=first["next_cursor"])
    assert ids(rest) == zebras[2:] and rest["total"] == 3 and rest["next_cursor"] is None
    assert ids(store.query(Filter(q="zebra"), limit=2, offset=2)) == zebras[2:4]
    assert store.query(Filter(q="zebra"))["total"] == 5


def test_q_applies_the_field_filters_first(open_store):
    store = open_store()
    a = exchange("zebra a", at=T0, protocol="openai")
    b = exchange("zebra b", at=T0 + 1)
    for ex in (a, b):
        store.finished(ex)
    store.flush()
    found = store.query(Filter(q="zebra", protocol="openai"))
    assert ids(found) == [a.id] and found["examined"] == 1


def test_a_spent_budget_answers_partially_and_the_cursor_goes_on(open_store):
    store = open_store(search=Budget(seconds=60, bytes=1))  # one flow read per request
    made = add(store, 5)
    store.flush()
    wanted = {made[1].id, made[3].id}
    query = Filter(q="question")
    found: List[str] = []
    cursor = None
    calls = 0
    while True:
        page = store.query(query, limit=50, cursor=cursor)
        calls += 1
        assert page["examined"] == 1
        found += [f["id"] for f in page["flows"] if f["id"] in wanted]
        if page["next_cursor"] is None:
            assert page["partial"] is False and page["total"] is not None
            break
        assert page["partial"] is True and page["total"] is None
        cursor = page["next_cursor"]
    assert calls == 5 and sorted(found) == sorted(wanted)


def test_q_reads_in_flight_and_queued_flows_too(open_store):
    store = open_store()
    (stored,) = add(store, 1)
    store.flush()
    queued = exchange("a zebra queued", at=T0 + 5)
    store.finished(queued)
    live = in_flight(T0 + 9, "a zebra in flight")
    store.started(live)
    live.streaming("acc-1", T0 + 10)
    assert ids(store.query(Filter(q="zebra"))) == [live.id, queued.id]
    assert ids(store.query(Filter(q="question"))) == [stored.id]


def test_an_unreadable_body_does_not_match(open_store):
    store = open_store()
    (ex,) = add(store, 1)
    store.flush()
    store.disk.remove_body(1, ex.id)
    page = store.query(Filter(q="question"))
    assert page["flows"] == [] and page["total"] == 0
