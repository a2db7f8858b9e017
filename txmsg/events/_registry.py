# -*- test-case-name: txmsg.test.test_events,txmsg.test.test_events_trie -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{EventRegistry}: registration, matching and the resolution cache; the
delivery half is the L{_Delivery} mixin.

The matching, ordering and scheduling rules are documented in
L{txmsg.events}; this module is re-exported from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from txmsg._reactor import maybe_global_reactor
from txmsg.events._delivery import _Delivery
from txmsg.events._model import _MARK, Event, IEventSink
from txmsg.events._registration import Registration, _as_callable, _order
from txmsg.events._trie import GlobTrie


@implementer(IEventSink)
class EventRegistry(_Delivery):
    """
    Handlers registered by event name or glob pattern, dispatched by the
    reactor.  See L{txmsg.events} for the rules.

    @param reactor: provides C{callLater} and C{seconds} (and
        C{callFromThread}/C{getThreadPool} for blocking handlers); the global
        reactor when C{None}, resolved on first use.
    @param threadpool: where blocking handlers run; the reactor's thread pool
        when C{None}.
    @param cache_size: how many event names' resolved handler lists to keep.
    """

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        threadpool: Any = None,
        *,
        cache_size: int = 1024,
    ) -> None:
        self._reactor = reactor
        self._threadpool = threadpool
        self._cache_size = cache_size
        self._exact: dict[str, list[Registration]] = {}
        self._globs: GlobTrie[Registration] = GlobTrie()
        self._cache: dict[str, tuple[Registration, ...]] = {}
        self._queue: list[tuple[Event, tuple[Registration, ...], Any]] = []
        self._drain_call: Any = None
        #: True while handlers are being called (a drain or L{dispatch_now}).
        self._delivering = False
        self._seq = 0
        self._objects: dict[int, tuple[object, list[Registration]]] = {}
        #: Event name -> events delivered (an C{emit()} that matched no
        #: handler is not delivered, so not counted).
        self.dispatch_counts: dict[str, int] = {}
        #: Event name -> handler failures (timeouts included).
        self.failure_counts: dict[str, int] = {}

    # -- reactor, resolved late ------------------------------------------------

    def _get_reactor(self) -> IReactorTime:
        self._reactor = maybe_global_reactor(self._reactor)
        return self._reactor

    def _schedule(self) -> None:
        self._drain_call = self._get_reactor().callLater(0, self._drain)

    # -- registration ----------------------------------------------------------

    def add(
        self,
        pattern: str,
        handler: Any,
        *,
        priority: int = 0,
        once: bool = False,
        blocking: bool = False,
        timeout: float | None = None,
    ) -> Registration:
        """
        Register C{handler} for events whose name matches C{pattern}.

        @param handler: a callable taking the L{Event}, a L{BaseHandler}
            subclass (instantiated now, with no arguments) or an object with
            an C{execute(event)} method.
        @param priority: higher priorities run first; equal priorities run in
            registration order.
        @param once: unregister just before the first call.
        @param blocking: run the handler in the thread pool, never on the
            reactor thread.
        @param timeout: cancel the handler's Deferred (or coroutine, or thread
            wait) after this many seconds; the outcome is then timed out.
        @raise TypeError: if C{handler} cannot handle events or C{pattern} is
            not a non-empty string.
        @raise ValueError: if C{timeout} is not positive.
        """
        return self._add(pattern, handler, priority, once, blocking, timeout)

    def _add(
        self,
        pattern: str,
        handler: Any,
        priority: int,
        once: bool,
        blocking: bool,
        timeout: float | None,
        internal: bool = False,
    ) -> Registration:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"pattern must be a non-empty str, not {pattern!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        call = _as_callable(handler)
        if blocking:
            call = self._in_thread(call)
        self._seq += 1
        reg = Registration(
            self,
            pattern,
            handler,
            call,
            priority,
            once,
            blocking,
            timeout,
            self._seq,
            internal,
        )
        if once:
            reg._call = self._once(reg, call)
        if reg._match is None:
            self._exact.setdefault(pattern, []).append(reg)
        else:
            self._globs.add(pattern, reg)
        self._invalidate(reg)
        return reg

    def _once(self, reg: Registration, call: Callable[[Event], Any]) -> Callable[[Event], Any]:
        def once(event: Event) -> Any:
            self._retire(reg)
            return call(event)

        return once

    def _in_thread(self, call: Callable[[Event], Any]) -> Callable[[Event], Any]:
        def in_thread(event: Event) -> Deferred[Any]:
            # blocking handlers need a reactor with threads (as documented)
            reactor = cast(IReactorThreads, self._get_reactor())
            if self._threadpool is None:
                self._threadpool = reactor.getThreadPool()
            return deferToThreadPool(reactor, self._threadpool, call, event)

        return in_thread

    def on(self, pattern: str, **options: Any) -> Callable[[Any], Any]:
        """
        Decorator form of L{add}: C{@registry.on("order.*", priority=5)}.
        Returns the decorated function or class unchanged.
        """

        def register(handler: Any) -> Any:
            self.add(pattern, handler, **options)
            return handler

        return register

    def remove(self, target: Any, pattern: str | None = None) -> int:
        """
        Unregister a L{Registration}, or every registration of a handler
        (optionally only those for C{pattern}).  Idempotent: removing what is
        not registered does nothing.  A removed handler is not called again,
        even for events already dispatched but not yet delivered.

        @param target: a L{Registration} or a handler as given to L{add}
            (handlers compare with C{==}, so an equal bound method works).
        @return: how many registrations were removed.
        """
        if isinstance(target, Registration):
            if target.active and target._registry is self:
                self._retire(target)
                return 1
            return 0
        doomed = [
            reg
            for reg in self._all()
            if reg.handler == target and (pattern is None or reg.pattern == pattern)
        ]
        for reg in doomed:
            self._retire(reg)
        return len(doomed)

    def _all(self) -> list[Registration]:
        regs = [reg for regs in self._exact.values() for reg in regs]
        regs.extend(self._globs)
        return regs

    def _retire(self, reg: Registration) -> None:
        if not reg.active:
            return
        reg.active = False
        if reg._match is None:
            regs = self._exact[reg.pattern]
            regs.remove(reg)
            if not regs:
                del self._exact[reg.pattern]
        else:
            self._globs.remove(reg.pattern, reg)
        self._invalidate(reg)

    def register_object(self, obj: object) -> list[Registration]:
        """
        Register every method of C{obj} marked with L{handles}, in definition
        order (base classes first).  Undo with L{unregister_object}.

        @raise ValueError: if C{obj} has no marked method or is already
            registered.
        """
        if id(obj) in self._objects:
            raise ValueError(f"{obj!r} is already registered")
        marked: dict[str, Any] = {}
        for klass in reversed(type(obj).__mro__):
            for name, value in vars(klass).items():
                marked[name] = getattr(value, _MARK, None)
        regs = []
        try:
            for name, marks in marked.items():
                for pattern, options in marks or ():
                    regs.append(self.add(pattern, getattr(obj, name), **options))
        except BaseException:
            for reg in regs:
                self._retire(reg)
            raise
        if not regs:
            raise ValueError(f"{obj!r} has no methods marked with @handles")
        self._objects[id(obj)] = (obj, regs)
        return regs

    def unregister_object(self, obj: object) -> int:
        """
        Unregister everything L{register_object} registered for C{obj}
        (idempotent).

        @return: how many registrations were removed.
        """
        _, regs = self._objects.pop(id(obj), (None, []))
        return sum(self.remove(reg) for reg in regs)

    def registrations_for(self, name: str) -> tuple[Registration, ...]:
        """The active registrations an event called C{name} goes to, in order."""
        return self._resolve(name)

    # -- matching ----------------------------------------------------------------

    def _resolve(self, name: str) -> tuple[Registration, ...]:
        """Compute (and cache) the ordered registrations matching C{name}."""
        if not isinstance(name, str):
            raise TypeError(f"event name must be a str, not {name!r}")
        regs = list(self._exact.get(name, ()))
        regs.extend(self._matching_globs(name))
        regs.sort(key=_order)
        resolved = tuple(regs)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[name] = resolved
        return resolved

    def _matching_globs(self, name: str) -> list[Registration]:
        """The glob registrations matching C{name}, in no particular order."""
        return self._globs.match(name)

    def _invalidate(self, reg: Registration) -> None:
        if reg._match is None:
            self._cache.pop(reg.pattern, None)
        else:
            match = reg._match
            for name in [name for name in self._cache if match(name)]:
                del self._cache[name]
