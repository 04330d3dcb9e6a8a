"""Tests of the Kiro frame -> neutral chat event translator (upstream reference §5, §6.3-6.7).

Frames are built with the event-stream encoder and decoded again, or constructed directly;
expected events are written out by hand.
"""
from __future__ import annotations

import itertools
import json

import pytest

from kiroproxy.chat import (
    Finish,
    Heartbeat,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from kiroproxy.errors import Truncated, UpstreamError
from kiroproxy.kiro import eventstream
from kiroproxy.kiro.errors import ROTATE, KiroFailure
from kiroproxy.kiro.events import Translator
from kiroproxy.kiro.eventstream import Decoder, Frame

DONE = ("contextUsageEvent", {"contextUsagePercentage": 12.5})


# ----- builders ------------------------------------------------------------------------------


def frame(event_type: str, payload: object) -> Frame:
    """An event frame exactly as it comes off the wire (encoded, then decoded)."""
    (decoded,) = Decoder().feed(eventstream.event(event_type, payload))
    return decoded


def text(content: str) -> tuple:
    return ("assistantResponseEvent", {"content": content})


def tool(call_id: str, name: str, input: object = None, stop: bool = False) -> tuple:
    payload: dict = {"toolUseId": call_id, "name": name}
    if input is not None:
        payload["input"] = input
    if stop:
        payload["stop"] = True
    return ("toolUseEvent", payload)


def ids(prefix: str = "tooluse_fixed"):
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def translator(**kw) -> Translator:
    kw.setdefault("new_id", ids())
    return Translator(**kw)


def feed_all(t: Translator, events: list) -> list:
    out = []
    for item in events:
        out += t.feed(item if isinstance(item, Frame) else frame(*item))
    return out


def run(events: list, **kw) -> list:
    """Feed every frame, then finish()."""
    t = translator(**kw)
    out = feed_all(t, events)
    return out + t.finish()


def joined(events: list, kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def finish_reason(events: list) -> str:
    assert isinstance(events[-1], Finish)
    assert sum(isinstance(e, Finish) for e in events) == 1
    return events[-1].reason


# ----- text ----------------------------------------------------------------------------------


def test_plain_text_stream():
    events = run([text("Hel"), text("lo"), DONE])
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(context_percent=12.5), Finish("end_turn")]


@pytest.mark.parametrize("chunks, expected", [
    (["This is long", "This is long", " end"], "This is long end"),          # upstream duplicate
    (["12345678", "12345678"], "12345678"),                                  # exactly 8 chars
    (["1234567", "1234567"], "12345671234567"),                              # 7 chars: legit
    (["\n", "\n", "|", "|", "---", "---"], "\n\n||------"),                  # short repeats kept
    (["long chunk!", "x", "long chunk!"], "long chunk!xlong chunk!"),        # not consecutive
])
def test_duplicate_chunks(chunks, expected):
    events = run([text(c) for c in chunks] + [DONE], thinking_tags=False)
    assert joined(events, TextDelta) == expected


def test_code_event_is_text():
    events = run([text("See: "), ("codeEvent", {"content": "print(1)"}), DONE])
    assert joined(events, TextDelta) == "See: print(1)"


@pytest.mark.parametrize("event_type, payload, expected", [
    ("assistantResponseEvent", {"assistantResponseEvent": {"content": "wrapped"}}, [TextDelta("wrapped")]),
    ("contextUsageEvent", {"contextUsageEvent": {"contextUsagePercentage": 3}}, [Usage(context_percent=3.0)]),
    ("meteringEvent", {"meteringEvent": {"usage": 0.5}}, [Usage(credits=0.5)]),
    ("toolUseEvent", {"toolUseEvent": {"toolUseId": "t1", "name": "ls", "input": "{}", "stop": True}},
     [ToolCallStart("t1", "ls"), ToolCallDelta("t1", "{}"), ToolCallEnd("t1", {})]),
    # A single key that is not the event type is a real member, not a wrapper.
    ("assistantResponseEvent", {"content": "plain"}, [TextDelta("plain")]),
])
def test_wrapped_payloads_are_unwrapped(event_type, payload, expected):
    assert translator(thinking_tags=False).feed(frame(event_type, payload)) == expected


# ----- <thinking> tags -----------------------------------------------------------------------

TAG_CASES = [
    ("<thinking>\nI reason. 1 < 2\n</thinking>\n\nThe answer.", "I reason. 1 < 2", "The answer."),
    ("<think>\nshort</think>\n\nAnswer <b>", "short", "Answer <b>"),
    ("<reasoning>why</reasoning>\n\nbecause", "why", "because"),
    ("<thought>\n\nhmm\n</thought>\n\n\nok", "\nhmm", "\nok"),
    ("  \n<thinking>x</thinking>\n\nHi", "x", "Hi"),
    ("<thinking>a </thinking> b\n</thinking>\n\nAnswer", "a </thinking> b", "Answer"),
]


@pytest.mark.parametrize("full, thought, answer", TAG_CASES)
def test_thinking_tags_split_at_every_position(full, thought, answer):
    for cut in range(len(full) + 1):
        events = run([text(full[:cut]), text(full[cut:]), DONE])
        assert joined(events, ThinkingDelta) == thought, cut
        assert joined(events, TextDelta) == answer, cut
        assert finish_reason(events) == "end_turn"


@pytest.mark.parametrize("full, thought, answer", TAG_CASES)
def test_thinking_tags_fed_one_character_at_a_time(full, thought, answer):
    events = run([text(c) for c in full] + [DONE])
    assert joined(events, ThinkingDelta) == thought
    assert joined(events, TextDelta) == answer
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert not any(isinstance(e, ThinkingDelta) for e in events[first_text:])


def test_thinking_streams_incrementally():
    t = translator()
    assert t.feed(frame(*text("<thinking>\nfirst part "))) == [ThinkingDelta("first part ")]
    assert t.feed(frame(*text("and </thi"))) == [ThinkingDelta("and ")]
    assert t.feed(frame(*text("nking>\n\nDone"))) == [TextDelta("Done")]


@pytest.mark.parametrize("full", [
    "Use the <thinking> tag like this: <thinking>x</thinking>\n\nok",
    "`<thinking>` is a tag",
    "<thinkpad> is a laptop",
    "Hello <think>\nnot reasoning</think>\n\nbye",
])
def test_text_that_mentions_tags_is_not_thinking(full):
    events = run([text(full[:7]), text(full[7:]), DONE])
    assert joined(events, TextDelta) == full
    assert joined(events, ThinkingDelta) == ""


def test_text_without_tag_streams_after_first_visible_character():
    t = translator()
    assert t.feed(frame(*text("\n\n  "))) == []
    assert t.feed(frame(*text("Hello"))) == [TextDelta("\n\n  Hello")]
    assert t.feed(frame(*text("<thinking>"))) == [TextDelta("<thinking>")]


def test_partial_open_tag_released_as_text_at_the_end():
    assert joined(run([text("<thin"), DONE]), TextDelta) == "<thin"


@pytest.mark.parametrize("chunks, thought", [
    (["<thinking>\nstill going"], "still going"),
    (["<thinking>\nhalf </thin"], "half </thin"),
    (["<thinking>\nx </thinking> y"], "x </thinking> y"),
])
def test_stream_ending_inside_thinking_is_max_tokens(chunks, thought):
    events = run([text(c) for c in chunks] + [DONE])
    assert joined(events, ThinkingDelta) == thought
    assert not any(isinstance(e, TextDelta) for e in events)
    assert finish_reason(events) == "max_tokens"


def test_close_tag_followed_only_by_whitespace_at_the_end_closes_thinking():
    events = run([text("<thinking>x</thinking>\n "), DONE])
    assert joined(events, ThinkingDelta) == "x"
    assert not any(isinstance(e, TextDelta) for e in events)
    assert finish_reason(events) == "end_turn"


def test_thinking_tags_disabled_passes_text_through():
    full = "<thinking>x</thinking>\n\nHi"
    assert joined(run([text(full), DONE], thinking_tags=False), TextDelta) == full


def test_native_reasoning_events():
    events = run([
        ("reasoningContentEvent", {"text": "step 1"}),
        ("reasoningContentEvent", {"text": " step 2"}),
        ("reasoningContentEvent", {"signature": "sig=="}),
        ("reasoningContentEvent", {"redactedContent": "AAAA"}),
        text("Answer"), DONE,
    ])
    assert events[:4] == [ThinkingDelta("step 1"), ThinkingDelta(" step 2"), ThinkingSignature("sig=="),
                          TextDelta("Answer")]
    assert finish_reason(events) == "end_turn"


# ----- native tool calls ---------------------------------------------------------------------


def test_tool_call_in_fragments():
    events = run([
        text("Let me check."),
        tool("tooluse_A", "get_weather", ""),
        tool("tooluse_A", "get_weather", '{"city": '),
        tool("tooluse_A", "get_weather", '"Paris"}'),
        tool("tooluse_A", "get_weather", stop=True),
        DONE,
    ])
    assert events == [
        TextDelta("Let me check."),
        ToolCallStart("tooluse_A", "get_weather"),
        ToolCallDelta("tooluse_A", '{"city": '),
        ToolCallDelta("tooluse_A", '"Paris"}'),
        ToolCallEnd("tooluse_A", {"city": "Paris"}),
        Usage(context_percent=12.5),
        Finish("tool_use"),
    ]


def test_tool_input_given_as_object():
    events = run([tool("t1", "search", {"q": "café", "n": 2}), tool("t1", "search", stop=True), DONE])
    assert events[1:4] == [ToolCallStart("t1", "search"), ToolCallDelta("t1", '{"q":"café","n":2}'),
                          ToolCallEnd("t1", {"q": "café", "n": 2})]


def test_tool_input_object_repeated_in_later_frames_is_used_once():
    events = run([tool("t1", "search", {"q": 1}), tool("t1", "search", {"q": 1}, stop=True), DONE])
    assert events[1:4] == [ToolCallStart("t1", "search"), ToolCallDelta("t1", '{"q":1}'),
                          ToolCallEnd("t1", {"q": 1})]


def test_tool_call_without_input_ends_with_empty_arguments():
    events = run([tool("t1", "now", stop=True), DONE])
    assert events[:2] == [ToolCallStart("t1", "now"), ToolCallEnd("t1", {})]
    assert finish_reason(events) == "tool_use"


def test_two_consecutive_tool_calls_the_first_without_stop():
    events = run([
        tool("t1", "read", '{"path": "a"}'),
        tool("t2", "read", '{"path": "b"}'),
        tool("t2", "read", stop=True),
        DONE,
    ])
    assert events[1:7] == [
        ToolCallStart("t1", "read"), ToolCallDelta("t1", '{"path": "a"}'), ToolCallEnd("t1", {"path": "a"}),
        ToolCallStart("t2", "read"), ToolCallDelta("t2", '{"path": "b"}'), ToolCallEnd("t2", {"path": "b"}),
    ]
    assert finish_reason(events) == "tool_use"


def test_duplicate_frames_after_stop_are_ignored():
    call = [tool("t1", "ls", '{"dir"'), tool("t1", "ls", ': "/"}'), tool("t1", "ls", stop=True)]
    t = translator()
    first = feed_all(t, call)
    assert first[-1] == ToolCallEnd("t1", {"dir": "/"})
    assert feed_all(t, call) == []
    assert feed_all(t, [tool("t1", "ls", "", stop=True)]) == []  # a lone repeated stop frame too
    # The same call again under a new id is a repeat as well.
    repeat = [tool("t9", "ls", '{"dir"'), tool("t9", "ls", ': "/"}'), tool("t9", "ls", stop=True)]
    assert feed_all(t, repeat) == []
    feed_all(t, [DONE])
    assert t.finish() == [Finish("tool_use")]

def test_same_tool_with_other_arguments_is_not_a_repeat():
    t = translator()
    feed_all(t, [tool("t1", "ls", '{"dir": "/"}', stop=True)])
    assert t.feed(frame(*tool("t2", "ls", '{"dir"'))) == []
    assert t.feed(frame(*tool("t2", "ls", ': "/tmp"}'))) == []
    assert t.feed(frame(*tool("t2", "ls", stop=True))) == [
        ToolCallStart("t2", "ls"), ToolCallDelta("t2", '{"dir"'), ToolCallDelta("t2", ': "/tmp"}'),
        ToolCallEnd("t2", {"dir": "/tmp"})]
    assert feed_all(t, [DONE])[-1:] == [Usage(context_percent=12.5)]
    assert t.finish() == [Finish("tool_use")]


def test_an_answer_opening_with_a_tool_call_starts_the_stream_with_one_heartbeat():
    """The relay answers the client once the first event arrives; a held call must not delay it."""
    t = translator()
    assert t.feed(frame(*tool("t1", "write", '{"body": "'))) == [Heartbeat()]
    assert t.feed(frame(*tool("t1", "write", 'abc"}'))) == []
    assert t.feed(frame(*tool("t1", "write", stop=True)))[-1] == ToolCallEnd("t1", {"body": "abc"})
    assert feed_all(t, [tool("t2", "read", '{"p": '), tool("t2", "read", "1}")]) == []  # once is enough
    after_text = translator()
    feed_all(after_text, [text("Hi")])
    assert after_text.feed(frame(*tool("t1", "read", '{"p": '))) == []


def test_a_tool_call_reaches_the_client_only_once_its_input_is_whole():
    """A client runs what it receives: nothing of a call leaves before its stop frame."""
    t = translator()
    assert feed_all(t, [text("Writing."), tool("t1", "write", '{"path": "a", '),
                        tool("t1", "write", '"body": "xyz"}')]) == [TextDelta("Writing.")]
    assert t.feed(frame(*tool("t1", "write", stop=True))) == [
        ToolCallStart("t1", "write"), ToolCallDelta("t1", '{"path": "a", '), ToolCallDelta("t1", '"body": "xyz"}'),
        ToolCallEnd("t1", {"path": "a", "body": "xyz"})]


@pytest.mark.parametrize("raw", ['{"q":', '{"path": "a', '{"a": {"b": 1}', '{"a": [1, 2'])
def test_cut_tool_input_is_never_sent_and_asks_for_a_smaller_call(raw):
    """§6.5/6.7: a truncated call is executed by no one; the model is told to make a smaller one."""
    events = run([tool("t1", "write", raw), tool("t1", "write", stop=True), DONE])
    assert not [e for e in events if isinstance(e, (ToolCallStart, ToolCallDelta, ToolCallEnd))]
    notice = joined(events, TextDelta)
    assert "write" in notice and "cut off" in notice and "not run" in notice and "smaller" in notice
    assert finish_reason(events) == "max_tokens"


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '"text"', '{"a": 1} {"b": 2}'])
def test_malformed_tool_input_is_never_sent(raw):
    events = run([tool("t1", "write", raw), tool("t1", "write", stop=True), DONE])
    assert not [e for e in events if isinstance(e, (ToolCallStart, ToolCallDelta, ToolCallEnd))]
    notice = joined(events, TextDelta)
    assert "not run" in notice and "JSON object" in notice and "cut off" not in notice
    assert finish_reason(events) == "max_tokens"


