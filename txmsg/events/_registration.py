# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{Registration} (one handler for one pattern) and the small helpers that turn
what a user registers into something the registry can call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import translate
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from txmsg.events._model import (
    BaseHandler,
    DispatchResult,
    Event,
    HandlerTimeoutError,
    _make_result,
)


class _Owner(Protocol):
    """
    What a L{Registration} needs from the registry that made it: only a way
    to remove itself.  (Typed structurally so this module does not import
    the registry, which imports it.)
    """

    def remove(self, target: Any, pattern: str | None = None) -> object:
        """Unregister C{target}."""


_GLOB_CHARS = frozenset("*?[")


class Registration:
    """
    One handler registered for one pattern, as returned by
    L{EventRegistry.add}.  Pass it to L{EventRegistry.remove} (or call
    L{cancel}) to unregister exactly this registration.

    @ivar pattern: the event name or glob pattern.
    @ivar handler: the handler as it was given to C{add}.
    @ivar priority: higher runs first.
    @ivar once: unregistered just before its first call.
    @ivar blocking: called in the thread pool.
    @ivar timeout: seconds before an asynchronous result is cancelled, or None.
    @ivar active: C{False} once removed; an inactive registration is never
        called again, even for events already queued.
    """

    __slots__ = (
        "pattern",
        "handler",
        "priority",
        "once",
        "blocking",
        "timeout",
        "active",
        "_call",
        "_match",
        "_seq",
        "_registry",
        "_internal",
    )

    def __init__(
        self,
        registry: _Owner,
        pattern: str,
        handler: Any,
        call: Callable[[Event], Any],
        priority: int,
        once: bool,
        blocking: bool,
        timeout: float | None,
        seq: int,
        internal: bool = False,
    ) -> None:
        self._registry = registry
        self.pattern = pattern
        self.handler = handler
        self._call = call
        self.priority = priority
        self.once = once
        self.blocking = blocking
        self.timeout = timeout
        self.active = True
        self._seq = seq
        self._internal = internal
        if _GLOB_CHARS.intersection(pattern):
            self._match: Callable[[str], Any] | None = re.compile(translate(pattern)).match
        else:
            self._match = None

    def cancel(self) -> None:
        """Unregister this registration (idempotent)."""
        self._registry.remove(self)

    def __repr__(self) -> str:
        return "<Registration {!r} -> {!r} priority={} {}>".format(
            self.pattern,
            self.handler,
            self.priority,
            "active" if self.active else "removed",
        )


def _order(reg: Registration) -> tuple[int, int]:
    return (-reg.priority, reg._seq)


def _as_callable(handler: Any) -> Callable[[Event], Any]:
    """
    Turn what the user registered into the one-argument callable to invoke.

    @raise TypeError: if C{handler} cannot handle events.
    """
    if isinstance(handler, type):
        if issubclass(handler, BaseHandler) or callable(getattr(handler, "execute", None)):
            return handler().execute
        raise TypeError(
            f"{handler!r} is a class without execute(); pass an instance, "
            "a function or a BaseHandler subclass"
        )
    if isinstance(handler, BaseHandler):
        return handler.execute
    if callable(handler):
        return handler
    execute = getattr(handler, "execute", None)
    if callable(execute):
        return execute
    raise TypeError(f"event handlers must be callable or have an execute() method, not {handler!r}")


class _Gather:
    """Collects the outcomes of one L{EventRegistry.dispatch} call."""

    __slots__ = ("deferred", "event", "outcomes", "pending")

    def __init__(
        self, deferred: Deferred[DispatchResult], event: Event, outcomes: list[Any]
    ) -> None:
        self.deferred = deferred
        self.event = event
        self.outcomes = outcomes
        # 1 for the delivery loop itself, +1 per asynchronous handler.
        self.pending = 1

    def settle(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.deferred.callback(_make_result(self.event, self.outcomes))


def _to_timeout(result: Any, timeout: float) -> Any:
    """C{onTimeoutCancel} for handler Deferreds."""
    if isinstance(result, Failure) and result.check(CancelledError):
        return Failure(HandlerTimeoutError(f"handler timed out after {timeout} seconds"))
    return result
