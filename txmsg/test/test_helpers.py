# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the one-per-mechanism helpers: L{txmsg._reactor},
L{txmsg._sink} and L{txmsg._waiters}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txmsg._reactor import maybe_global_reactor
from txmsg._sink import send_event
from txmsg._waiters import InFlight, Waiters
from txmsg.events import IEventSink
from txmsg.test._logs import captured_global_logs


class MaybeGlobalReactorTests(SynchronousTestCase):
    """
    Tests for L{maybe_global_reactor}.
    """

    def test_given(self) -> None:
        """
        A given reactor (or clock) is returned as it is.
        """
        clock = Clock()
        self.assertIs(maybe_global_reactor(clock), clock)

    def test_default(self) -> None:
        """
        L{None} gives the global reactor.
        """
        from twisted.internet import reactor  # the global reactor this test compares with

        self.assertIs(maybe_global_reactor(None), reactor)


@implementer(IEventSink)
class Sink:
    """
    An event sink that records, returns C{result} or raises C{error}.
    """

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, Any, str | None]] = []
        self.result = result
        self.error = error

    def dispatch(
        self, name: str, payload: Any = None, *, source: str | None = None, metadata: Any = None
    ) -> Any:
        self.calls.append((name, payload, source))
        if self.error is not None:
            raise self.error
        return self.result


class SendEventTests(SynchronousTestCase):
    """
    Tests for L{send_event}.
    """

    log = Logger()

    def logged(self) -> EventLoggingObserver:
        return captured_global_logs(self)

    def test_no_sink(self) -> None:
        """
        Without a sink nothing happens.
        """
        send_event(None, "x", {}, "test", self.log)

    def test_dispatched(self) -> None:
        """
        The event goes to the sink's C{dispatch} with its source.
        """
        sink = Sink(result=succeed(None))
        send_event(sink, "a.b", {"n": 1}, "test", self.log)
        self.assertEqual(sink.calls, [("a.b", {"n": 1}, "test")])

    def test_raising_sink(self) -> None:
        """
        A sink that raises is logged, not raised.
        """
        send_event(Sink(error=ZeroDivisionError()), "a.b", {}, "test", self.log)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failing_deferred(self) -> None:
        """
        A sink whose Deferred fails is logged, naming the event.
        """
        events = self.logged()
        send_event(Sink(result=fail(ZeroDivisionError())), "a.b", {}, "test", self.log)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual([e.get("event") for e in events if "log_failure" in e], ["a.b"])


class WaitersTests(SynchronousTestCase):
    """
    Tests for L{Waiters}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.waiters: Waiters[str] = Waiters(self.clock)

    def test_fire(self) -> None:
        """
        L{Waiters.fire} fires every waiting Deferred with the result and
        empties the list.
        """
        a, b = self.waiters.wait(), self.waiters.wait()
        self.assertEqual(len(self.waiters), 2)
        self.waiters.fire("ready")
        self.assertEqual([self.successResultOf(a), self.successResultOf(b)], ["ready"] * 2)
        self.assertEqual(len(self.waiters), 0)

    def test_fail(self) -> None:
        """
        L{Waiters.fail} fails every waiting Deferred.
        """
        d = self.waiters.wait()
        self.waiters.fail(ValueError("stopped"))
        self.failureResultOf(d, ValueError)

    def test_cancel(self) -> None:
        """
        A cancelled wait leaves the list and is not fired later.
        """
        d = self.waiters.wait(timeout=10)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(len(self.waiters), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.waiters.fire("late")

    def test_timeout(self) -> None:
        """
        A wait with a timeout fails with C{TimeoutError} (or what
        C{on_timeout} makes) once it expires, and leaves the list.
        """
        plain = self.waiters.wait(timeout=2)
        custom = self.waiters.wait(timeout=3, on_timeout=lambda: KeyError("late"))
        self.clock.advance(2)
        self.failureResultOf(plain, TimeoutError)
        self.assertNoResult(custom)
        self.clock.advance(1)
        self.failureResultOf(custom, KeyError)
        self.assertEqual(len(self.waiters), 0)

    def test_fired_before_timeout(self) -> None:
        """
        Firing cancels the pending timeout.
        """
        d = self.waiters.wait(timeout=2)
        self.waiters.fire("ok")
        self.assertEqual(self.successResultOf(d), "ok")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class InFlightTests(SynchronousTestCase):
    """
    Tests for L{InFlight}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inflight = InFlight(self.clock)

    def test_idle_drain(self) -> None:
        """
        With nothing running, a drain fires at once.
        """
        self.assertFalse(self.inflight)
        self.successResultOf(self.inflight.drain())

    def test_drain_after_last(self) -> None:
        """
        A drain fires when the last running operation leaves.
        """
        self.inflight.enter()
        self.inflight.enter()
        d = self.inflight.drain()
        self.inflight.leave()
        self.assertNoResult(d)
        self.assertEqual(len(self.inflight), 1)
        self.inflight.leave()
        self.successResultOf(d)

    def test_track(self) -> None:
        """
        A tracked Deferred counts until it fires; its result is unchanged.
        """
        op: Deferred[int] = Deferred()
        tracked = self.inflight.track(op)
        self.assertEqual(self.inflight.count, 1)
        drained = self.inflight.drain()
        op.callback(7)
        self.assertEqual(self.successResultOf(tracked), 7)
        self.successResultOf(drained)

    def test_drain_timeout(self) -> None:
        """
        A drain with a timeout fails with C{TimeoutError} when operations
        still run then.
        """
        self.inflight.enter()
        d = self.inflight.drain(timeout=5)
        self.clock.advance(5)
        self.failureResultOf(d, TimeoutError)
        self.assertEqual(self.inflight.count, 1)
