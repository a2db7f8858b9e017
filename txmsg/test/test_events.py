# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.events}: exports, values and registration.  Matching,
ordering and scheduling are in L{txmsg.test.test_events_dispatch};
asynchronous, blocking, failing and timed-out handlers in
L{txmsg.test.test_events_delivery}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg import events
from txmsg.events import (
    BaseHandler,
    DispatchResult,
    Event,
    HandlerOutcome,
    IEventSink,
    Registration,
    handles,
)
from txmsg.events._model import _make_result
from txmsg.test._events_fakes import Recorder, make_registry


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
    L{Event}, L{HandlerOutcome} and L{DispatchResult} values.
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
                HandlerOutcome("h1", 1),
                HandlerOutcome("h2", None, boom),
                HandlerOutcome("h3", 3),
                HandlerOutcome("h4", None, late, True),
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
        result = DispatchResult(event, [HandlerOutcome("h", 1), HandlerOutcome("g", None, boom)])
        with self.assertRaises(dataclasses.FrozenInstanceError):
            result.event = Event("b")  # type: ignore[misc]
        self.assertEqual(result, DispatchResult(event, result.outcomes))
        self.assertNotEqual(result, DispatchResult(event))
        self.assertIn("outcomes=", repr(result))
        self.assertRaises(ValueError, result.raise_first_failure)
        DispatchResult(event, [HandlerOutcome("h", 1)]).raise_first_failure()

    def test_outcome_of(self) -> None:
        """
        L{DispatchResult.outcome_of} finds a handler's outcome by identity,
        in a result built by the registry (raw tuples) or by hand.
        """
        first, second = object(), object()
        made = _make_result(Event("a"), [(first, 1, None, False), (second, 2, None, False)])
        self.assertEqual(made.outcome_of(second), HandlerOutcome(second, 2))
        self.assertIsInstance(made.outcome_of(first), HandlerOutcome)
        self.assertIsNone(made.outcome_of(object()))
        by_hand = DispatchResult(Event("a"), [HandlerOutcome(first, 1)])
        self.assertEqual(by_hand.outcome_of(first), HandlerOutcome(first, 1))
        self.assertIsNone(DispatchResult(Event("a")).outcome_of(first))


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
        reg = self.registry.add("a", Recorder(self.seen, "r"))
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
        handler = Recorder(self.seen, "r")
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
