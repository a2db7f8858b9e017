# -*- test-case-name: txmsg.test.test_events_dispatch -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.events}: matching, ordering, scheduling, unregistering
during dispatch, once-handlers and L{EventRegistry.wait_for}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import HANDLER_FAILED, Event, EventRegistry, Registration, handles
from txmsg.test._events_fakes import Recorder, make_registry


class MatchingTests(SynchronousTestCase):
    """
    Which registrations an event goes to, and in which order.
    """

    def setUp(self) -> None:
        self.registry, self.clock, _ = make_registry()
        self.seen: list[Any] = []

    def labels(self, name: str) -> list[str]:
        d = self.registry.dispatch(name)
        self.clock.advance(0)
        self.successResultOf(d)
        labels = [label for label, _ in self.seen]
        del self.seen[:]
        return labels

    def add(self, pattern: str, label: str, **options: Any) -> Registration:
        return self.registry.add(pattern, Recorder(self.seen, label), **options)

    def test_exact(self) -> None:
        """
        A plain pattern matches exactly that name, case-sensitively.
        """
        self.add("order.created", "exact")
        self.assertEqual(self.labels("order.created"), ["exact"])
        self.assertEqual(self.labels("order.created.v2"), [])
        self.assertEqual(self.labels("Order.created"), [])

    def test_globs(self) -> None:
        """
        Glob patterns: C{*} matches any characters including dots, C{?} one
        character, and C{*} alone every event.
        """
        self.add("order.*", "order")
        self.add("order.?", "one")
        self.add("*", "all")
        self.assertEqual(self.labels("order.created"), ["order", "all"])
        self.assertEqual(self.labels("order.line.added"), ["order", "all"])
        self.assertEqual(self.labels("order.x"), ["order", "one", "all"])
        self.assertEqual(self.labels("order"), ["all"])
        self.assertEqual(self.labels("ORDER.x"), ["all"])

    def test_ordering(self) -> None:
        """
        Handlers run by priority, higher first, then in registration order,
        exact and glob registrations alike.
        """
        self.add("*", "glob-0")
        self.add("a", "exact-0")
        self.add("a", "exact-5", priority=5)
        self.add("?", "glob-5", priority=5)
        self.add("a", "exact-neg", priority=-1)
        self.assertEqual(self.labels("a"), ["exact-5", "glob-5", "glob-0", "exact-0", "exact-neg"])
        self.assertEqual(
            [r.handler.label for r in self.registry.registrations_for("a")],
            ["exact-5", "glob-5", "glob-0", "exact-0", "exact-neg"],
        )

    def test_cache_invalidation(self) -> None:
        """
        Adding or removing a registration after a name was dispatched (and
        its resolution cached) changes what the next event of that name gets.
        """
        self.add("a.b", "exact")
        self.assertEqual(self.labels("a.b"), ["exact"])
        glob = self.add("a.*", "glob")
        self.assertEqual(self.labels("a.b"), ["exact", "glob"])
        self.registry.remove(glob)
        self.assertEqual(self.labels("a.b"), ["exact"])
        self.add("a.b", "second")
        self.assertEqual(self.labels("a.b"), ["exact", "second"])

    def test_cache_bounded(self) -> None:
        """
        The resolution cache does not grow past its size.
        """
        registry = EventRegistry(reactor=self.clock, cache_size=4)
        registry.add("*", lambda event: None)
        for i in range(10):
            registry.emit(f"e{i}")
        self.assertLessEqual(len(registry._cache), 4)
        self.clock.advance(0)

    def test_name_must_be_str(self) -> None:
        """
        Dispatching a name that is not a string fails at once.
        """
        self.assertRaises(TypeError, self.registry.dispatch, 7)
        self.assertRaises(TypeError, self.registry.dispatch_event, "a")


