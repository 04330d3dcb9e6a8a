"""The Exchange: written only through its methods, read through frozen snapshots that nothing
written later reaches, and safe to render from another thread while the relay writes it."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from kiroproxy import chat
from kiroproxy.errors import ShuttingDown
from kiroproxy.exchange import CANCELLED, COMPLETED, ERROR, PENDING, STREAMING, Attempt, Exchange
from kiroproxy.store.flows import Filter, FlowStore
from kiroproxy.store.stats import Stats
from tests import factories

T0 = 1_700_000_000.0


def accepted(question: str = "the question") -> Exchange:
    """An exchange as the web layer leaves it: body read and parsed."""
    ex = Exchange("anthropic", "/v1/messages", client="tests", headers={"user-agent": "tests/1.0"}, received_at=T0)
    ex.read(factories.anthropic_body(question), None)
    ex.accepted(factories.request(question, model="claude-sonnet-4-5"), stream=True)
    return ex


def test_the_web_layer_and_the_relay_write_what_they_know():
    ex = accepted()
    ex.routed("claude-sonnet-4.5")
    ex.attempted(Attempt("acc-1", "rotate", "throttled", 429, at=T0 + 0.1))
    ex.streaming("acc-2", T0 + 0.5)
    ex.answering()
    for event in (chat.TextDelta("hel"), chat.TextDelta("lo"), chat.Usage(input_tokens=3, output_tokens=2),
                  chat.Finish("end_turn")):
        ex.add(event)
    ex.settled(None)
    snap = ex.ended(T0 + 2)
    assert (snap.protocol, snap.path, snap.client, dict(snap.headers)) == (
        "anthropic", "/v1/messages", "tests", {"user-agent": "tests/1.0"})
    assert (snap.requested_model, snap.stream, snap.model, snap.account_id) == (
        "claude-sonnet-4-5", True, "claude-sonnet-4.5", "acc-2")
    assert snap.body == factories.anthropic_body("the question") and snap.request.model == "claude-sonnet-4-5"
    assert [(a.account_id, a.outcome) for a in snap.attempts] == [("acc-1", "rotate"), ("acc-2", "ok")]
    assert snap.state == COMPLETED and snap.reply.text == "hello" and snap.reply.finish == "end_turn"
    assert snap.usage == chat.Usage(input_tokens=3, output_tokens=2)
    assert (snap.ttfb_ms, snap.duration_ms) == (500.0, 2000.0)


def test_a_snapshot_does_not_change_when_the_exchange_is_written_afterwards():
    ex = accepted()
    ex.routed("claude-sonnet-4.5")
    ex.streaming("acc-1", T0 + 0.5)
    ex.answering()
    ex.add(chat.TextDelta("first"))
    snap = ex.snapshot()
    ex.add(chat.TextDelta(" and more"))
    ex.add(chat.ToolCallStart("t1", "Read"))
    ex.add(chat.ToolCallEnd("t1", {"path": "a"}))
    ex.attempted(Attempt("acc-9", "fail"))
    ex.fail(502, "upstream", "broke", T0 + 3)
    ex.settled(chat.Usage(input_tokens=1, output_tokens=1))
    assert snap.state == STREAMING and snap.error is None and snap.completed_at is None
    assert [a.account_id for a in snap.attempts] == ["acc-1"]
    assert snap.reply.text == "first" and snap.reply.tool_uses == [] and snap.reply.finish == "end_turn"
    assert snap.usage == chat.Usage()
    later = ex.snapshot()
    assert later.state == ERROR and later.reply.text == "first and more" and len(later.reply.tool_uses) == 1
    assert later.reply.finish == ERROR and later.error == {"kind": "upstream", "status": 502, "message": "broke"}


def test_snapshots_are_frozen_and_the_exchange_has_no_other_writers():
    ex = accepted()
    snap = ex.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = COMPLETED  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.headers["user-agent"] = "changed"  # type: ignore[index]
    with pytest.raises(AttributeError):
        ex.model = "written from outside"  # type: ignore[attr-defined]
    ex.fail(400, "invalid_request", "bad", T0 + 1)
    with pytest.raises(TypeError):
        ex.snapshot().error["message"] = "changed"  # type: ignore[index]


def test_ended_keeps_the_time_a_failure_set_and_cancelling_with_an_error_keeps_it():
    ex = accepted()
    ex.fail(429, "rate_limit", "slow down", T0 + 1)
    assert ex.ended(T0 + 5).completed_at == T0 + 1
    quiet = accepted()
    assert quiet.ended(T0 + 5).completed_at == T0 + 5 and quiet.ended(T0 + 9).completed_at == T0 + 5
    cut = accepted()
    cut.cancelled(ShuttingDown("the proxy is shutting down; retry the request"), T0 + 2)
    snap = cut.snapshot()
    assert snap.state == CANCELLED and snap.status == 503 and snap.error["kind"] == "overloaded"


def test_an_unfinished_answer_keeps_what_was_delivered_and_its_state_as_finish():
    ex = accepted()
    ex.streaming("acc-1", T0 + 0.5)
    ex.answering()
    ex.add(chat.TextDelta("partial"))
    ex.add(chat.Usage(input_tokens=10, output_tokens=99))
    ex.cancelled()
    ex.settled(chat.Usage(input_tokens=10, output_tokens=1))
    snap = ex.ended(T0 + 1)
    assert snap.state == CANCELLED and snap.reply.finish == CANCELLED
    assert snap.usage == chat.Usage(input_tokens=10, output_tokens=1)


def test_an_in_flight_flow_renders_from_another_thread_while_the_relay_writes(tmp_path):
    store = FlowStore(tmp_path / "flows", Stats(tmp_path / "stats.json"), account_name=lambda account_id: "n")
    ex = accepted("a zebra question")
    store.started(ex)
    assert store.query(Filter())["flows"][0]["state"] == PENDING
    done = threading.Event()
    failures = []

    def relay() -> None:  # the relay's writes, as fast as they come
        try:
            ex.routed("claude-sonnet-4.5")
            for n in range(200):
                ex.attempted(Attempt(f"acc-{n}", "rotate", "throttled", 429))
            ex.streaming("acc-ok", T0 + 1)
            ex.answering()
            for n in range(3000):
                ex.add(chat.TextDelta(f"word{n} "))
                if n % 7 == 0:
                    ex.add(chat.ThinkingDelta("hmm "))
                if n % 50 == 0:
                    ex.add(chat.ToolCallStart(f"t{n}", "Read"))
                    ex.add(chat.ToolCallEnd(f"t{n}", {"n": n}))
            ex.add(chat.Finish("end_turn"))
            ex.settled(None)
        except Exception as exc:  # reported by the reader's thread
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=relay)
    writer.start()
    seen = set()
    while not done.is_set():
        row = store.query(Filter())["flows"][0]
        seen.add(row["state"])
        assert row["retries"] == len(row["attempts"]) - 1 or not row["attempts"]
        store.get(ex.id)
        store.query(Filter(q="zebra"))
        store.summary(Filter())
    writer.join(10)
    assert failures == []
    final = store.get(ex.id)
    assert final["in_flight"] and final["state"] == COMPLETED and final["tool_calls"] == 60
    assert seen <= {PENDING, STREAMING, COMPLETED}
    store.finished(ex.ended(T0 + 9))
    assert store.get(ex.id)["response"]["text"].startswith("word0 ")
    store.close()
