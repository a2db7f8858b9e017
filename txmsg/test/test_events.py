# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.events}: values, registration, matching, ordering and
scheduling.  Asynchronous, blocking, failing and timed-out handlers are in
L{txmsg.test.test_events_delivery}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg import events
from txmsg.events import (
    BaseHandler,
    DispatchResult,
    Event,
    EventRegistry,
    IEventSink,
    Outcome,
    Registration,
    handles,
)
from txmsg.test._events_fakes import make_registry


class ExportsTests(SynchronousTestCase):
    """
    The public surface of L{txmsg.events}.
    """

    def test_all(self) -> None:
        """
        Every name in C{__all__} exists and no private name is exported.
        """
        for name in events.__all__:
            self.assertTrue(hasattr(events, name), name)
            self.assertFalse(name.startswith("_"), name)
        self.assertIn("EventRegistry", events.__all__)
        self.assertIn("IEventSink", events.__all__)

    def test_provides_event_sink(self) -> None:
        """
        L{EventRegistry} provides L{IEventSink}.
        """
        registry, _, _ = make_registry()
        self.assertTrue(verifyObject(IEventSink, registry))


class EventTests(SynchronousTestCase):
    """
    L{Event}, L{Outcome} and L{DispatchResult} values.
    """

    def test_frozen(self) -> None:
        """
        An event's fields cannot be reassigned, nor its metadata changed.
        """
        event = Event("a", 1, metadata={"k": "v"})
        with self.assertRaises(dataclasses.FrozenInstanceError):
            event.name = "b"  # type: ignore[misc]
        with self.assertRaises(TypeError):
            event.metadata["k"] = "w"  # type: ignore[index]

    def test_metadata_copied(self) -> None:
        """
        Changing the mapping given as metadata does not change the event.
        """
        metadata = {"k": "v"}
        event = Event("a", metadata=metadata)
        metadata["k"] = "changed"
        self.assertEqual(dict(event.metadata), {"k": "v"})

    def test_defaults(self) -> None:
        """
        Events get increasing ids, a timestamp and empty metadata by default.
        """
        first, second = Event("a"), Event("a")
        self.assertGreater(second.id, first.id)
        self.assertIsInstance(first.timestamp, float)
        self.assertEqual(dict(first.metadata), {})
        self.assertIsNone(first.payload)
        self.assertIsNone(first.source)

    def test_equality(self) -> None:
        """
        Events compare by value and hash even with unhashable payloads.
        """
        one = Event("a", {"x": [1]}, "src", 7, 1.5, {"k": 1})
        two = Event("a", {"x": [1]}, "src", 7, 1.5, {"k": 1})
        self.assertEqual(one, two)
        self.assertEqual(hash(one), hash(two))
        self.assertNotEqual(one, Event("a", {"x": [1]}, "src", 8, 1.5, {"k": 1}))

    def test_name_must_be_str(self) -> None:
        """
        An event name that is not a string is refused.
        """
        self.assertRaises(TypeError, Event, b"bytes")

    def test_dispatch_result(self) -> None:
        """
        L{DispatchResult} sorts its outcomes into values, failures and
        timeouts.
        """
        boom = Failure(ValueError("boom"))
        late = Failure(events.HandlerTimeoutError("late"))
        result = DispatchResult(
            Event("a"),
            (
                Outcome("h1", 1),
                Outcome("h2", None, boom),
                Outcome("h3", 3),
                Outcome("h4", None, late, True),
            ),
        )
        self.assertEqual(result.values, [1, 3])
        self.assertEqual([o.handler for o in result.failures], ["h2", "h4"])
        self.assertEqual([o.handler for o in result.timed_out], ["h4"])
        self.assertFalse(result.succeeded)
        self.assertTrue(result.outcomes[0].succeeded)
        self.assertTrue(DispatchResult(Event("a")).succeeded)

    def test_dispatch_result_value(self) -> None:
        """
        A L{DispatchResult} is immutable, compares by value, and can re-raise
        the first failure.
        """
        event = Event("a")
        boom = Failure(ValueError("boom"))
        result = DispatchResult(event, [Outcome("h", 1), Outcome("g", None, boom)])
        with self.assertRaises(dataclasses.FrozenInstanceError):
            result.event = Event("b")  # type: ignore[misc]
        self.assertEqual(result, DispatchResult(event, result.outcomes))
        self.assertNotEqual(result, DispatchResult(event))
        self.assertIn("outcomes=", repr(result))
        self.assertRaises(ValueError, result.raise_first_failure)
        DispatchResult(event, [Outcome("h", 1)]).raise_first_failure()