def test_the_not_run_notice_starts_a_new_paragraph_after_answer_text():
    events = run([text("I will write it."), tool("t1", "write", '{"body": "'), tool("t1", "write", stop=True), DONE])
    text_events = [e.text for e in events if isinstance(e, TextDelta)]
    assert text_events[0] == "I will write it."
    assert text_events[1].startswith("\n\n[The call to tool write was cut off")


def test_a_good_call_before_a_cut_one_is_still_sent():
    events = run([tool("t1", "read", '{"p": 1}', stop=True), tool("t2", "write", '{"body": "ab', stop=True), DONE])
    assert [e for e in events if isinstance(e, ToolCallEnd)] == [ToolCallEnd("t1", {"p": 1})]
    assert "write was cut off" in joined(events, TextDelta)


def test_open_tool_call_when_the_stream_is_cut_is_truncated_and_never_sent():
    t = translator()
    out = feed_all(t, [text("Hi"), tool("t1", "write", '{"content": "abc')])
    assert out == [TextDelta("Hi")]
    assert t.flush() == []  # even a relay salvaging the partial answer gets no piece of the call
    with pytest.raises(Truncated, match="inside a tool call"):
        t.finish()


def test_tool_call_left_open_at_a_completed_end_is_closed():
    """No stop frame, but the answer is complete: a whole input is sent, a cut one is reported."""
    whole = run([tool("t1", "read", '{"p": 1}'), DONE])
    assert [e for e in whole if not isinstance(e, (Usage, Finish, Heartbeat))] == [
        ToolCallStart("t1", "read"), ToolCallDelta("t1", '{"p": 1}'), ToolCallEnd("t1", {"p": 1})]
    assert finish_reason(whole) == "tool_use"
    cut = run([tool("t1", "write", '{"content": "abc'), DONE])
    assert "write was cut off" in joined(cut, TextDelta)
    assert finish_reason(cut) == "max_tokens"


