# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Delivery half of L{txmsg.events.EventRegistry}: queueing, the per-batch
drain, outcome gathering, timeouts and failure isolation.  The rules are
documented in L{txmsg.events}.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.events._model import (
    _EMPTY,
    HANDLER_FAILED,
    DispatchResult,
    Event,
    HandlerFailed,
    HandlerTimeoutError,
    _frozen_metadata,
    _make_event,
    _make_result,
    _new,
    _next_id,
    _set_id,
    _set_metadata,
    _set_name,
    _set_payload,
    _set_source,
    _set_timestamp,
)
from txmsg.events._registration import Registration, _Gather, _to_timeout

_ASYNC = (Deferred, CoroutineType)
_SOURCE = "txmsg.events"


class _Delivery:
    """
    Mixin of L{txmsg.events.EventRegistry} that owns the queue and delivers
    events.  The registration half provides C{_get_reactor}, C{_resolve},
    C{_add} and the C{_cache}/C{_queue}/C{_drain_call} attributes.
    """

    log = Logger()
    _reactor: IReactorTime | None
    _cache: dict[str, tuple[Registration, ...]]
    _queue: list[tuple[Event, tuple[Registration, ...], Any]]
    _drain_call: Any
    _delivering: bool
    dispatch_counts: dict[str, int]
    failure_counts: dict[str, int]

    if TYPE_CHECKING:

        def _get_reactor(self) -> IReactorTime: ...

        def _schedule(self) -> None: ...

        def _resolve(self, name: str) -> tuple[Registration, ...]: ...

        def _add(self, *args: Any, **kwargs: Any) -> Registration: ...

    def dispatch(
        self,
        name: str,
        payload: Any = None,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Deferred[DispatchResult]:
        """
        Make an L{Event} and deliver it on a later reactor turn.

        @return: a Deferred firing with the L{DispatchResult} once every
            handler has finished (asynchronous ones included).  It never
            errbacks because of a handler.  Cancelling it only stops waiting.
        """
        regs = self._cache.get(name)
        if regs is None:
            regs = self._resolve(name)
        d: Deferred[DispatchResult] = Deferred()
        self._queue.append((self._event(name, payload, source, metadata), regs, d))
        if self._drain_call is None:
            self._schedule()
        return d

    def _event(
        self, name: str, payload: Any, source: str | None, metadata: Mapping[str, Any] | None
    ) -> Event:
        """An L{Event} stamped with the reactor's time (the dispatch path)."""
        reactor = self._reactor or self._get_reactor()
        return _make_event(
            name,
            payload,
            source,
            reactor.seconds(),
            _frozen_metadata(metadata) if metadata else _EMPTY,
        )

    def dispatch_now(
        self,
        name: str,
        payload: Any = None,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Deferred[DispatchResult]:
        """
        Like L{dispatch}, but deliver in the caller's stack when nothing is
        queued ahead of this event and no handler is running: for a caller
        that the reactor itself called for this event (a message that just
        arrived), so that its handlers run without waiting a reactor turn.

        The ordering and isolation rules are L{dispatch}'s: when events are
        queued, or when a handler calls this, the event is queued like any
        other (so handlers never run inside handlers).

        @return: a Deferred firing with the L{DispatchResult}; it has
            already fired when every handler finished synchronously.
        """
        if self._queue or self._delivering:
            return self.dispatch(name, payload, source=source, metadata=metadata)
        regs = self._cache.get(name)
        if regs is None:
            regs = self._resolve(name)
        event = self._event(name, payload, source, metadata)
        counts = self.dispatch_counts
        counts[name] = counts.get(name, 0) + 1
        d: Deferred[DispatchResult] = Deferred()
        self._delivering = True
        try:
            # Fires d before it has callbacks: the caller's run after this.
            self._deliver(event, regs, d)
        finally:
            self._delivering = False
        return d

    def dispatch_event(self, event: Event) -> Deferred[DispatchResult]:
        """Like L{dispatch}, for an L{Event} you built yourself."""
        if not isinstance(event, Event):
            raise TypeError(f"dispatch_event() needs an Event, not {event!r}")
        regs = self._cache.get(event.name)
        if regs is None:
            regs = self._resolve(event.name)
        return self._enqueue(event, regs)

    def _enqueue(self, event: Event, regs: tuple[Registration, ...]) -> Deferred[DispatchResult]:
        d: Deferred[DispatchResult] = Deferred()
        self._queue.append((event, regs, d))
        if self._drain_call is None:
            self._schedule()
        return d

    def emit(
        self,
        name: str,
        payload: Any = None,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Fire-and-forget L{dispatch} for hot paths: same delivery, ordering
        and isolation rules, but no Deferred and no L{DispatchResult} are
        made, and nothing at all is done when no handler matches C{name}.
        """
        regs = self._cache.get(name)
        if regs is None:
            regs = self._resolve(name)
        if regs:
            reactor = self._reactor or self._get_reactor()
            # _make_event() inlined: this is the hottest line of the registry.
            event = _new(Event)
            _set_name(event, name)
            _set_payload(event, payload)
            _set_source(event, source)
            _set_id(event, _next_id())
            _set_timestamp(event, reactor.seconds())
            _set_metadata(event, _frozen_metadata(metadata) if metadata else _EMPTY)
            self._queue.append((event, regs, None))
            if self._drain_call is None:
                self._drain_call = reactor.callLater(0, self._drain)

    def wait_for(self, pattern: str, timeout: float | None = None) -> Deferred[Event]:
        """
        A Deferred firing with the next event matching C{pattern} dispatched
        after this call.  Cancelling it unregisters the waiter.

        @param timeout: errback with L{twisted.internet.defer.TimeoutError}
            after this many seconds.
        """
        d: Deferred[Event] = Deferred(lambda _: reg.cancel())
        reg = self._add(pattern, d.callback, 0, True, False, None, internal=True)
        if timeout is not None:
            d.addTimeout(timeout, self._get_reactor())
        return d

    # -- delivery --------------------------------------------------------------------

    def _drain(self) -> None:
        """Deliver the events queued so far (later ones wait for the next turn)."""
        self._drain_call = None
        batch = self._queue
        self._queue = []
        self._delivering = True
        try:
            self._deliver_batch(batch)
        finally:
            self._delivering = False

    def _deliver_batch(self, batch: list[tuple[Event, tuple[Registration, ...], Any]]) -> None:
        counts = self.dispatch_counts
        for event, regs, gather in batch:
            counts[event.name] = counts.get(event.name, 0) + 1
            if gather is not None:
                self._deliver(event, regs, gather)
                continue
            for reg in regs:
                if reg.active:
                    try:
                        result = reg._call(event)
                    except Exception:
                        self._report(Failure(), reg, event)
                    else:
                        if result is not None and isinstance(result, _ASYNC):
                            self._follow(reg, event, result, None, 0)

    def _deliver(
        self,
        event: Event,
        regs: tuple[Registration, ...],
        deferred: Deferred[DispatchResult],
    ) -> None:
        """Deliver one event and gather the outcomes for its Deferred."""
        outcomes: list[Any] = []
        gather = None  # made only when a handler returns something asynchronous
        for reg in regs:
            if not reg.active:
                continue
            try:
                result = reg._call(event)
            except Exception:
                failure = Failure()
                timed_out = self._report(failure, reg, event)
                if not reg._internal:
                    outcomes.append((reg.handler, None, failure, timed_out))
                continue
            if result is not None and isinstance(result, _ASYNC):
                if gather is None:
                    gather = _Gather(deferred, event, outcomes)
                outcomes.append(None)
                gather.pending += 1
                self._follow(reg, event, result, gather, len(outcomes) - 1)
            elif not reg._internal:
                outcomes.append((reg.handler, result, None, False))
        if gather is None:
            deferred.callback(_make_result(event, outcomes))
        else:
            gather.settle()

    def _follow(
        self,
        reg: Registration,
        event: Event,
        result: Any,
        gather: _Gather | None,
        index: int,
    ) -> None:
        """Watch an asynchronous handler result."""
        if not isinstance(result, Deferred):
            result = Deferred.fromCoroutine(result)
        if reg.timeout is not None:
            result.addTimeout(reg.timeout, self._get_reactor(), _to_timeout)
        result.addCallbacks(
            self._succeeded,
            self._failed,
            (reg, gather, index),
            None,
            (reg, event, gather, index),
        )

    def _succeeded(self, value: Any, reg: Registration, gather: _Gather | None, index: int) -> None:
        if gather is not None:
            gather.outcomes[index] = (reg.handler, value, None, False)
            gather.settle()

    def _failed(
        self,
        failure: Failure,
        reg: Registration,
        event: Event,
        gather: _Gather | None,
        index: int,
    ) -> None:
        """Errback of an asynchronous handler result: report and record it."""
        timed_out = self._report(failure, reg, event)
        if gather is not None:
            gather.outcomes[index] = (reg.handler, None, failure, timed_out)
            gather.settle()

    def _report(self, failure: Failure, reg: Registration, event: Event) -> bool:
        """
        Isolate a failed handler: log it and emit L{HANDLER_FAILED}, unless
        the failing handler was itself handling a L{HANDLER_FAILED} event (so
        a broken failure handler cannot recurse).

        @return: whether the failure is a timeout.
        """
        timed_out = failure.check(HandlerTimeoutError) is not None
        self.failure_counts[event.name] = self.failure_counts.get(event.name, 0) + 1
        # A handler whose caller reports its failures itself (the worker does,
        # with retry context) sets log_failures = False.
        if getattr(reg.handler, "log_failures", True):
            self.log.failure(
                "Event handler {handler!r} failed handling {event_name!r}",
                failure,
                handler=reg.handler,
                event_name=event.name,
                timed_out=timed_out,
            )
        if event.name != HANDLER_FAILED:
            self.emit(
                HANDLER_FAILED,
                HandlerFailed(event, reg.handler, failure, timed_out),
                source=_SOURCE,
            )
        return timed_out
