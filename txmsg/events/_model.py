# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Values and contracts of the event registry: L{Event}, L{HandlerOutcome},
L{DispatchResult}, L{HandlerFailed}, L{BaseHandler}, the L{handles} marker and
the L{IEventSink} interface.  Public names are re-exported by L{txmsg.events}.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from itertools import count
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from twisted.python.failure import Failure
from zope.interface import Interface

HANDLER_FAILED = "handler.failed"
"""Name of the event the registry emits when a handler fails or times out."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ids = count(1)
_next_id = _ids.__next__
_MARK = "_txmsg_handles"
_HANDLES_OPTIONS = frozenset({"priority", "once", "blocking", "timeout"})

_F = TypeVar("_F", bound=Callable[..., Any])


def _frozen_metadata(metadata: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """
    Return a read-only copy of C{metadata} (the shared empty mapping for
    C{None} or an empty mapping).
    """
    if not metadata:
        return _EMPTY
    return MappingProxyType(dict(metadata))


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """
    One event: an immutable value handed to every matching handler.

    @ivar name: the event name, e.g. C{"order.created"}.
    @ivar payload: anything; the registry never looks at it.  Treat it as
        read-only: every handler of the event receives the same object.
    @ivar source: who emitted the event (e.g. C{"redis"}, C{"amqp"}), or C{None}.
    @ivar id: a process-unique, increasing integer (put cross-process ids such
        as an AMQP C{message_id} in C{metadata}).
    @ivar timestamp: seconds since the epoch when the event was made (the
        registry uses its reactor's C{seconds()}, so a test L{Clock} controls it).
    @ivar metadata: a read-only mapping of extra fields.
    """

    name: str
    payload: Any = field(hash=False)
    source: str | None
    id: int
    timestamp: float
    metadata: Mapping[str, Any] = field(hash=False)

    def __init__(
        self,
        name: str,
        payload: Any = None,
        source: str | None = None,
        id: int | None = None,
        timestamp: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """
        @param id: defaults to the next process-wide sequence number.
        @param timestamp: defaults to C{time.time()}.
        @param metadata: copied into a read-only mapping.
        """
        if not isinstance(name, str):
            raise TypeError(f"event name must be a str, not {name!r}")
        _set_name(self, name)
        _set_payload(self, payload)
        _set_source(self, source)
        _set_id(self, _next_id() if id is None else id)
        _set_timestamp(self, time.time() if timestamp is None else timestamp)
        _set_metadata(self, _frozen_metadata(metadata))


# Slot setters: frozen dataclasses forbid normal assignment, and going through
# object.__setattr__ costs twice as much as the slot descriptors themselves.
_set_name = Event.__dict__["name"].__set__
_set_payload = Event.__dict__["payload"].__set__
_set_source = Event.__dict__["source"].__set__
_set_id = Event.__dict__["id"].__set__
_set_timestamp = Event.__dict__["timestamp"].__set__
_set_metadata = Event.__dict__["metadata"].__set__
_new = object.__new__


def _make_event(
    name: str,
    payload: Any,
    source: str | None,
    timestamp: float,
    metadata: Mapping[str, Any],
) -> Event:
    """
    Build an L{Event} without argument checks (the registry's hot path).
    C{metadata} must already be read-only.
    """
    event = _new(Event)
    _set_name(event, name)
    _set_payload(event, payload)
    _set_source(event, source)
    _set_id(event, _next_id())
    _set_timestamp(event, timestamp)
    _set_metadata(event, metadata)
    return event


class HandlerTimeoutError(Exception):
    """
    A handler's Deferred did not fire within its C{timeout} and was cancelled.
    """


class HandlerOutcome(NamedTuple):
    """
    What one handler did with one event (an immutable named tuple: cheap to
    build on the dispatch path).

    @ivar handler: the handler as it was registered (function, class, instance
        or bound method).
    @ivar value: the handler's result (the Deferred's or coroutine's result for
        asynchronous handlers); C{None} when it failed.
    @ivar failure: the L{Failure} when the handler raised, failed or timed out,
        else C{None}.
    @ivar timed_out: C{True} when the handler was cancelled by its timeout
        (C{failure} then wraps L{HandlerTimeoutError}).
    """

    handler: Any
    value: Any = None
    failure: Failure | None = None
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        """C{True} when the handler returned (or its Deferred fired) normally."""
        return self.failure is None


_tuple_new = tuple.__new__


class DispatchResult:
    """
    The outcomes of one dispatched event, one per handler that ran, in the
    order the handlers were started.  Immutable.

    The registry records each outcome as a plain tuple and builds the
    L{HandlerOutcome}s the first time they are asked for: most callers of
    C{dispatch()} never look, and that saves the dispatch path a named tuple
    per handler.

    @ivar event: the event that was dispatched.
    @ivar outcomes: one L{HandlerOutcome} per handler that ran.
    """

    __slots__ = ("_event", "_raw", "_outcomes")
    _event: Event
    _raw: list[tuple[Any, Any, Any, bool]] | None
    _outcomes: tuple[HandlerOutcome, ...] | None

    def __init__(self, event: Event, outcomes: Iterable[HandlerOutcome] = ()) -> None:
        _set_result_event(self, event)
        _set_result_raw(self, None)
        _set_result_outcomes(self, tuple(outcomes))

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    @property
    def event(self) -> Event:
        """The event that was dispatched."""
        return self._event

    @property
    def outcomes(self) -> tuple[HandlerOutcome, ...]:
        """One L{HandlerOutcome} per handler that ran, in start order."""
        outcomes = self._outcomes
        if outcomes is None:
            raw = self._raw or ()
            outcomes = tuple([_tuple_new(HandlerOutcome, item) for item in raw])
            _set_result_outcomes(self, outcomes)
        return outcomes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DispatchResult):
            return NotImplemented
        return (self.event, self.outcomes) == (other.event, other.outcomes)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DispatchResult(event={self.event!r}, outcomes={self.outcomes!r})"

    def outcome_of(self, handler: Any) -> HandlerOutcome | None:
        """
        The outcome of C{handler} (as it was registered), or L{None} when it
        did not run for this event.
        """
        items = self._outcomes if self._outcomes is not None else self._raw or ()
        for item in items:
            if item[0] is handler:
                return _tuple_new(HandlerOutcome, item)
        return None

    def raise_first_failure(self) -> None:
        """
        Raise the exception of the first failed handler, if any: handy
        when a caller wants C{dispatch()} to fail like a plain call would.
        """
        for outcome in self.outcomes:
            if outcome.failure is not None:
                outcome.failure.raiseException()

    @property
    def values(self) -> list[Any]:
        """The results of the handlers that succeeded, in order."""
        return [o.value for o in self.outcomes if o.failure is None]

    @property
    def failures(self) -> list[HandlerOutcome]:
        """The outcomes of the handlers that failed or timed out, in order."""
        return [o for o in self.outcomes if o.failure is not None]

    @property
    def timed_out(self) -> list[HandlerOutcome]:
        """The outcomes of the handlers cancelled by their timeout."""
        return [o for o in self.outcomes if o.timed_out]

    @property
    def succeeded(self) -> bool:
        """C{True} when no handler failed (also when no handler ran)."""
        return all(o.failure is None for o in self.outcomes)


_set_result_event = DispatchResult.__dict__["_event"].__set__
_set_result_raw = DispatchResult.__dict__["_raw"].__set__
_set_result_outcomes = DispatchResult.__dict__["_outcomes"].__set__


def _make_result(event: Event, raw: list[tuple[Any, Any, Any, bool]]) -> DispatchResult:
    """
    Build a L{DispatchResult} from C{(handler, value, failure, timed_out)}
    tuples, which must not change afterwards (hot path).
    """
    result = _new(DispatchResult)
    _set_result_event(result, event)
    _set_result_raw(result, raw)
    _set_result_outcomes(result, None)
    return result


@dataclass(frozen=True, slots=True)
class HandlerFailed:
    """
    Payload of the L{HANDLER_FAILED} event.

    @ivar event: the event the handler was handling.
    @ivar handler: the handler as it was registered.
    @ivar failure: what went wrong.
    @ivar timed_out: C{True} when the handler was cancelled by its timeout.
    """

    event: Event
    handler: Any
    failure: Failure
    timed_out: bool = False


class IEventSink(Interface):
    """
    Anything that accepts events: L{txmsg.events.EventRegistry} provides it,
    and every txmsg service that takes C{events=} only relies on this.
    """

    def dispatch(name, payload=None, *, source=None, metadata=None):  # type: ignore[no-untyped-def]
        """
        Deliver an event named C{name} carrying C{payload}.

        C{source} (C{str | None}) names where the event came from and
        C{metadata} (a C{Mapping | None}) carries extra fields; both are
        keyword-only.  (C{zope.interface.verify} ignores keyword-only
        arguments, so implementations are checked for them by mypy only.)

        @return: a Deferred that fires with a L{DispatchResult} once every
            handler has finished; it never errbacks because of a handler.
        """


class IThreadPool(Interface):
    """
    Where blocking handlers and tasks run: the part of
    L{twisted.python.threadpool.ThreadPool} that L{txmsg.events.EventRegistry}
    (through C{deferToThreadPool}) and the worker use.
    """

    def callInThreadWithCallback(onResult, func, *args, **kw):  # type: ignore[no-untyped-def]
        """
        Call C{func(*args, **kw)} in a thread, then C{onResult(True, result)}
        or C{onResult(False, failure)} (in that thread).
        """

    def callInThread(func, *args, **kw):  # type: ignore[no-untyped-def]
        """Call C{func(*args, **kw)} in a thread."""

    def start():  # type: ignore[no-untyped-def]
        """Start the threads."""

    def stop():  # type: ignore[no-untyped-def]
        """Stop the threads once their work is done."""


class BaseHandler(ABC):
    """
    Base class of class-style handlers, the shape of the seed program's
    C{event_drive.BaseHandler}: subclass it and override L{execute}.

    Pass the class to L{EventRegistry.add} (it is instantiated once, with no
    arguments, at registration) or pass an instance.
    """

    @abstractmethod
    def execute(self, event: Event) -> Any:
        """
        Handle C{event}.

        @return: a plain value, a Deferred or a coroutine (see L{txmsg.events}).
        """
        raise NotImplementedError("you must override execute")


def handles(pattern: str, **options: Any) -> Callable[[_F], _F]:
    """
    Mark a method as the handler of C{pattern}, for
    L{EventRegistry.register_object}.  May be stacked to handle several
    patterns.

    @param pattern: an event name or glob pattern.
    @param options: C{priority}, C{once}, C{blocking}, C{timeout}, as for
        L{EventRegistry.add}.
    @raise TypeError: for an unknown option or a non-string pattern.
    """
    unknown = set(options) - _HANDLES_OPTIONS
    if unknown:
        raise TypeError(f"unknown handles() option(s): {sorted(unknown)}")
    if not isinstance(pattern, str) or not pattern:
        raise TypeError("handles() needs a non-empty str pattern")

    def mark(method: _F) -> _F:
        marks = method.__dict__.setdefault(_MARK, [])
        marks.insert(0, (pattern, options))
        return method

    return mark