def test_restored_tool_names():
    names = {"mcp_srv_lookup_3f2a": "mcp__server__lookup_everything_in_the_catalogue"}
    events = run([
        tool("t1", "mcp_srv_lookup_3f2a", '{"q": 1}', stop=True),
        text('[Called mcp_srv_lookup_3f2a with args: {"q": 2}]'),
        DONE,
    ], tool_names=names)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [ToolCallStart("t1", "mcp__server__lookup_everything_in_the_catalogue"),
                      ToolCallStart("tooluse_fixed1", "mcp__server__lookup_everything_in_the_catalogue")]


# ----- text-form tool calls ------------------------------------------------------------------

CALL_TEXT = 'Before [Called get_weather with args: {"city": "Paris [1]", "q": "a}\\"b"}] after'
CALL_ARGS = {"city": "Paris [1]", "q": 'a}"b'}


def test_text_form_call_split_at_every_position():
    for cut in range(len(CALL_TEXT) + 1):
        events = run([text(CALL_TEXT[:cut]), text(CALL_TEXT[cut:]), DONE])
        assert joined(events, TextDelta) == "Before  after", cut
        calls = [e for e in events if not isinstance(e, (TextDelta, Usage, Finish))]
        assert calls == [ToolCallStart("tooluse_fixed1", "get_weather"),
                         ToolCallDelta("tooluse_fixed1", json.dumps(CALL_ARGS, separators=(",", ":"))),
                         ToolCallEnd("tooluse_fixed1", CALL_ARGS)], cut
        assert finish_reason(events) == "tool_use"


