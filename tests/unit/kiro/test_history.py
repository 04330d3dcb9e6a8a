"""Tests for kiro.history.repair on neutral messages (payload tests cover the rendered JSON)."""
from __future__ import annotations

import random

import pytest

from kiroproxy import chat
from kiroproxy.kiro import history

from .test_payload import assistant, result, use, user
from .test_payload_generated import random_request


def roles(messages) -> str:
    return "".join(m.role[0] for m in messages)


@pytest.mark.parametrize("seed", range(200))
def test_repair_is_idempotent_and_alternates(seed):
    req = random_request(random.Random(seed))
    once = history.repair(req.messages, tools_declared=bool(req.tools))
    assert history.repair(once, tools_declared=bool(req.tools)) == once
    assert roles(once) == "ua" * (len(once) // 2) + "u"


def test_leading_assistant_and_trailing_assistant_get_empty_user_turns():
    repaired = history.repair((assistant("hi"), user("q"), assistant("prefill")), tools_declared=False)
    assert repaired == (user(), assistant("hi"), user("q"), assistant("prefill"), user())


def test_no_messages_give_one_empty_user_message():
    assert history.repair((), tools_declared=True) == (user(),)


def test_without_declared_tools_calls_and_results_become_text():
    repaired = history.repair((user("go"), assistant(use("t1", "ls", path=".")), user(result("t1", "a.py"))),
                              tools_declared=False)
    assert repaired == (user("go"), assistant('[Tool call ls (t1)]: {"path":"."}'),
                        user("[Tool result for t1]: a.py"))


def test_parts_a_role_cannot_carry_become_text_or_are_dropped():
    image = chat.Image("image/png", "iVBO")
    repaired = history.repair((
        user("q", use("t9", "x"), chat.Thinking("hmm")),
        assistant("a", result("t8", "late", is_error=True), image),
        user("next")), tools_declared=True)
    assert repaired == (
        user("q", "[Tool call x (t9)]: {}"),
        assistant("a", "[Tool result for t8 (error)]: late", history.IMAGE_OMITTED),
        user("next"))


def test_results_pair_with_the_preceding_uses_only():
    repaired = history.repair((
        user("go"), assistant(use("t1", "x"), use("t2", "x")),
        user("text first", result("t2", "two"), result("ghost", "g"), result("t2", "again"))),
        tools_declared=True)
    assert repaired[-1] == user(
        result("t2", "two"), chat.ToolResult("t1", (chat.Text(history.NO_RESULT),), is_error=True),
        "text first", "[Tool result for ghost]: g", "[Tool result for t2]: again")


def test_id_less_tool_use_gets_a_positional_id():
    repaired = history.repair((user("go"), assistant(chat.ToolUse("", "x", {"": 1, "k": 2}))), tools_declared=True)
    assert repaired[1] == assistant(chat.ToolUse("tooluse_1_0", "x", {"k": 2}))
    assert history.results(repaired[2])[0].tool_use_id == "tooluse_1_0"
