"""Tests for accounting: stop sequences across chunks, shape() ordering and limits, Meter usage."""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import pytest

from kiroproxy import tokens
from kiroproxy.accounting import Meter, StopScanner, shape
from kiroproxy.chat import (
    Finish,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)


def scan(chunks: Iterable[str], stops: Sequence[str]) -> Tuple[str, Optional[str], List[str]]:
    """Feed chunks until a stop matches: (emitted text, matched stop, each emitted piece)."""
    scanner = StopScanner(stops)
    pieces = []
    for chunk in chunks:
        text, matched = scanner.feed(chunk)
        pieces.append(text)
        if matched is not None:
            return "".join(pieces), matched, pieces
    pieces.append(scanner.flush())
    return "".join(pieces), None, pieces


def splits(text: str, cuts: int) -> Iterator[List[str]]:
    """Every way to cut `text` at `cuts` positions (empty chunks included)."""
    for points in itertools.combinations_with_replacement(range(len(text) + 1), cuts):
        bounds = (0, *points, len(text))
        yield [text[a:b] for a, b in zip(bounds, bounds[1:])]


# ----- StopScanner -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, stops, before, stop", [
    ("Hello STOP world", ["STOP"], "Hello ", "STOP"),
    ("answer</end>tail", ["</end>"], "answer", "</end>"),
    ("abc\n\nHuman: more", ["\n\nHuman:"], "abc", "\n\nHuman:"),
    ("x<e<en<end>y", ["<end>"], "x<e<en", "<end>"),
    ("aaab-rest", ["aab"], "a", "aab"),
    ("xabce", ["abcd", "bc"], "xa", "bc"),
    ("xabcd", ["abcd", "bc"], "xa", "bc"),  # "bc" is complete before "abcd" is
    ("xabcd", ["bcd", "abcd"], "x", "abcd"),  # both complete together: the earlier start wins
    ("one, two; three", [";", ","], "one", ","),
])
def test_stop_split_at_every_pair_of_positions(text, stops, before, stop):
    for chunks in splits(text, 2):
        assert scan(chunks, stops)[:2] == (before, stop), chunks


def test_stop_fed_one_character_at_a_time_holds_back_only_a_possible_prefix():
    emitted, matched, pieces = scan(list("abc STX STOP!"), ["STOP"])
    assert (emitted, matched) == ("abc STX ", "STOP")
    # 'a','b','c',' ' go straight out; 'S','T' are held until 'X' shows they are not a stop.
    assert pieces[:4] == ["a", "b", "c", " "]
    assert pieces[4:7] == ["", "", "STX"]


def test_overlapping_stops_the_first_completed_wins_whatever_the_chunking():
    for chunks in (["xabcd"], list("xabcd"), ["xab", "cd"], ["xabc", "d"]):
        assert scan(chunks, ["abcd", "bc"])[:2] == ("xa", "bc")
        assert scan(chunks, ["bcd", "abcd"])[:2] == ("x", "abcd")


def test_stop_repeating_its_own_prefix():
    assert scan(["a", "a", "a", "b", "z"], ["aab"])[:2] == ("a", "aab")


def test_text_without_a_stop_comes_out_whole_after_flush():
    emitted, matched, pieces = scan(["Hello S", "TO", "P?"], ["STOPS"])
    assert (emitted, matched) == ("Hello STOP?", None)


def test_held_tail_is_returned_by_flush():
    scanner = StopScanner(["STOP"])
    assert scanner.feed("abc ST") == ("abc ", None)
    assert scanner.flush() == "ST"
    assert scanner.flush() == ""


@pytest.mark.parametrize("stops", [[], [""], ["", ""]])
def test_no_stops_pass_text_through_unheld(stops):
    scanner = StopScanner(stops)
    for chunk in ["a", "bc", "ST", "OP"]:
        assert scanner.feed(chunk) == (chunk, None)
    assert scanner.flush() == ""


def test_stop_at_the_very_start():
    assert scan(["STOPrest"], ["STOP"])[:2] == ("", "STOP")


# ----- shape -------------------------------------------------------------------------------------

class Source:
    """An event iterator that records how far it was consumed."""

    def __init__(self, events) -> None:
        self.events = list(events)
        self.taken = 0

    def __iter__(self):
        for event in self.events:
            self.taken += 1
            yield event


def run(events, *, input_tokens: int = 10, window: int = 200_000, **kw):
    source = Source(events)
    return list(shape(iter(source), Meter(input_tokens, window), **kw)), source


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_one_final_usage_right_before_finish():
    out, _ = run([TextDelta("Hel"), Usage(context_percent=1.0), TextDelta("lo"),
                  Usage(input_tokens=77, credits=0.02), Finish("end_turn")])
    usages = [e for e in out if isinstance(e, Usage)]
    assert len(usages) == 1
    assert out[-2] is usages[0] and out[-1] == Finish("end_turn")
    assert usages[0].input_tokens == 77 and usages[0].credits == 0.02
    assert text_of(out) == "Hello"


def test_stream_without_finish_gets_no_usage():
    out, _ = run([TextDelta("cut"), Usage(input_tokens=5)])
    assert out == [TextDelta("cut")]


def test_stop_sequence_ends_the_stream_with_text_before_it_only():
    out, source = run([TextDelta("The answer ST"), TextDelta("OP and more"), TextDelta("never read"),
                       Finish("end_turn")], stops=("STOP",))
    assert text_of(out) == "The answer "
    assert isinstance(out[-2], Usage)
    assert out[-1] == Finish("stop_sequence", "STOP")
    assert source.taken == 2  # stopped without draining the upstream


