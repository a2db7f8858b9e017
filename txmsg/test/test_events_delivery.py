# -*- test-case-name: txmsg.test.test_events_delivery -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.events} delivery: Deferred, coroutine and blocking
handlers, error isolation, C{handler.failed} and timeouts.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import (
    HANDLER_FAILED,
    BaseHandler,
    Event,
    HandlerFailed,
    HandlerTimeoutError,
)
from txmsg.test._events_fakes import ThreadingClock, make_registry
from txmsg.testing import SyncThreadPool


class AsyncHandlerTests(SynchronousTestCase):
    """
    Handlers returning Deferreds or coroutines.
    """

    def setUp(self) -> None:
        self.registry, self.clock, self.logged = make_registry()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_deferred(self) -> None:
        """
        The dispatch result waits for a handler's Deferred and records its
        result.
        """
        pending: Deferred[str] = Deferred()
        self.registry.add("a", lambda event: pending)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertNoResult(d)
        pending.callback("later")
        self.assertEqual(self.successResultOf(d).values, ["later"])

    def test_fired_deferred(self) -> None:
        """
        An already fired Deferred counts as finished at once.
        """
        self.registry.add("a", lambda event: succeed(1))
        self.registry.add("a", lambda event: 2)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).values, [1, 2])

    def test_concurrent(self) -> None:
        """
        Asynchronous handlers run concurrently: the next handler, and the
        next event's handlers, start while an earlier Deferred is pending.
        Outcomes keep start order whatever the completion order.
        """
        started = []
        pending: dict[str, Deferred[str]] = {}

        def slow(event: Event) -> Deferred[str]:
            started.append(("slow", event.name))
            pending[event.name] = Deferred()
            return pending[event.name]

        def fast(event: Event) -> str:
            started.append(("fast", event.name))
            return "fast"

        self.registry.add("*", slow)
        self.registry.add("*", fast)
        d1 = self.registry.dispatch("one")
        d2 = self.registry.dispatch("two")
        self.clock.advance(0)
        self.assertEqual(
            started,
            [("slow", "one"), ("fast", "one"), ("slow", "two"), ("fast", "two")],
        )
        pending["two"].callback("slow two")
        self.assertEqual(self.successResultOf(d2).values, ["slow two", "fast"])
        self.assertNoResult(d1)
        pending["one"].callback("slow one")
        self.assertEqual(self.successResultOf(d1).values, ["slow one", "fast"])

    def test_coroutine(self) -> None:
        """
        An C{async def} handler is run with C{Deferred.fromCoroutine}; its
        return value is the outcome.
        """
        pending: Deferred[int] = Deferred()

        async def handler(event: Event) -> int:
            value = await pending
            return value + event.payload

        self.registry.add("a", handler)
        d = self.registry.dispatch("a", 1)
        self.clock.advance(0)
        self.assertNoResult(d)
        pending.callback(41)
        self.assertEqual(self.successResultOf(d).values, [42])

    def test_coroutine_base_handler(self) -> None:
        """
        A L{BaseHandler} may define C{execute} as a coroutine.
        """

        class Handler(BaseHandler):
            async def execute(self, event: Event) -> str:
                return "async " + event.name

        self.registry.add("a", Handler)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).values, ["async a"])


class BlockingHandlerTests(SynchronousTestCase):
    """
    C{blocking=True} handlers run in the thread pool.
    """

    def setUp(self) -> None:
        self.pool = SyncThreadPool(hold=True)
        self.registry, self.clock, self.logged = make_registry(ThreadingClock(), self.pool)
        self.calls: list[Any] = []
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def blocking(self, event: Event) -> str:
        self.calls.append(event.name)
        return "blocked " + event.name

    def test_in_pool(self) -> None:
        """
        A blocking handler is not called by the drain but handed to the
        thread pool; the result comes back through C{callFromThread}.
        """
        self.registry.add("a", self.blocking, blocking=True)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.calls, [])
        self.assertEqual(len(self.pool.work), 1)
        self.pool.run_all()
        self.assertEqual(self.calls, ["a"])
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).values, ["blocked a"])

    def test_reactor_pool(self) -> None:
        """
        Without an explicit pool, the reactor's thread pool is used.
        """
        registry, clock, _ = make_registry(ThreadingClock(self.pool))
        registry.add("a", self.blocking, blocking=True)
        d = registry.dispatch("a")
        clock.advance(0)
        self.pool.run_all()
        clock.advance(0)
        self.assertEqual(self.successResultOf(d).values, ["blocked a"])

    def test_failure(self) -> None:
        """
        An exception in a blocking handler is isolated like any other.
        """

        def broken(event: Event) -> None:
            raise ValueError("in thread")

        self.registry.add("a", broken, blocking=True)
        self.registry.add("a", self.blocking)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.pool.run_all()
        self.clock.advance(0)
        result = self.successResultOf(d)
        self.assertEqual(result.values, ["blocked a"])
        result.failures[0].failure.trap(ValueError)

    def test_timeout(self) -> None:
        """
        A blocking handler that takes longer than its timeout is reported as
        timed out; its late result is ignored.
        """
        self.registry.add("a", self.blocking, blocking=True, timeout=3)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.clock.advance(3)
        (outcome,) = self.successResultOf(d).outcomes
        self.assertTrue(outcome.timed_out)
        self.pool.run_all()
        self.clock.advance(0)
        self.assertEqual(self.calls, ["a"])