class SchedulingTests(SynchronousTestCase):
    """
    Dispatch is reactor-driven: handlers run in a drain scheduled with
    C{callLater(0)}, never inside the caller's stack.
    """

    def setUp(self) -> None:
        self.registry, self.clock, _ = make_registry()
        self.seen: list[Any] = []
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_not_reentrant(self) -> None:
        """
        L{EventRegistry.dispatch} returns before any handler runs; the
        handlers run when the reactor turns.
        """
        self.registry.add("a", Recorder(self.seen, "h", "value"))
        d = self.registry.dispatch("a")
        self.assertEqual(self.seen, [])
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual(self.seen, [("h", "a")])
        self.assertEqual(self.successResultOf(d).values, ["value"])

    def test_one_drain_per_batch(self) -> None:
        """
        Several dispatches before the reactor turns share one scheduled
        drain, which delivers them in order.
        """
        self.registry.add("*", Recorder(self.seen, "h"))
        for name in ("a", "b", "c"):
            self.registry.dispatch(name)
        self.registry.emit("d")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual([name for _, name in self.seen], ["a", "b", "c", "d"])

    def test_dispatch_from_handler(self) -> None:
        """
        An event dispatched by a handler is not delivered inside that
        handler nor in the same drain: it waits for the next drain.
        """
        states = []

        def first(event: Event) -> None:
            self.registry.dispatch("second")
            states.append((list(self.seen), len(self.clock.getDelayedCalls())))

        self.registry.add("first", first)
        self.registry.add("second", Recorder(self.seen, "second"))
        self.registry.dispatch("first")
        self.clock.advance(0)
        self.assertEqual(states, [([], 1)])
        self.assertEqual(self.seen, [("second", "second")])

    def test_no_handlers(self) -> None:
        """
        Dispatching an event nobody handles still fires, on the next turn,
        with an empty result; emitting it schedules nothing at all.
        """
        self.registry.emit("nobody")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        d = self.registry.dispatch("nobody")
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).outcomes, ())

    def test_event_fields(self) -> None:
        """
        The event carries the name, payload, source and metadata given to
        C{dispatch}, and the reactor's time.
        """
        got = []
        self.registry.add("a", got.append)
        self.clock.advance(12.5)
        d = self.registry.dispatch("a", {"p": 1}, source="redis", metadata={"m": 2})
        self.clock.advance(0)
        (event,) = got
        self.assertEqual(
            (event.name, event.payload, event.source, event.timestamp),
            ("a", {"p": 1}, "redis", 12.5),
        )
        self.assertEqual(dict(event.metadata), {"m": 2})
        self.assertIs(self.successResultOf(d).event, event)

    def test_dispatch_event(self) -> None:
        """
        L{EventRegistry.dispatch_event} delivers the given event itself.
        """
        got = []
        self.registry.add("a", got.append)
        event = Event("a", 1)
        d = self.registry.dispatch_event(event)
        self.clock.advance(0)
        self.assertEqual(got, [event])
        self.assertIs(got[0], event)
        self.successResultOf(d)

    def test_emit(self) -> None:
        """
        L{EventRegistry.emit} returns nothing and delivers on the next turn.
        """
        self.registry.add("a", Recorder(self.seen, "h"))
        self.assertIsNone(self.registry.emit("a", 1, source="s", metadata={"k": 1}))
        self.assertEqual(self.seen, [])
        self.clock.advance(0)
        self.assertEqual(self.seen, [("h", "a")])

    def test_handlers_at_dispatch_time(self) -> None:
        """
        An event goes to the handlers registered when it was dispatched: one
        added afterwards does not see it, one removed before delivery is
        skipped.
        """
        early = self.registry.add("a", Recorder(self.seen, "early"))
        self.registry.add("a", Recorder(self.seen, "kept"))
        d = self.registry.dispatch("a")
        self.registry.add("a", Recorder(self.seen, "late"))
        self.registry.remove(early)
        self.clock.advance(0)
        self.assertEqual(self.seen, [("kept", "a")])
        self.assertEqual(len(self.successResultOf(d).outcomes), 1)