def test_text_form_call_one_character_at_a_time_keeps_order():
    events = run([text(c) for c in CALL_TEXT] + [DONE])
    start = events.index(ToolCallStart("tooluse_fixed1", "get_weather"))
    assert joined(events[:start], TextDelta) == "Before "
    assert isinstance(events[start + 1], ToolCallDelta)
    assert events[start + 2] == ToolCallEnd("tooluse_fixed1", CALL_ARGS)
    assert joined(events[start + 3:], TextDelta) == " after"


@pytest.mark.parametrize("full, answer, calls", [
    ("See [1] and [Calle] or [Called] [Called x] [Called x with] [Called x with args: nope]",
     "See [1] and [Calle] or [Called] [Called x] [Called x with] [Called x with args: nope]", 0),
    ('A [Called f with args: {"a": 1}] B [Called f with args: {"a": 1} ] C',
     'A  B [Called f with args: {"a": 1} ] C', 1),
    ("array [Called f with args: [1, 2]]", "array [Called f with args: [1, 2]]", 0),
    ('bad json [Called f with args: {"a": 1,}] end', 'bad json [Called f with args: {"a": 1,}] end', 0),
    ('cut off [Called f with args: {"a": ', 'cut off [Called f with args: {"a": ', 0),
])
def test_bracket_text_that_is_not_a_call_is_released_unchanged(full, answer, calls):
    events = run([text(full[:9]), text(full[9:]), DONE], thinking_tags=False)
    assert joined(events, TextDelta) == answer
    assert sum(isinstance(e, ToolCallEnd) for e in events) == calls


