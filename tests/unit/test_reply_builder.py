"""ReplyBuilder folds events into a Reply: checked against a plain reference fold (the string
rebuilt on every delta) over generated event sequences, with the reply also read midway."""
from __future__ import annotations

from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st

from kiroproxy.chat import (Finish, Reply, ReplyBuilder, Text, TextDelta, Thinking, ThinkingDelta,
                            ThinkingSignature, ToolCallEnd, ToolCallStart, ToolUse, Usage)


def reference(events: List[object]) -> Reply:
    reply, names = Reply(model="m"), {}
    parts = reply.parts
    for event in events:
        last = parts[-1] if parts else None
        if isinstance(event, TextDelta):
            if isinstance(last, Text):
                parts[-1] = Text(last.text + event.text)
            else:
                parts.append(Text(event.text))
        elif isinstance(event, ThinkingDelta):
            if isinstance(last, Thinking) and last.signature is None:
                parts[-1] = Thinking(last.text + event.text)
            else:
                parts.append(Thinking(event.text))
        elif isinstance(event, ThinkingSignature):
            if isinstance(last, Thinking):
                parts[-1] = Thinking(last.text, event.signature)
            else:
                parts.append(Thinking("", event.signature))
        elif isinstance(event, ToolCallStart):
            names[event.id] = event.name
        elif isinstance(event, ToolCallEnd):
            parts.append(ToolUse(event.id, names.get(event.id, ""), event.input))
        elif isinstance(event, Finish):
            reply.finish = event.reason
    return reply


EVENTS = st.lists(st.one_of(
    st.builds(TextDelta, st.sampled_from(["a", "bc", "", "é"])),
    st.builds(ThinkingDelta, st.sampled_from(["t", "hm"])),
    st.builds(ThinkingSignature, st.sampled_from(["sig"])),
    st.builds(ToolCallStart, st.sampled_from(["t1", "t2"]), st.just("name")),
    st.builds(ToolCallEnd, st.sampled_from(["t1", "t2"]), st.just({"x": 1})),
    st.builds(Usage, st.just(3), st.just(5)),
    st.builds(Finish, st.sampled_from(["end_turn", "tool_use"])),
), max_size=30)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(events=EVENTS, peek=st.integers(0, 30))
def test_the_builder_folds_like_the_reference(events, peek):
    builder = ReplyBuilder("m")
    for index, event in enumerate(events):
        if index == peek:
            assert builder.reply.parts == reference(events[:index]).parts  # read while still open
        builder.add(event)
    expected = reference(events)
    assert (builder.reply.parts, builder.reply.finish) == (expected.parts, expected.finish)


def test_a_long_answer_is_one_text_part():
    builder = ReplyBuilder("m")
    for _ in range(20000):
        builder.add(TextDelta("xy"))
    assert builder.reply.parts == [Text("xy" * 20000)]