class DispatchNowTests(SynchronousTestCase):
    """
    L{EventRegistry.dispatch_now} delivers in the caller's stack when the
    registry is idle, and queues like C{dispatch} otherwise.
    """

    def setUp(self) -> None:
        self.registry, self.clock, self.logged = make_registry()
        self.seen: list[Any] = []
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_idle_delivers_at_once(self) -> None:
        """
        With nothing queued, the handlers run before C{dispatch_now}
        returns, its Deferred has fired, no drain is scheduled, and the
        event is counted.
        """
        self.registry.add("a", Recorder(self.seen, "h", "value"))
        d = self.registry.dispatch_now("a", 1, source="amqp:q")
        self.assertEqual(self.seen, [("h", "a")])
        result = self.successResultOf(d)
        self.assertEqual(result.values, ["value"])
        self.assertEqual((result.event.payload, result.event.source), (1, "amqp:q"))
        self.assertEqual(self.registry.dispatch_counts, {"a": 1})

    def test_behind_queued_events(self) -> None:
        """
        Events queued before it are not overtaken: it waits for the drain
        and is delivered after them.
        """
        self.registry.add("*", Recorder(self.seen, "h"))
        self.registry.dispatch("first")
        d = self.registry.dispatch_now("second")
        self.assertEqual(self.seen, [])
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual([name for _, name in self.seen], ["first", "second"])
        self.successResultOf(d)

    def test_from_handler_queues(self) -> None:
        """
        Called by a handler (of a drain or of another C{dispatch_now}), it
        queues: handlers never run inside handlers.
        """
        inner: list[Any] = []

        def outer(event: Event) -> None:
            inner.append(self.registry.dispatch_now("inner"))
            inner.append(list(self.seen))

        self.registry.add("outer", outer)
        self.registry.add("inner", Recorder(self.seen, "inner"))
        self.successResultOf(self.registry.dispatch_now("outer"))
        d, seen_inside = inner
        self.assertEqual(seen_inside, [])
        self.assertNoResult(d)
        self.clock.advance(0)
        self.assertEqual(self.seen, [("inner", "inner")])
        self.successResultOf(d)

    def test_callbacks_run_after_delivery(self) -> None:
        """
        The returned Deferred's callbacks run after the delivery is over,
        so a caller that dispatches again from them is delivered at once
        too (the worker's next message).
        """
        self.registry.add("*", Recorder(self.seen, "h"))
        d = self.registry.dispatch_now("a")
        d.addCallback(lambda _: self.registry.dispatch_now("b"))
        self.assertEqual([name for _, name in self.seen], ["a", "b"])
        self.assertEqual(self.successResultOf(d).event.name, "b")

    def test_failure_isolated(self) -> None:
        """
        A handler that raises is recorded in the result, as with
        C{dispatch}; the Deferred does not errback.
        """

        def broken(event: Event) -> None:
            raise ValueError("no")

        failed: list[Any] = []
        self.registry.add("a", broken)
        self.registry.add(HANDLER_FAILED, failed.append)
        result = self.successResultOf(self.registry.dispatch_now("a"))
        (outcome,) = result.failures
        self.assertTrue(outcome.failure.check(ValueError))
        self.assertEqual(len(self.logged), 1)
        self.assertEqual(failed, [])  # emitted, for the next turn
        self.clock.advance(0)
        self.assertEqual([e.payload.event.name for e in failed], ["a"])