class IsolationTests(SynchronousTestCase):
    """
    One failing handler never stops the others; failures are logged,
    recorded and announced as L{HANDLER_FAILED} events.
    """

    def setUp(self) -> None:
        self.registry, self.clock, self.logged = make_registry()
        self.announced: list[Event] = []
        self.registry.add(HANDLER_FAILED, self.announced.append)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def failures_logged(self) -> list[Any]:
        return [e["log_failure"] for e in self.logged if "log_failure" in e]

    def test_exception(self) -> None:
        """
        A handler that raises is logged with C{log.failure}, recorded as a
        failed outcome and announced; later handlers still run and the
        dispatch Deferred succeeds.
        """

        def broken(event: Event) -> None:
            raise ValueError("boom")

        self.registry.add("a", broken)
        self.registry.add("a", lambda event: "ok")
        d = self.registry.dispatch("a", "p")
        self.clock.advance(0)
        result = self.successResultOf(d)
        self.assertEqual(result.values, ["ok"])
        (outcome,) = result.failures
        self.assertIs(outcome.handler, broken)
        self.assertFalse(outcome.timed_out)
        outcome.failure.trap(ValueError)
        (logged,) = self.failures_logged()
        self.assertIs(logged, outcome.failure)
        (announcement,) = self.announced
        self.assertEqual(announcement.source, "txmsg.events")
        payload = announcement.payload
        self.assertIsInstance(payload, HandlerFailed)
        self.assertEqual((payload.event.payload, payload.handler), ("p", broken))
        self.assertIs(payload.failure, outcome.failure)

    def test_failed_deferred(self) -> None:
        """
        A handler whose Deferred fails is isolated the same way.
        """
        self.registry.add("a", lambda event: fail(KeyError("k")))
        self.registry.add("a", lambda event: "ok")
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        result = self.successResultOf(d)
        self.assertEqual(result.values, ["ok"])
        result.failures[0].failure.trap(KeyError)
        self.assertEqual(len(self.failures_logged()), 1)
        self.assertEqual(len(self.announced), 1)

    def test_emit_failures(self) -> None:
        """
        Failures of handlers of emitted events are logged and announced too.
        """

        async def broken(event: Event) -> None:
            raise ValueError("async boom")

        self.registry.add("a", broken)
        self.registry.emit("a")
        self.clock.advance(0)
        self.assertEqual(len(self.failures_logged()), 1)
        self.assertEqual(self.announced[0].payload.event.name, "a")

    def test_no_recursion(self) -> None:
        """
        A failing C{handler.failed} handler, or a failing C{*} handler, is
        logged but does not cause another C{handler.failed} event.
        """
        calls = []

        def broken(event: Event) -> None:
            calls.append(event.name)
            raise ValueError(event.name)

        self.registry.add("*", broken)
        self.registry.add(HANDLER_FAILED, broken)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(calls, ["a", HANDLER_FAILED, HANDLER_FAILED])
        self.assertEqual(len(self.announced), 1)
        self.assertEqual(len(self.failures_logged()), 3)
        self.assertEqual(len(self.successResultOf(d).failures), 1)


class TimeoutTests(SynchronousTestCase):
    """
    Per-handler timeouts cancel the handler's Deferred.
    """

    def setUp(self) -> None:
        self.registry, self.clock, self.logged = make_registry()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_cancelled(self) -> None:
        """
        A handler's Deferred still pending after its timeout is cancelled;
        the outcome is timed out, the other handlers are unaffected, and a
        L{HANDLER_FAILED} event says so.
        """
        cancelled = []
        announced: list[Event] = []
        self.registry.add(HANDLER_FAILED, announced.append)
        self.registry.add("a", lambda event: Deferred(cancelled.append), timeout=2)
        self.registry.add("a", lambda event: "ok")
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        result = self.successResultOf(d)
        self.assertEqual(len(cancelled), 1)
        self.assertEqual(result.values, ["ok"])
        (outcome,) = result.timed_out
        outcome.failure.trap(HandlerTimeoutError)
        self.clock.advance(0)
        self.assertTrue(announced[0].payload.timed_out)

    def test_coroutine_cancelled(self) -> None:
        """
        A timed-out coroutine handler gets C{CancelledError} at its await.
        """
        seen = []

        async def handler(event: Event) -> None:
            try:
                await Deferred()
            except CancelledError:
                seen.append("cancelled")
                raise

        self.registry.add("a", handler, timeout=1)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(seen, ["cancelled"])
        self.assertEqual(len(self.successResultOf(d).timed_out), 1)

    def test_in_time(self) -> None:
        """
        A handler finishing before its timeout succeeds and its timeout call
        is cancelled (nothing is left scheduled).
        """
        pending: Deferred[str] = Deferred()
        self.registry.add("a", lambda event: pending, timeout=5)
        d = self.registry.dispatch("a")
        self.clock.advance(1)
        pending.callback("done")
        self.assertEqual(self.successResultOf(d).values, ["done"])

    def test_handler_recovers(self) -> None:
        """
        If cancelling makes the handler's Deferred succeed anyway, that value
        is the outcome.
        """
        self.registry.add("a", lambda event: Deferred(lambda d: d.callback("fallback")), timeout=1)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d).values, ["fallback"])

    def test_sync_ignores_timeout(self) -> None:
        """
        A timeout on a handler returning a plain value schedules nothing.
        """
        self.registry.add("a", lambda event: 1, timeout=1)
        d = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).values, [1])
