# -*- test-case-name: txmsg.test.test_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The event-handler registry: the one place where Redis messages, AMQP
deliveries, key-expiry notifications, echo connection events and tasks are
dispatched to user code.

    registry = EventRegistry()

    @registry.on("order.*")
    def audit(event):
        print(event.name, event.payload)

    d = registry.dispatch("order.created", {"id": 7}, source="amqp")
    d.addCallback(lambda result: result.values)

Rules (also in C{docs/events.md}):

  - B{Matching.} A pattern without C{*}, C{?} or C{[} matches exactly that
    event name.  Any other pattern is a case-sensitive shell glob
    (L{fnmatch.fnmatchcase}): C{*} matches any characters I{including dots},
    so C{"order.*"} matches C{"order.created"} and C{"order.line.added"} but
    not C{"order"}; C{"*"} matches every event, L{HANDLER_FAILED} included.
    Globs are matched with a character trie, so resolving a name costs time
    in proportion to its length, not to the number of registrations; each
    name's resolution is cached.
  - B{Ordering.} All registrations matching an event, exact and glob alike,
    run by priority (higher first), then in registration order.
  - B{Which handlers.} An event goes to the handlers registered when
    C{dispatch()} is called that are still registered when their turn comes:
    a handler removed meanwhile (even by an earlier handler of the same event)
    is skipped; one added meanwhile does not see that event.
  - B{Scheduling.} C{dispatch()} and C{emit()} never run a handler in the
    caller's stack.  They queue the event and, if none is pending, schedule
    one C{reactor.callLater(0, ...)} drain; the drain delivers every event
    queued before it started, in order.  Events dispatched by handlers during
    a drain wait for the next drain (next reactor turn), so a handler that
    re-dispatches cannot starve the reactor.  No delayed call remains once
    the queue is empty.  C{dispatch_now()} is the one exception, for code
    the reactor called for the event itself (the worker, for a message that
    just arrived): it delivers in the caller's stack, but only when nothing
    is queued and no handler is running; otherwise it queues like
    C{dispatch()}, so handlers never run inside handlers.
  - B{Return values.} A handler may return a plain value, a Deferred or a
    coroutine (an C{async def} handler), which is wrapped with
    C{Deferred.fromCoroutine}.  Handlers of one event are started one after
    another in order, without waiting: asynchronous handlers run
    I{concurrently}, and the next event's handlers may start before they
    finish.  C{dispatch()}'s Deferred fires with a L{DispatchResult} when all
    of them have finished; outcomes are listed in start order.
  - B{Blocking handlers} (C{blocking=True}) run in the reactor's thread pool
    (or the one given to the registry), never on the reactor thread; they are
    started in order like the others and complete asynchronously.
  - B{Isolation.} A handler that raises, fails its Deferred or times out never
    stops the others: it is logged with C{log.failure}, recorded in the
    L{DispatchResult}, and a L{HANDLER_FAILED} event is emitted (payload: a
    L{HandlerFailed}).  Failures of handlers while handling a
    L{HANDLER_FAILED} event are only logged, so that cannot recurse.
    (C{BaseException}s such as C{KeyboardInterrupt} are not caught.)
  - B{Timeouts.} C{timeout=} cancels the handler's Deferred (so a coroutine
    gets C{CancelledError}); the outcome is timed out and its failure wraps
    L{HandlerTimeoutError}.  A blocking handler's thread cannot be stopped:
    only the wait is abandoned.
  - B{Once and waiting.} C{once=True} handlers are unregistered just before
    their first call; L{EventRegistry.wait_for} returns a Deferred for the next
    matching event (not recorded among the outcomes).
"""

from txmsg.events._model import (
    HANDLER_FAILED,
    BaseHandler,
    DispatchResult,
    Event,
    HandlerFailed,
    HandlerOutcome,
    HandlerTimeoutError,
    IEventSink,
    IThreadPool,
    handles,
)
from txmsg.events._registry import EventRegistry, Registration

#: The old name of L{HandlerOutcome}, kept for one release (it was confusable
#: with L{txmsg.amqp.Disposition}, then also called C{Outcome}).
Outcome = HandlerOutcome

__all__ = [
    "HANDLER_FAILED",
    "BaseHandler",
    "DispatchResult",
    "Event",
    "EventRegistry",
    "HandlerFailed",
    "HandlerOutcome",
    "HandlerTimeoutError",
    "IEventSink",
    "IThreadPool",
    "Outcome",
    "Registration",
    "handles",
]