def test_text_form_repeat_of_a_finished_call_is_dropped():
    events = run([tool("t1", "ls", '{"dir": "/"}', stop=True),
                  text('Done. [Called ls with args: {"dir":"/"}] ok'), DONE])
    assert [e for e in events if isinstance(e, ToolCallEnd)] == [ToolCallEnd("t1", {"dir": "/"})]
    assert joined(events, TextDelta) == "Done.  ok"


def test_long_chunk_repeated_around_a_tool_call_is_kept():
    events = run([text("Checking the file."), tool("t1", "ls", "{}", stop=True), text("Checking the file."),
                  DONE])
    assert joined(events, TextDelta) == "Checking the file.Checking the file."


def test_held_text_is_released_before_a_native_tool_call():
    t = translator()
    assert t.feed(frame(*text("Checking [Called"))) == [TextDelta("Checking ")]
    assert t.feed(frame(*tool("t1", "ls", "{}", stop=True))) == [
        TextDelta("[Called"), ToolCallStart("t1", "ls"), ToolCallDelta("t1", "{}"), ToolCallEnd("t1", {})]


def test_text_form_extraction_holds_back_only_the_candidate():
    t = translator()
    assert t.feed(frame(*text("Hello [Cal"))) == [TextDelta("Hello ")]
    assert t.feed(frame(*text("endar] done"))) == [TextDelta("[Calendar] done")]
    assert t.feed(frame(*text(" [x"))) == [TextDelta(" "), TextDelta("[x")]


