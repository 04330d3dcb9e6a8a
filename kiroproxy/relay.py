"""Policy for one request: lease an account, fresh token, fail over, cool down, park, record.

Kiro itself is behind KiroClient.open() (payload, hosts, decoding); this module only decides.

Everything before the first upstream event can fail over: connecting, the status check and the
wait for that event (for a streaming client the connection is made and read on the stream's pump
thread, so the request thread can send keep-alives meanwhile; a whole answer is read on the
request thread itself, watched by the shared watchdog thread). open() returns once the first event is in, or, for a
streaming client, after `stream_start` seconds without one: the response then starts and the
connection attempts go on behind keep-alives. A first-event timeout moves to another account at
most once. Failures after open() returned surface as ProxyError from the event iterator.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Iterator, List, Optional, Sequence, Union

from . import accounting, tokens
from .accounts.pool import AccountPool, Lease
from .accounts.refresher import Refresher, failure_text
from .chat import ChatRequest, Event, Heartbeat, Stream
from .errors import ProxyError, ShuttingDown, TooLarge, Truncated, UpstreamError, UpstreamTimeout
from .exchange import COMPLETED, PENDING, STREAMING, Attempt, Exchange, Observer
from .kiro import errors as kiro_errors
from .kiro.auth import RefreshError
from .kiro.client import KiroClient
from .kiro.credentials import Credentials
from .kiro.errors import KiroFailure
from .kiro.models import Catalog
from .pump import ClientGone, Pump
from .watchdog import InlineRead, Watchdog

log = logging.getLogger(__name__)

TRANSIENT_RETRIES = 3
_WAITING = object()  # the pump's idle marker while the first event is awaited
TIMEOUT_TRIES = 2  # first-event timeouts before the client gets the timeout error (each try is billed)


def conversation_key(req: ChatRequest) -> Optional[str]:
    """A stable hash of a conversation's start, so its turns stay on one account."""
    first_user = next((m for m in req.messages if m.role == "user"), None)
    if first_user is None:
        return None
    seed = f"{req.system[:2000]}\x00{first_user.text[:2000]}"
    return hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()[:32]


def next_month_start(now: float) -> float:
    today = datetime.fromtimestamp(now, tz=timezone.utc)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


