"""Tests for jsonmode: whole-answer JSON extraction and the streaming fence stripper, fed at every
split point of the text."""
from __future__ import annotations

import json
from typing import List

import pytest

from kiroproxy import chat, jsonmode

FENCED = '```json\n{"answer": 4}\n```'


def stripped(pieces: List[str]) -> str:
    """What a FenceStripper sends for `pieces` fed in order, flushed at the end."""
    stripper = jsonmode.FenceStripper()
    return "".join([stripper.feed(piece) for piece in pieces] + [stripper.flush()])


def splits(text: str) -> List[List[str]]:
    """`text` cut in two and in three at every pair of points, plus one character at a time."""
    out = [[text[:i], text[i:j], text[j:]] for i in range(len(text) + 1) for j in range(i, len(text) + 1)]
    return out + [list(text)]


@pytest.mark.parametrize("text, expected", [
    (FENCED, '{"answer": 4}'),
    ('Sure! Here it is:\n```json\n{"a": [1, 2]}\n```\nAnything else?', '{"a": [1, 2]}'),
    ('```\n[1, 2]\n```', "[1, 2]"),
    ('The answer is {"a": 1}, as asked.', '{"a": 1}'),
    ('Not {this}, but {"b": true}.', '{"b": true}'),
    ('{"already": "json"}', '{"already": "json"}'),
    ('  {"spaced": 1}\n', '  {"spaced": 1}\n'),
    ("no json here", "no json here"),
    ("42", "42"),
])
def test_extract_json(text, expected):
    assert jsonmode.extract_json(text) == expected


def test_json_value_in_says_none_for_json_and_for_no_json():
    assert jsonmode.json_value_in('{"a": 1}') is None
    assert jsonmode.json_value_in("plain words") is None
    assert jsonmode.json_value_in(FENCED) == '{"answer": 4}'


def test_json_parts_joins_the_texts_at_the_first_text():
    call = chat.ToolUse("t1", "f", {})
    parts = [chat.Thinking("hmm"), chat.Text("```json\n{\"a\":"), call, chat.Text(" 1}\n```")]
    assert jsonmode.json_parts(parts) == [chat.Thinking("hmm"), chat.Text('{"a": 1}'), call]
    untouched = [chat.Text("no json"), call]
    assert jsonmode.json_parts(untouched) == untouched
    assert jsonmode.json_parts([call]) == [call]


def test_a_fenced_answer_loses_its_fences_at_every_split():
    for pieces in splits(FENCED + "\n"):
        assert stripped(pieces) == '{"answer": 4}', pieces


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', '{"a": 1}'),
    ('  \n```JSON \r\n[1, 2]\r\n``` \n', "[1, 2]"),
    ('{"code": "```py\\nx\\n```"}', '{"code": "```py\\nx\\n```"}'),
    ('```json\n{"code": "``` inside"}\n```', '{"code": "``` inside"}'),
    ('```json\n{"a": 1}\n', '{"a": 1}\n'),  # no closing fence: the blank tail stays
    ("Here: ```json\n{}\n```", "Here: ```json\n{}\n```"),  # prose first: untouched while streaming
    ("``", "``"),
    ("```json", "```json"),  # a fence line that never ends is given back as it was
])
def test_stripper_outcomes(text, expected):
    for pieces in splits(text):
        assert stripped(pieces) == expected, pieces


def test_stripper_holds_back_only_a_few_characters():
    stripper = jsonmode.FenceStripper()
    assert stripper.feed("```json\n") == ""
    body = '{"items": [' + ", ".join(str(n) for n in range(500)) + "]}"
    sent = stripper.feed(body)
    assert sent == body  # nothing in it could start the closing fence
    assert stripper.feed("\n``") == ""  # could be the closing fence: held
    assert stripper.feed("` but more") == "\n``` but more"  # it was not
    assert stripper.feed("\n```\n") == "" and stripper.flush() == ""
    unfenced = jsonmode.FenceStripper()
    assert unfenced.feed('{"a"') == '{"a"'  # decided at once: not fenced, passes through


def test_flush_resets_for_the_next_segment():
    stripper = jsonmode.FenceStripper()
    assert stripper.feed("```json\n[1]\n```") == "[1]" and stripper.flush() == ""
    assert stripper.feed("```\n[2]") == "[2]" and stripper.flush() == ""


def test_strip_fences_over_events_flushes_before_other_events():
    events = [chat.ThinkingDelta("plan"), chat.TextDelta("```json\n{\"a\""), chat.Heartbeat(),
              chat.TextDelta(": 1}\n``"), chat.Usage(output_tokens=3), chat.TextDelta("`"),
              chat.ToolCallStart("t1", "f"), chat.ToolCallEnd("t1", {}), chat.Finish("tool_use")]
    out = list(jsonmode.strip_fences(iter(events)))
    assert out == [chat.ThinkingDelta("plan"), chat.TextDelta('{"a"'), chat.Heartbeat(), chat.TextDelta(": 1}"),
                   chat.Usage(output_tokens=3), chat.ToolCallStart("t1", "f"), chat.ToolCallEnd("t1", {}),
                   chat.Finish("tool_use")]
    assert json.loads("".join(e.text for e in out if isinstance(e, chat.TextDelta))) == {"a": 1}


def test_strip_fences_releases_held_text_when_the_events_run_out():
    out = list(jsonmode.strip_fences(iter([chat.TextDelta('{"a": 1}\n')])))
    assert "".join(e.text for e in out) == '{"a": 1}\n'
    cut = list(jsonmode.strip_fences(iter([chat.TextDelta("```json\n{\"a\": 1}\n  ")])))
    assert "".join(e.text for e in cut) == '{"a": 1}\n  '