# ----- usage, completion, errors -------------------------------------------------------------


@pytest.mark.parametrize("event, expected", [
    (("contextUsageEvent", {"contextUsagePercentage": 42.25}), Usage(context_percent=42.25)),
    (("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.0169}), Usage(credits=0.0169)),
    (("metadataEvent", {"tokenUsage": {"uncachedInputTokens": 100, "outputTokens": 20, "totalTokens": 1120,
                                       "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 7}}),
     Usage(input_tokens=1100, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=7)),
    (("metadataEvent", {"tokenUsage": {"outputTokens": 5}}), Usage(output_tokens=5)),
])
def test_usage_events(event, expected):
    assert translator().feed(frame(*event)) == [expected]


@pytest.mark.parametrize("signal, completes", [
    (("contextUsageEvent", {"contextUsagePercentage": 1}), True),
    (("metadataEvent", {"tokenUsage": {"outputTokens": 1}}), True),
    (("meteringEvent", {"usage": 0.1}), False),
    (("messageMetadataEvent", {"conversationId": "c"}), False),
])
def test_completion_signals(signal, completes):
    t = translator()
    feed_all(t, [text("Hi"), signal])
    assert t.completed is completes
    if completes:
        assert t.finish()[-1] == Finish("end_turn")
    else:
        with pytest.raises(Truncated, match="ended before the answer was complete"):
            t.finish()


def test_truncated_stream_can_flush_partial_answer_first():
    t = translator()
    feed_all(t, [text("Hello [Called")])
    assert t.flush() == [TextDelta("[Called")]
    with pytest.raises(Truncated):
        t.finish()


@pytest.mark.parametrize("stop_reason, reason", [
    ("CONTENT_FILTERED", "refusal"), ("guardrail_intervened", "refusal"), ("end_turn", "end_turn"),
])
def test_metadata_stop_reason(stop_reason, reason):
    events = run([text("Hi"), ("metadataEvent", {"stopReason": stop_reason})])
    assert finish_reason(events) == reason


def test_saw_output_tracks_emitted_content_only():
    t = translator()
    feed_all(t, [("meteringEvent", {"usage": 1}), text("  "), text("<thin")])
    assert t.saw_output is False  # nothing shown to the client yet: a retry is still safe
    feed_all(t, [text("king>\nx")])
    assert t.saw_output is True


def test_exception_frame_raises_classified_failure():
    (exc_frame,) = Decoder().feed(eventstream.exception("ThrottlingException", "slow down"))
    with pytest.raises(KiroFailure) as caught:
        translator().feed(exc_frame)
    assert caught.value.action == ROTATE
    assert caught.value.status == 429
    assert "slow down" in caught.value.message


def test_error_frame_message_from_header():
    error = Frame({":message-type": "error", ":error-code": "InternalServerException",
                   ":error-message": "boom"}, b"")
    with pytest.raises(KiroFailure) as caught:
        translator().feed(error)
    assert caught.value.upstream_status == 500
    assert "boom" in caught.value.message


def test_invalid_state_event_raises_upstream_error():
    with pytest.raises(UpstreamError, match="INVALID_TOOL_USE: tool result missing") as caught:
        translator().feed(frame("invalidStateEvent", {"reason": "INVALID_TOOL_USE",
                                                      "message": "tool result missing"}))
    assert not isinstance(caught.value, KiroFailure)


def test_unknown_and_informational_events_are_ignored():
    t = translator()
    events = feed_all(t, [
        ("messageMetadataEvent", {"conversationId": "c", "utteranceId": "u"}),
        ("followupPromptEvent", {"followupPrompt": {"content": "more?", "userIntent": "x"}}),
        ("codeReferenceEvent", {"references": [{"licenseName": "MIT"}]}),
        ("supplementaryWebLinksEvent", {"supplementaryWebLinks": []}),
        ("citationEvent", {"citationText": "[1]"}),
        ("brandNewEvent", ["not", "an", "object"]),
        Frame({":message-type": "event", ":event-type": "weirdEvent"}, b"\x00not json"),
        Frame({":message-type": "somethingElse"}, b"{}"),
        text("ok"), DONE,
    ])
    assert events == [TextDelta("ok"), Usage(context_percent=12.5)]
    assert t.finish() == [Finish("end_turn")]