def next_day_start(now: float) -> float:
    return (int(now // 86400) + 1) * 86400.0


class Relay:
    def __init__(self, *, pool: AccountPool, refresher: Refresher, client: KiroClient, catalog: Catalog,
                 max_attempts: int = 6, backoff: float = 1.0, keepalive: float = 15.0, stream_start: float = 2.0,
                 observers: Sequence[Observer] = (), on_exhausted: Callable[[str], None] = lambda account_id: None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.pool = pool
        self.refresher = refresher
        self.client = client
        self.catalog = catalog
        self.max_attempts = max_attempts
        self.observers: List[Observer] = list(observers)
        self.clock = clock
        self.sleep = sleep
        self.keepalive = keepalive  # idle seconds before a Heartbeat event
        # Seconds a streaming request waits for the first event before its response starts; also
        # the keep-alive period while the first event is awaited.
        self.stream_start = stream_start
        self.backoff = backoff  # seconds before the first transient retry; doubles each time
        self.closing = threading.Event()  # set by cut_streams(): every open answer ends with an error
        # Called after an account is parked for exhausted credits (to look up the exact reset date).
        self.on_exhausted = on_exhausted
        self.watchdog = Watchdog()  # cuts whole-answer reads whose client left

    def cut_streams(self) -> None:
        """End every open answer with ShuttingDown (its protocol's in-stream error) within a pump
        tick; for the end of the shutdown grace. Answers started later end the same way."""
        self.closing.set()

    def _cut(self) -> Optional[ProxyError]:
        if self.closing.is_set():
            return ShuttingDown("the proxy is shutting down; retry the request")
        return None


    def begin(self, exchange: Exchange) -> None:
        for observer in self.observers:
            observer.started(exchange)

    def abort(self, exchange: Exchange, error: ProxyError) -> None:
        """Record a request that failed before any stream existed."""
        exchange.fail(error.status, error.kind, error.message, self.clock())
        self.finish(exchange)

    def finish(self, exchange: Exchange) -> None:
        """The exchange is over: its observers get its last snapshot."""
        snapshot = exchange.ended(self.clock())
        for observer in self.observers:
            try:
                observer.finished(snapshot)
            except Exception:  # an observer must never break a client's request
                log.exception("observer %r failed", observer)


    def open(self, req: ChatRequest, exchange: Exchange) -> Stream:
        """Connect to Kiro on the best account; raises ProxyError if no account can serve before
        the first event (or, for a streaming client, within `stream_start` seconds)."""
        model_id = self.catalog.resolve(req.model)
        info = self.catalog.info(model_id)
        exchange.routed(model_id)
        input_tokens = tokens.count_request(req)
        if input_tokens > info.context_window:
            raise TooLarge(f"prompt is too long: {input_tokens} tokens > {info.context_window} maximum",
                           tokens=input_tokens, limit=info.context_window)
        holder: List[Stream] = []
        gone = lambda: bool(holder) and holder[0].client_gone()  # noqa: E731
        answer = self._answer(req, exchange, model_id, input_tokens, gone)
        first: List[Event] = []
        for event in answer:  # raises ProxyError: nothing was sent yet, the view answers the status
            first.append(event)
            if not isinstance(event, Heartbeat) or req.stream:
                break  # content, or a streaming client waited stream_start seconds: start the response
            first.clear()  # a whole answer: keep-alives mean nothing to it
        stream = Stream(self._late(_chain(first, answer), exchange), model=model_id, input_tokens=input_tokens,
                        on_close=lambda: self._abandon(answer, exchange))
        holder.append(stream)
        return stream

    def _answer(self, req: ChatRequest, exchange: Exchange, model_id: str, input_tokens: int,
                gone: Callable[[], bool]) -> Iterator[Event]:
        """The failover loop: Heartbeats while the first event is awaited, then the answer.

        Each lease from _leases() either ends in a failure (judged by _failed, then released) or
        connects; the answer's stream then owns the lease and releases it when it ends.
        """
        conversation_id = str(uuid.uuid4())
        failures: List[ProxyError] = []
        for lease in self._leases(conversation_key(req), failures):
            try:
                first, pump = yield from self._attempt(lease, req, exchange, model_id, conversation_id, gone)
            except (KiroFailure, RefreshError) as exc:
                try:  # judged before release, so no waiting request takes the account meanwhile
                    failures.append(self._failed(lease, exc, exchange, failures, model_id, input_tokens))
                finally:
                    lease.release()
                continue
            except BaseException:
                lease.release()
                raise
            yield from self._stream(lease, req, exchange, model_id, input_tokens, first, pump, gone)
            return

    def _leases(self, session: Optional[str], failures: List[ProxyError]) -> Iterator[Lease]:
        """The next account to try, at most max_attempts times (each try that comes back added one
        entry to `failures`). When every account failed transiently (5xx, network), backs off and
        starts over, TRANSIENT_RETRIES times. Raises the last failure, or the pool's error."""
        tried: List[str] = []
        transient = 0
        while len(failures) < self.max_attempts:
            try:
                lease = self.pool.lease(exclude=tried, session_key=session)
            except ProxyError:
                if not failures:
                    raise
                if tried and transient < TRANSIENT_RETRIES and _is_transient(failures[-1]):
                    self.sleep(self.backoff * (2 ** transient))
                    transient += 1
                    tried = []
                    continue
                raise failures[-1] from None
            tried.append(lease.account_id)
            yield lease
        raise failures[-1]

    def _failed(self, lease: Lease, exc: Union[KiroFailure, RefreshError], exchange: Exchange,
                failures: List[ProxyError], model_id: str, input_tokens: int) -> ProxyError:
        """Act on one account's failure (pool state, attempt record). Returns the error the client
        gets if no other account answers; raises it when no other account may be tried."""
        if isinstance(exc, RefreshError):
            exchange.attempted(Attempt(lease.account_id, "unhealthy" if exc.permanent else "refresh", exc.message))
            if not exc.permanent:
                self.pool.cooldown(lease.account_id, 30.0, failure_text(exc), strike=False)
            return UpstreamError(f"could not refresh the Kiro token: {exc.message}", status=503, kind="overloaded")
        error = self._after_failure(lease, exc, exchange)
        if isinstance(exc.client_error, TooLarge):
            # Clients (Claude Code) compact on "prompt is too long: N tokens > M maximum".
            limit = self.catalog.info(model_id).context_window
            error = TooLarge(exc.message, tokens=max(input_tokens, limit + 1), limit=limit)
        if exc.action in (kiro_errors.FAIL, kiro_errors.SUSPEND):
            raise error from None
        if isinstance(exc.client_error, UpstreamTimeout):
            timeouts = 1 + sum(isinstance(f, KiroFailure) and isinstance(f.client_error, UpstreamTimeout)
                               for f in failures)
            if timeouts >= TIMEOUT_TRIES:  # slow for one account is usually slow for all
                raise UpstreamTimeout(f"Kiro did not start answering within "
                                      f"{self.client.first_event_timeout:g} s ({timeouts} tries)") from None
        return error

    def _late(self, events: Iterator[Event], exchange: Exchange) -> Iterator[Event]:
        """Records an answer that failed or was abandoned before it connected (the response had
        started: a streaming client's keep-alives); a connected one records itself."""
        try:
            yield from events
        except ProxyError as exc:
            if exchange.state == PENDING:
                if isinstance(exc, ShuttingDown):
                    exchange.cancelled(exc, self.clock())
                else:
                    exchange.fail(exc.status, exc.kind, exc.message, self.clock())
                self.finish(exchange)
            raise
        except (GeneratorExit, ClientGone):
            if exchange.state == PENDING:
                exchange.cancelled()
                self.finish(exchange)

    def _abandon(self, answer: Iterator[Event], exchange: Exchange) -> None:
        """Stream.close(): also when the stream was never read (its wrappers never started, so
        closing them reaches nothing), end the answer: lease released, upstream cut, flow recorded."""
        answer.close()  # type: ignore[attr-defined]
        if exchange.state == PENDING:
            exchange.cancelled()
            self.finish(exchange)

    def _after_failure(self, lease: Lease, failure: KiroFailure, exchange: Exchange) -> ProxyError:
        account_id = lease.account_id
        exchange.attempted(Attempt(account_id, failure.action, failure.message, failure.upstream_status))
        self.pool.record_error(account_id, failure.message)
        if failure.action == kiro_errors.ROTATE and not failure.same_account_retry:
            self.pool.cooldown(account_id, failure.cooldown, failure.message)
        elif failure.action == kiro_errors.EXHAUSTED:
            now = self.clock()
            until = next_day_start(now) if failure.period == "day" else next_month_start(now)
            self.pool.park(account_id, until, failure.message)
            if failure.period != "day":
                self.on_exhausted(account_id)
        elif failure.action == kiro_errors.SUSPEND:
            self.pool.suspend(account_id, failure.message)
            # Kiro suspends on abuse signals: never burst the same request over the pool.
            return UpstreamError(f"{failure.message}; the account was disabled, retry to use another",
                                 status=503, kind="overloaded")
        elif failure.action == kiro_errors.REFRESH:
            self.pool.mark_unhealthy(account_id, f"token rejected after refresh: {failure.message}")
        return failure

    def _attempt(self, lease: Lease, req: ChatRequest, exchange: Exchange, model_id: str,
                 conversation_id: str, gone: Callable[[], bool]):
        """Connect on one account; yields Heartbeats while waiting. Returns ([first event], pump)
        once the first upstream event is in; raises KiroFailure."""
        if lease.wait > 0:
            self.sleep(lease.wait)

        def reauthorize(creds: Credentials, failure: KiroFailure) -> Credentials:
            exchange.attempted(Attempt(lease.account_id, "refresh", failure.message, failure.upstream_status))
            return self.refresher.ensure_fresh(lease.account_id, stale_token=creds.access_token)

        upstream = self.client.open(self.refresher.ensure_fresh(lease.account_id), req, model_id=model_id,
                                    conversation_id=conversation_id,
                                    thinking_efforts=self.catalog.info(model_id).thinking_efforts,
                                    reauthorize=reauthorize)
        pump: Union[Pump, InlineRead]
        if req.stream:
            pump = Pump(upstream, abort=upstream.abort)  # connects and reads on its own thread
        else:
            pump = InlineRead(upstream, abort=upstream.abort, watchdog=self.watchdog)
        try:
            first = yield from self._first_event(pump, gone)
        except BaseException:
            pump.cancel()
            raise
        return first, pump

    def _first_event(self, pump: Union[Pump, InlineRead], gone: Callable[[], bool]):
        """Wait for the first upstream event, yielding a Heartbeat every `stream_start` seconds.
        Failures so far become KiroFailure, so they can still fail over."""
        events = pump.events(heartbeat=self.stream_start, client_gone=gone, idle=_WAITING, cut=self._cut)
        try:
            for event in events:
                if event is _WAITING:
                    yield Heartbeat()
                    continue
                return [event]
        except (KiroFailure, ShuttingDown):
            raise
        except ProxyError as exc:
            raise KiroFailure(kiro_errors.ROTATE, exc, cooldown=5.0, same_account_retry=True) from None
        finally:
            events.close()
        raise KiroFailure(kiro_errors.ROTATE, Truncated("Kiro closed the stream without answering"),
                          cooldown=5.0, same_account_retry=True)


    def _stream(self, lease: Lease, req: ChatRequest, exchange: Exchange, model_id: str, input_tokens: int,
                first: List[Event], pump: Union[Pump, InlineRead], gone: Callable[[], bool]) -> Iterator[Event]:
        exchange.streaming(lease.account_id, self.clock())
        info = self.catalog.info(model_id)
        meter = accounting.Meter(input_tokens, info.context_window)
        rest = pump.events(heartbeat=self.keepalive, client_gone=gone, cut=self._cut)
        events = accounting.shape(_chain(first, rest), meter, stops=req.stop, max_tokens=req.max_tokens)
        log.info("%s %s -> %s on account %s", exchange.protocol, req.model, model_id, lease.account_id)
        return self._observe(events, pump, lease, exchange, meter)

    def _observe(self, events: Iterator[Event], pump: Union[Pump, InlineRead], lease: Lease, exchange: Exchange,
                 meter: accounting.Meter) -> Iterator[Event]:
        exchange.answering()
        try:
            for event in events:
                exchange.add(event)  # a Finish completes it: encoders may stop reading right after
                yield event
            exchange.completed()
            self.pool.record_success(lease.account_id)
        except (GeneratorExit, ClientGone):
            if exchange.state != COMPLETED:
                exchange.cancelled()
            self.pool.record_success(lease.account_id)
        except ShuttingDown as exc:
            exchange.cancelled(exc, self.clock())
            raise
        except ProxyError as exc:
            exchange.fail(exc.status, exc.kind, exc.message, self.clock())
            self.pool.record_error(lease.account_id, exc.message)
            raise
        finally:
            pump.cancel()  # cuts the upstream connection if it is still open
            lease.release()
            if exchange.state == STREAMING:  # an unexpected exception escaped
                exchange.fail(500, "api_error", "internal error while streaming", self.clock())
            # Not completed: what was delivered, the output counted so far, no stop reason of its own.
            exchange.settled(None if exchange.state == COMPLETED else meter.final())
            self.finish(exchange)


def _chain(first: List[Event], rest: Iterator[Event]) -> Iterator[Event]:
    yield from first
    yield from rest


def _is_transient(error: ProxyError) -> bool:
    """5xx, capacity and network failures: worth retrying after a pause, on any account."""
    if isinstance(error, KiroFailure):
        return error.action == kiro_errors.ROTATE and error.same_account_retry
    return isinstance(error, UpstreamError)