class _Recorder:
    """A handler that records the names it saw under a label."""

    def __init__(self, seen: list[Any], label: str, value: Any = None) -> None:
        self.seen, self.label, self.value = seen, label, value

    def __call__(self, event: Event) -> Any:
        self.seen.append((self.label, event.name))
        return self.value


class RegistrationTests(SynchronousTestCase):
    """
    L{EventRegistry.add}, L{EventRegistry.on}, L{EventRegistry.remove} and
    the object registration helpers.
    """

    def setUp(self) -> None:
        self.registry, self.clock, self.logged = make_registry()
        self.seen: list[Any] = []

    def deliver(self, name: str, payload: Any = None) -> DispatchResult:
        d = self.registry.dispatch(name, payload)
        self.clock.advance(0)
        return self.successResultOf(d)

    def test_not_callable(self) -> None:
        """
        Registering something that cannot handle events fails at once with a
        clear error, and registers nothing.
        """
        exc = self.assertRaises(TypeError, self.registry.add, "a", 42)
        self.assertIn("42", str(exc))
        self.assertRaises(TypeError, self.registry.add, "a", dict)
        self.assertEqual(self.registry.registrations_for("a"), ())

    def test_bad_arguments(self) -> None:
        """
        Empty or non-string patterns and non-positive timeouts are refused.
        """
        self.assertRaises(TypeError, self.registry.add, "", print)
        self.assertRaises(TypeError, self.registry.add, b"a", print)
        self.assertRaises(ValueError, self.registry.add, "a", print, timeout=0)

    def test_registration(self) -> None:
        """
        L{EventRegistry.add} returns a L{Registration} describing it.
        """
        reg = self.registry.add("a.*", print, priority=3, once=True, timeout=2.0)
        self.assertIsInstance(reg, Registration)
        self.assertEqual(
            (reg.pattern, reg.handler, reg.priority, reg.once, reg.timeout),
            ("a.*", print, 3, True, 2.0),
        )
        self.assertTrue(reg.active)
        self.assertIn("a.*", repr(reg))

    def test_base_handler_class(self) -> None:
        """
        A L{BaseHandler} subclass is instantiated once, at registration, and
        its C{execute} is called with each event.
        """
        made = []
        seen = self.seen

        class Handler(BaseHandler):
            def __init__(self) -> None:
                made.append(self)

            def execute(self, event: Event) -> str:
                seen.append((self, event.name))
                return "done"

        self.registry.add("a", Handler)
        self.assertEqual(len(made), 1)
        self.assertEqual(self.deliver("a").values, ["done"])
        self.deliver("a")
        self.assertEqual(seen, [(made[0], "a"), (made[0], "a")])

    def test_abstract_base_handler(self) -> None:
        """
        A L{BaseHandler} subclass that does not override C{execute} is
        refused at registration.
        """

        class Lazy(BaseHandler):
            pass

        self.assertRaises(TypeError, self.registry.add, "a", Lazy)

    def test_instances(self) -> None:
        """
        A L{BaseHandler} instance, or any object with an C{execute} method,
        is called through C{execute}.
        """
        seen = self.seen

        class Handler(BaseHandler):
            def execute(self, event: Event) -> None:
                seen.append("base")

        class Duck:
            def execute(self, event: Event) -> None:
                seen.append("duck")

        self.registry.add("a", Handler())
        self.registry.add("a", Duck())
        self.deliver("a")
        self.assertEqual(seen, ["base", "duck"])

    def test_on(self) -> None:
        """
        C{@registry.on(pattern, **options)} registers the function with the
        options and returns it unchanged.
        """

        def handler(event: Event) -> int:
            return 1

        decorated = self.registry.on("a", priority=4)(handler)
        self.assertIs(decorated, handler)
        (reg,) = self.registry.registrations_for("a")
        self.assertEqual((reg.handler, reg.priority), (handler, 4))

    def test_remove_registration(self) -> None:
        """
        Removing a registration is idempotent, also through
        L{Registration.cancel}.
        """
        reg = self.registry.add("a", _Recorder(self.seen, "r"))
        self.assertEqual(self.registry.remove(reg), 1)
        self.assertEqual(self.registry.remove(reg), 0)
        reg.cancel()
        self.assertFalse(reg.active)
        self.assertEqual(self.deliver("a").outcomes, ())
        self.assertEqual(self.seen, [])

    def test_remove_handler(self) -> None:
        """
        Removing a handler removes all its registrations, or only those for
        the given pattern; removing an unknown handler does nothing.
        """
        handler = _Recorder(self.seen, "r")
        self.registry.add("a", handler)
        self.registry.add("b", handler)
        self.registry.add("c", handler)
        self.assertEqual(self.registry.remove(handler, "a"), 1)
        self.assertEqual(self.registry.remove(print), 0)
        self.deliver("a")
        self.deliver("b")
        self.assertEqual(self.seen, [("r", "b")])
        self.assertEqual(self.registry.remove(handler), 2)
        self.assertEqual(self.registry.remove(handler), 0)
        self.deliver("c")
        self.assertEqual(self.seen, [("r", "b")])

    def test_register_object(self) -> None:
        """
        L{EventRegistry.register_object} registers every method marked with
        L{handles}, with its options; L{EventRegistry.unregister_object}
        removes them all and is idempotent.
        """
        seen = self.seen

        class Base:
            @handles("a")
            def base(self, event: Event) -> None:
                seen.append("base")

        class Service(Base):
            @handles("a", priority=5)
            @handles("b")
            def both(self, event: Event) -> None:
                seen.append("both " + event.name)

            def unmarked(self, event: Event) -> None:
                seen.append("unmarked")

        service = Service()
        regs = self.registry.register_object(service)
        self.assertEqual([r.pattern for r in regs], ["a", "a", "b"])
        self.deliver("a")
        self.deliver("b")
        self.assertEqual(seen, ["both a", "base", "both b"])
        self.assertEqual(self.registry.unregister_object(service), 3)
        self.assertEqual(self.registry.unregister_object(service), 0)
        self.deliver("a")
        self.assertEqual(len(seen), 3)

    def test_register_object_errors(self) -> None:
        """
        Registering an object without marked methods, or the same object
        twice, is an error; so is an unknown L{handles} option.
        """

        class Marked:
            @handles("a")
            def handle(self, event: Event) -> None:
                pass

        self.assertRaises(ValueError, self.registry.register_object, object())
        marked = Marked()
        self.registry.register_object(marked)
        self.assertRaises(ValueError, self.registry.register_object, marked)
        self.assertRaises(TypeError, handles, "a", prio=1)


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
        return self.registry.add(pattern, _Recorder(self.seen, label), **options)

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
        self.assertEqual(
            self.labels("a"), ["exact-5", "glob-5", "glob-0", "exact-0", "exact-neg"]
        )
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
        self.registry.add("a", _Recorder(self.seen, "h", "value"))
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
        self.registry.add("*", _Recorder(self.seen, "h"))
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
        self.registry.add("second", _Recorder(self.seen, "second"))
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
        self.registry.add("a", _Recorder(self.seen, "h"))
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
        early = self.registry.add("a", _Recorder(self.seen, "early"))
        self.registry.add("a", _Recorder(self.seen, "kept"))
        d = self.registry.dispatch("a")
        self.registry.add("a", _Recorder(self.seen, "late"))
        self.registry.remove(early)
        self.clock.advance(0)
        self.assertEqual(self.seen, [("kept", "a")])
        self.assertEqual(len(self.successResultOf(d).outcomes), 1)


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
        victim = self.registry.add("a", _Recorder(self.seen, "victim"), priority=-1)

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
        self.registry.add("a", _Recorder(self.seen, "other"))
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
        reg = self.registry.add("a.*", _Recorder(self.seen, "once"), once=True)
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
        self.registry.add("*", _Recorder(self.seen, "h"))
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
