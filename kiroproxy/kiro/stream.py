"""One Kiro answer as neutral chat events: body bytes -> eventstream.Decoder -> events.Translator.

A ChatStream is lazy: the request goes out on the first next(), on whichever thread iterates it
(the relay reads it on a pump thread). It owns its HTTP responses: each is closed when read to
the end or when close() is called, and abort() cuts the current socket from another thread so a
blocked read returns at once. Network and decoding failures surface as ProxyError.
"""
from __future__ import annotations

from typing import Callable, Iterator, Mapping, Optional

import requests
import urllib3

from ..chat import Event
from ..errors import Truncated, UpstreamError, UpstreamTimeout
from . import eventstream
from .events import Translator
from .transport import abort, iter_body, set_read_timeout


class ChatStream:
    """The events of one answer. `source(stream)` is the generator that connects (through
    stream.read()) and yields the events; the caller owns the stream and closes it."""

    def __init__(self, source: Callable[[ChatStream], Iterator[Event]]) -> None:
        self._response: Optional[requests.Response] = None
        self.aborted = False
        self._events = source(self)

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()
        if self._response is not None:
            self._response.close()

    def abort(self) -> None:
        """Cut the connection from another thread (a read blocked on it returns; no new one opens)."""
        self.aborted = True
        if self._response is not None:
            abort(self._response)

    def read(self, response: requests.Response, tool_names: Optional[Mapping[str, str]],
             idle_timeout: float) -> Iterator[Event]:
        """The events of one streaming response; after the first one, each read waits at most
        `idle_timeout` seconds. Closes the response at the end."""
        self._response = response
        decoder = eventstream.Decoder()
        translator = Translator(tool_names)
        started = False
        try:
            for chunk in _body(response):
                for frame in decoder.feed(chunk):
                    for event in translator.feed(frame):
                        yield event
                        if not started:
                            started = True
                            set_read_timeout(response, idle_timeout)
            decoder.finish()  # a corrupt frame held back after good ones raises here
            if decoder.pending:
                raise Truncated("Kiro's stream ended in the middle of a frame")
            yield from translator.finish()
        except eventstream.DecodeError as exc:
            raise UpstreamError(f"Kiro sent a corrupt event stream: {exc}") from None
        finally:
            response.close()


def _body(response: requests.Response) -> Iterator[bytes]:
    """Body chunks; network failures become typed upstream errors."""
    try:
        yield from iter_body(response)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        raise UpstreamTimeout(f"Kiro stopped sending ({type(exc).__name__})") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise UpstreamError(f"lost the connection to Kiro ({type(exc).__name__})") from None
