"""One Kiro answer as neutral chat events: body bytes -> eventstream.Decoder -> events.Translator.

A ChatStream is lazy: the request goes out on the first next(), on whichever thread iterates it
(the relay reads it on a pump thread, batch by batch: the events of one read of the body). It owns its HTTP responses: each is closed when read to
the end or when close() is called, and abort() cuts the current socket from another thread so a
blocked read returns at once. Network and decoding failures surface as ProxyError.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, List, Mapping, Optional

from ..chat import Event
from ..errors import ProxyError, Truncated, UpstreamError, UpstreamTimeout
from . import eventstream
from .events import Translator
from .transport import abort, set_read_timeout

if TYPE_CHECKING:
    import requests


class ChatStream:
    """The events of one answer. `source(stream)` is the generator that connects (through
    stream.read()) and yields the events in batches (non-empty lists, one per read of the body);
    batches() gives those, iterating gives the events one by one. The caller owns the stream
    and closes it."""

    def __init__(self, source: Callable[[ChatStream], Iterator[List[Event]]]) -> None:
        self._response: Optional[requests.Response] = None
        self.aborted = False
        self._batches = source(self)
        self._events = (event for batch in self._batches for event in batch)

    def batches(self) -> Iterator[List[Event]]:
        return self._batches

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()
        self._batches.close()
        if self._response is not None:
            self._response.close()

    def abort(self) -> None:
        """Cut the connection from another thread (a read blocked on it returns; no new one opens)."""
        self.aborted = True
        if self._response is not None:
            abort(self._response)

    def read(self, response: requests.Response, tool_names: Optional[Mapping[str, str]],
             idle_timeout: float) -> Iterator[List[Event]]:
        """The events of one streaming response, a batch per read of the body; after the first
        event, each read waits at most `idle_timeout` seconds. Closes the response at the end."""
        self._response = response
        decoder = eventstream.Decoder()
        translator = Translator(tool_names)
        started = False
        try:
            for chunk in _body(response):
                batch: List[Event] = []
                failure: Optional[Exception] = None
                try:
                    for frame in decoder.feed(chunk):
                        batch += translator.feed(frame)
                except (ProxyError, eventstream.DecodeError) as exc:  # after the events before it
                    failure = exc
                if batch:
                    yield batch
                    if not started:
                        started = True
                        set_read_timeout(response, idle_timeout)
                if failure is not None:
                    raise failure
            decoder.finish()  # a corrupt frame held back after good ones raises here
            if decoder.pending:
                raise Truncated("Kiro's stream ended in the middle of a frame")
            last = translator.finish()
            if last:
                yield last
        except eventstream.DecodeError as exc:
            raise UpstreamError(f"Kiro sent a corrupt event stream: {exc}") from None
        finally:
            response.close()


def _body(response: requests.Response) -> Iterator[bytes]:
    """Body chunks; network failures become typed upstream errors."""
    import requests  # loaded already by the call that made `response`
    import urllib3

    from .body import iter_body  # it imports requests and urllib3: not at start-up

    try:
        yield from iter_body(response)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        raise UpstreamTimeout(f"Kiro stopped sending ({type(exc).__name__})") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise UpstreamError(f"lost the connection to Kiro ({type(exc).__name__})") from None