class UnregisterDuringDispatchTests(SynchronousTestCase):
    """
    Removing handlers while an event is being delivered.
    """

    def setUp(self) -> None:
        self.registry, self.clock, _ = make_registry()
        self.seen: list[Any] = []

    def test_remove_later_handler(self) -> None:
        """
        A handler that removes a later handler of the same event prevents
        that handler from running, for this and queued events.
        """
        victim = self.registry.add("a", Recorder(self.seen, "victim"), priority=-1)

        def remover(event: Event) -> None:
            self.seen.append(("remover", event.name))
            self.registry.remove(victim)

        self.registry.add("a", remover)
        d1 = self.registry.dispatch("a")
        d2 = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.seen, [("remover", "a"), ("remover", "a")])
        self.assertEqual(len(self.successResultOf(d1).outcomes), 1)
        self.successResultOf(d2)

    def test_remove_self(self) -> None:
        """
        A handler may remove itself: it completes, later handlers still run,
        and it is not called for the next event.
        """

        def selfish(event: Event) -> str:
            self.registry.remove(selfish)
            return "bye"

        self.registry.add("a", selfish)
        self.registry.add("a", Recorder(self.seen, "other"))
        d1 = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d1).values, ["bye", None])
        d2 = self.registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d2).values, [None])
        self.assertEqual(self.seen, [("other", "a"), ("other", "a")])

    def test_unregister_object(self) -> None:
        """
        Unregistering an object from one of its own handlers stops its other
        handlers for the event being delivered.
        """
        seen = self.seen
        registry = self.registry

        class Service:
            @handles("a", priority=1)
            def first(self, event: Event) -> None:
                seen.append("first")
                registry.unregister_object(self)

            @handles("a")
            def second(self, event: Event) -> None:
                seen.append("second")

        registry.register_object(Service())
        registry.dispatch("a")
        self.clock.advance(0)
        self.assertEqual(seen, ["first"])


class OnceAndWaitTests(SynchronousTestCase):
    """
    C{once=True} handlers and L{EventRegistry.wait_for}.
    """

    def setUp(self) -> None:
        self.registry, self.clock, _ = make_registry()
        self.seen: list[Any] = []
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_once(self) -> None:
        """
        A once-handler runs for the first matching event only, even when
        several are queued in the same drain, and is then unregistered.
        """
        reg = self.registry.add("a.*", Recorder(self.seen, "once"), once=True)
        self.registry.dispatch("a.1")
        self.registry.dispatch("a.2")
        self.clock.advance(0)
        self.registry.dispatch("a.3")
        self.clock.advance(0)
        self.assertEqual(self.seen, [("once", "a.1")])
        self.assertFalse(reg.active)
        self.assertEqual(self.registry.registrations_for("a.1"), ())

    def test_wait_for(self) -> None:
        """
        L{EventRegistry.wait_for} fires with the next matching event
        dispatched after the call, and is not among the outcomes.
        """
        self.registry.add("*", Recorder(self.seen, "h"))
        before = self.registry.dispatch("reply.1")
        d = self.registry.wait_for("reply.*")
        self.registry.dispatch("other")
        result = self.registry.dispatch("reply.2", "answer")
        self.registry.dispatch("reply.3")
        self.assertNoResult(d)
        self.clock.advance(0)
        event = self.successResultOf(d)
        self.assertEqual((event.name, event.payload), ("reply.2", "answer"))
        self.assertEqual(len(self.successResultOf(before).outcomes), 1)
        self.assertEqual(len(self.successResultOf(result).outcomes), 1)
        self.assertEqual(len(self.registry.registrations_for("reply.4")), 1)

    def test_wait_for_cancel(self) -> None:
        """
        Cancelling a wait unregisters it.
        """
        d = self.registry.wait_for("a")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.registry.registrations_for("a"), ())

    def test_wait_for_timeout(self) -> None:
        """
        A wait with a timeout errbacks with L{TimeoutError} when no event
        came in time, unregisters itself and leaves no delayed call.
        """
        d = self.registry.wait_for("a", timeout=5)
        self.clock.advance(4)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, TimeoutError)
        self.assertEqual(self.registry.registrations_for("a"), ())

    def test_wait_for_in_time(self) -> None:
        """
        A wait whose event comes before the timeout fires with it and
        cancels its timeout call.
        """
        d = self.registry.wait_for("a", timeout=5)
        self.registry.emit("unused")
        self.registry.dispatch("a")
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d).name, "a")
