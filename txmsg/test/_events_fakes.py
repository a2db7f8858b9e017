# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Deterministic stand-ins for the event registry's unit tests: a clock that
also accepts C{callFromThread} and hands out a thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger

from txmsg.events import Event, EventRegistry
from txmsg.testing import SyncThreadPool


class ThreadingClock(Clock):
    """
    A L{Clock} that also provides C{callFromThread} (as a call on the next
    turn, like a real reactor) and C{getThreadPool}.
    """

    def __init__(self, pool: SyncThreadPool | None = None) -> None:
        super().__init__()
        self.pool = pool

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run C{f} on the next L{advance}."""
        self.callLater(0, f, *args, **kw)

    def getThreadPool(self) -> SyncThreadPool:
        """Return the pool given to the constructor."""
        assert self.pool is not None
        return self.pool


def FakeThreadPool() -> SyncThreadPool:
    """
    A L{SyncThreadPool} that holds work until C{run_all()}; the old name of
    C{SyncThreadPool(hold=True)}, for the tests that still use it.
    """
    return SyncThreadPool(hold=True)


class Recorder:
    """A handler that records C{(label, event name)} in a list."""

    def __init__(self, seen: list[Any], label: str, value: Any = None) -> None:
        """Record into C{seen}, under C{label}, and return C{value}."""
        self.seen, self.label, self.value = seen, label, value

    def __call__(self, event: Event) -> Any:
        """Record the event's name."""
        self.seen.append((self.label, event.name))
        return self.value


def make_registry(
    clock: Clock | None = None, threadpool: Any = None
) -> tuple[EventRegistry, Clock, list[LogEvent]]:
    """
    Build an L{EventRegistry} on a fresh clock whose log events go to a list
    instead of the global log publisher.
    """
    if clock is None:
        clock = Clock()
    registry = EventRegistry(reactor=clock, threadpool=threadpool)
    logged: list[LogEvent] = []
    registry.log = Logger(namespace="txmsg.events", observer=cast(ILogObserver, logged.append))
    return registry, clock, logged