def test_stop_sequence_is_not_reported_when_only_a_prefix_appears():
    out, _ = run([TextDelta("a ST"), TextDelta("ORY"), Finish("end_turn")], stops=("STOP",))
    assert text_of(out) == "a STORY"
    assert out[-1] == Finish("end_turn")


def test_held_text_is_flushed_before_finish():
    out, _ = run([TextDelta("abc ST"), Finish("end_turn")], stops=("STOP",))
    assert [e for e in out if not isinstance(e, Usage)] == [TextDelta("abc "), TextDelta("ST"), Finish("end_turn")]


def test_held_text_is_flushed_before_a_tool_call():
    events = [TextDelta("Let me check S"), ToolCallStart("t1", "ls"), ToolCallDelta("t1", '{"p":"STOP"}'),
              ToolCallEnd("t1", {"p": "STOP"}), Finish("tool_use")]
    out, _ = run(events, stops=("STOP",))
    assert out[:5] == [TextDelta("Let me check "), TextDelta("S"), ToolCallStart("t1", "ls"),
                       ToolCallDelta("t1", '{"p":"STOP"}'), ToolCallEnd("t1", {"p": "STOP"})]
    assert out[-1] == Finish("tool_use")


def test_held_text_is_flushed_before_thinking():
    out, _ = run([TextDelta("x S"), ThinkingDelta("hmm"), Finish("end_turn")], stops=("STOP",))
    assert out[:3] == [TextDelta("x "), TextDelta("S"), ThinkingDelta("hmm")]


def test_max_tokens_cuts_the_stream():
    words = [TextDelta("word " * 5) for _ in range(50)]
    out, source = run([*words, Finish("end_turn")], max_tokens=12)
    assert out[-1] == Finish("max_tokens")
    assert isinstance(out[-2], Usage)
    assert 0 < len(text_of(out)) < len("word " * 5 * 50)
    assert source.taken < len(words)


def test_max_tokens_does_not_cut_inside_a_tool_call():
    args = '{"path": "' + "a/" * 200 + '"}'
    events = [ToolCallStart("t1", "read"), ToolCallDelta("t1", args[:100]), ToolCallDelta("t1", args[100:]),
              ToolCallEnd("t1", {"path": "a/" * 200}), TextDelta("more"), Finish("tool_use")]
    out, _ = run(events, max_tokens=1)
    assert out[:4] == events[:4]
    assert out[-1] == Finish("max_tokens")
    assert TextDelta("more") not in out


def test_no_limits_pass_events_through():
    events = [ThinkingDelta("think"), TextDelta("hi"), ToolCallStart("t", "x"), ToolCallEnd("t", {}),
              Finish("tool_use")]
    out, _ = run(events)
    assert [e for e in out if not isinstance(e, Usage)] == events


# ----- Meter -------------------------------------------------------------------------------------

def test_output_is_counted_from_streamed_text():
    meter = Meter(input_tokens=50, context_window=200_000)
    meter.add(TextDelta("Hello "))
    meter.add(TextDelta("world"))
    usage = meter.final()
    assert usage.output_tokens == tokens.count_output("Hello world")
    assert usage.input_tokens == 50


def test_input_from_metadata_input_tokens_wins():
    meter = Meter(input_tokens=50, context_window=200_000)
    meter.add(Usage(context_percent=10.0))
    meter.add(Usage(input_tokens=1234, cache_read_tokens=1000, cache_write_tokens=5, credits=0.3))
    usage = meter.final()
    assert usage.input_tokens == 1234
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.credits) == (1000, 5, 0.3)


def test_input_corrected_from_context_percent():
    meter = Meter(input_tokens=50, context_window=200_000)
    meter.add(Usage(context_percent=1.5))
    usage = meter.final()
    assert usage.input_tokens == 3000
    assert usage.context_percent == 1.5


def test_context_percent_covers_input_and_output():
    meter = Meter(input_tokens=50, context_window=100_000)
    meter.add(TextDelta("some answer text here"))
    meter.add(Usage(context_percent=2.0))
    usage = meter.final()
    assert usage.output_tokens > 0
    assert usage.input_tokens + usage.output_tokens == 2000


def test_context_percent_too_small_keeps_the_local_input_count():
    meter = Meter(input_tokens=50, context_window=1_000)
    meter.add(TextDelta("word " * 40))
    meter.add(Usage(context_percent=0.1))  # 1 token: less than the output itself
    assert meter.final().input_tokens == 50


def test_upstream_output_count_is_used_when_larger():
    meter = Meter(input_tokens=5, context_window=200_000)
    meter.add(TextDelta("hi"))
    meter.add(Usage(output_tokens=999))
    assert meter.final().output_tokens == 999


def test_thinking_counts_as_output_and_reasoning():
    meter = Meter(input_tokens=5, context_window=200_000)
    meter.add(ThinkingDelta("let me think about it"))
    meter.add(TextDelta("answer"))
    usage = meter.final()
    expected_thinking = tokens.count_output("let me think about it")
    assert usage.reasoning_tokens == expected_thinking
    assert usage.output_tokens == expected_thinking + tokens.count_output("answer")


def test_tool_call_arguments_count_as_output():
    meter = Meter(input_tokens=5, context_window=200_000)
    meter.add(ToolCallStart("t1", "read_file"))
    meter.add(ToolCallDelta("t1", '{"path": "a.py"}'))
    assert meter.final().output_tokens == tokens.count_output('read_file{"path": "a.py"}')


def test_nothing_streamed_is_zero_output():
    usage = Meter(input_tokens=5, context_window=200_000).final()
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (5, 0, 0)
