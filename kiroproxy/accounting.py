"""Usage accounting and client-side stop conditions over a neutral event stream.

Kiro has no stop-sequence or max-tokens fields, so both are enforced here as the text streams;
output tokens are counted from what was streamed. Pure: no I/O.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence

from . import tokens
from .chat import (
    Event,
    Finish,
    Heartbeat,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    merge_usage,
)


class Meter:
    """Tracks what streamed out and the upstream's usage hints; produces the final Usage."""

    def __init__(self, input_tokens: int, context_window: int) -> None:
        self.input_tokens = input_tokens
        self.context_window = context_window
        self.upstream = Usage()
        self._text: list = []
        self._thinking: list = []
        self.rough_output = 0  # cheap running estimate for the max_tokens limit

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
            self.rough_output += tokens.estimate(event.text)
        elif isinstance(event, ThinkingDelta):
            self._thinking.append(event.text)
            self.rough_output += tokens.estimate(event.text)
        elif isinstance(event, ToolCallStart):
            self._text.append(event.name)
        elif isinstance(event, ToolCallDelta):
            self._text.append(event.fragment)
            self.rough_output += tokens.estimate(event.fragment)
        elif isinstance(event, Usage):
            self.upstream = merge_usage(self.upstream, event)

    def final(self) -> Usage:
        """Output counted locally; input from the upstream when it reports it, else local."""
        thinking = tokens.count_output("".join(self._thinking)) if self._thinking else 0
        output = (tokens.count_output("".join(self._text)) if self._text else 0) + thinking
        up = self.upstream
        input_tokens = self.input_tokens
        if up.input_tokens:
            input_tokens = up.input_tokens
        elif up.context_percent:
            # contextUsagePercentage covers input and output of this turn.
            total = int(round(up.context_percent / 100.0 * self.context_window))
            if total > output:
                input_tokens = total - output
        return Usage(input_tokens=input_tokens, output_tokens=max(output, up.output_tokens or 0),
                     cache_read_tokens=up.cache_read_tokens, cache_write_tokens=up.cache_write_tokens,
                     reasoning_tokens=thinking, context_percent=up.context_percent, credits=up.credits)


class StopScanner:
    """Finds the first stop sequence in streamed text, holding back only a possible prefix."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""

    def feed(self, text: str) -> tuple:
        """(text safe to emit, matched stop or None). After a match, discard the rest."""
        if not self.stops:
            return text, None
        buffer = self._pending + text
        best: Optional[tuple] = None
        for stop in self.stops:
            pos = buffer.find(stop)
            # The stop completed first wins (as in generation), so chunking cannot change the answer.
            if pos != -1 and (best is None or (pos + len(stop), pos) < (best[0] + len(best[1]), best[0])):
                best = (pos, stop)
        if best is not None:
            self._pending = ""
            return buffer[:best[0]], best[1]
        cut = max(0, len(buffer) - self.hold)
        # Only hold back a tail that could still begin a stop sequence.
        while cut < len(buffer) and not any(s.startswith(buffer[cut:]) for s in self.stops):
            cut += 1
        self._pending = buffer[cut:]
        return buffer[:cut], None

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


def shape(events: Iterable[Event], meter: Meter, *, stops: Sequence[str] = (),
          max_tokens: Optional[int] = None) -> Iterator[Event]:
    """Apply stop sequences and max_tokens, drop upstream Usage, and put the final Usage right
    before Finish. Ends early (without draining `events`) when a limit is hit."""
    scanner = StopScanner(stops)
    open_tools: set = set()
    for event in events:
        if isinstance(event, Heartbeat):
            yield event
            continue
        if isinstance(event, Usage):
            meter.add(event)
            continue
        if isinstance(event, Finish):
            tail = scanner.flush()
            if tail:
                meter.add(TextDelta(tail))
                yield TextDelta(tail)
            yield meter.final()
            yield event
            return
        if isinstance(event, TextDelta):
            text, matched = scanner.feed(event.text)
            if text:
                meter.add(TextDelta(text))
                yield TextDelta(text)
            if matched is not None:
                yield meter.final()
                yield Finish("stop_sequence", matched)
                return
        else:
            tail = scanner.flush()  # keep order: held-back text goes before the next block
            if tail:
                meter.add(TextDelta(tail))
                yield TextDelta(tail)
            if isinstance(event, ToolCallStart):
                open_tools.add(event.id)
            elif isinstance(event, ToolCallEnd):
                open_tools.discard(event.id)
            meter.add(event)
            yield event
        if max_tokens and meter.rough_output >= max_tokens and not open_tools:
            yield meter.final()
            yield Finish("max_tokens")
            return
