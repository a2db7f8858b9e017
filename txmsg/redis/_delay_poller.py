# -*- test-case-name: txmsg.test.test_redis_delay_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The delay queue's poller service (re-exported by L{txmsg.redis.delay_queue}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.events import IEventSink
from txmsg.redis._common import call

if TYPE_CHECKING:  # a type only: delay_queue.py imports this module
    from txmsg.redis.delay_queue import DelayedItem, DelayQueue

__all__ = ["DelayPoller", "NoHandler", "exponential_backoff"]


class NoHandler(Exception):
    """
    An item was dispatched to the event registry and no handler took it.
    """


def exponential_backoff(
    base: float = 1.0, factor: float = 2.0, maximum: float = 300.0
) -> Callable[[int], float]:
    """
    C{attempts -> delay}: C{base * factor ** (attempts - 1)}, capped.
    """
    return lambda attempts: min(maximum, base * factor ** max(0, attempts - 1))


class DelayPoller(Service):
    """
    Claims due items and hands them to a callback, the event registry, or a
    list queue.

    B{Sleeping.}  After each claim the poller sleeps until the earliest of:
    the next due time and the next lease deadline it saw in Redis (both
    returned by the claim script), or C{max_sleep} seconds.  C{max_sleep}
    bounds how late it notices an item that another process scheduled
    I{earlier} than anything it knew of, when it gets no wake-up; two kinds of
    wake-up shorten that: a C{schedule()} on the same L{DelayQueue} object
    wakes its pollers at once if the new item is due sooner, and with
    C{pubsub=} (a L{PubSub}) the poller also hears C{P:wake}, published by
    the schedule script whenever an item becomes the earliest.  It claims
    again at once after a full batch, and when a handler slot frees up.

    B{Acks.}  The outcomes of the items whose handlers finish in one reactor
    turn (acks, and retries after a failure) go to Redis together at the end
    of that turn (a C{callLater(0)}), in one Lua call
    (L{DelayQueue.settle}): a batch claimed and handled in one turn costs two
    round trips, one claim and one settle, not one per item.  An item is
    only ever acked after its handler finished; until its settle call
    returns it counts against C{concurrency}, and C{stopService} sends what
    is pending at once and waits for it.  A poller that dies before the end
    of the turn leaves those items to lease expiry (redelivered, as for a
    crash during the handler).  Dead-lettering stays one call per item.

    @ivar handled: items acked so far; C{failed}: handler failures;
        C{dead}: items dead-lettered; C{moved}: items moved to C{target}.
    """

    log = Logger()

    def __init__(
        self,
        queue: DelayQueue,
        callback: Callable[[DelayedItem], Any] | None = None,
        *,
        events: IEventSink | None = None,
        event: str | None = None,
        target: Any = None,
        pubsub: Any = None,
        lease: float = 30.0,
        max_sleep: float = 5.0,
        batch: int = 100,
        concurrency: int = 10,
        max_attempts: int = 5,
        backoff: Callable[[int], float] | None = None,
        error_delay: float = 1.0,
    ) -> None:
        """
        @param queue: the L{DelayQueue}.
        @param callback: C{callback(item)}; may return a Deferred/coroutine;
            an exception means "failed".
        @param events: an event sink; with C{event}, each item is dispatched
            as C{events.dispatch(event, item, source="redis-delay:<name>")}
            and any failed handler (or none at all) counts as failure.
        @param target: a L{ReliableQueue} (or a list key): due payloads are
            moved there atomically instead of being handled here; a target
            whose C{kind} is C{"stream"} is a stream (L{txmsg.redis.streams};
            with a C{levels} key, moved into its priority level streams).
        @param pubsub: a L{PubSub} to hear other processes' wake-ups.
        @param lease: seconds a claimed item stays reserved for its handler.
        @param max_sleep: longest sleep between claims (see above).
        @param batch: most items per claim.
        @param concurrency: most handlers in flight.
        @param max_attempts: claims before an item is dead-lettered.
        @param backoff: C{attempts -> seconds} before a retry (default
            1, 2, 4... capped at 300 s).
        @param error_delay: pause after a failed claim (Redis down).
        """
        modes = sum(x is not None for x in (callback, event, target))
        if modes != 1:
            raise TypeError("give exactly one of callback, event (with events), target")
        if event is not None and events is None:
            raise TypeError("event= needs events=")
        self.queue = queue
        self.callback = callback
        self.events = events
        self.event = event
        self.target_key = None if target is None else getattr(target, "key", target)
        self.target_kind = str(getattr(target, "kind", "list"))
        self.target_levels: str | None = getattr(target, "levels", None)
        self.pubsub = pubsub
        self.lease = lease
        self.max_sleep = max_sleep
        self.batch = batch
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff or exponential_backoff()
        self.error_delay = error_delay
        self.handled = 0
        self.failed = 0
        self.moved = 0
        self.dead = 0
        self._clock = queue.reactor
        self._timer: Any = None
        self._wake_at: float | None = None
        self._claiming = False
        self._again = False
        self._in_flight: set[Deferred[None]] = set()
        self._subscription: Any = None
        # outcomes settled in this reactor turn, and who waits for each
        self._outcomes: list[tuple[str, float | None]] = []
        self._waiting: list[Deferred[bool | None]] = []
        self._flush_call: IDelayedCall | None = None

    def startService(self) -> None:
        """
        Start claiming (at once).
        """
        super().startService()
        self.queue._listen(self.notify)
        if self.pubsub is not None:
            self._subscription = self.pubsub.subscribe(
                self.queue.wake_channel, self._woken, decode="text"
            )
        self._wake(0.0)

    def stopService(self) -> Deferred[None]:
        """
        Stop claiming; fires when the running claim and every handler in
        flight have finished (their items are acked, retried or left to
        lease expiry).  Outcomes waiting for the end of the turn are sent
        at once.
        """
        super().stopService()
        self._flush()
        self.queue._unlisten(self.notify)
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        self._cancel_timer()
        self._stopped: Deferred[None] = Deferred()
        self._check_stopped()
        return self._stopped

    def _check_stopped(self) -> None:
        d = getattr(self, "_stopped", None)
        if d is not None and not self.running and not d.called:
            if not self._claiming and not self._in_flight:
                d.callback(None)

    def notify(self, due: float) -> None:
        """
        An item due at C{due} was scheduled: claim by then if that is sooner
        than planned.
        """
        if not self.running:
            return
        delay = max(0.0, due - self._clock.seconds())
        if self._claiming:
            if delay <= 0:
                self._again = True
            elif self._wake_at is None or due < self._wake_at:
                self._wake_at = due
            return
        if self._wake_at is None or due < self._wake_at:
            self._wake(delay)

    def _woken(self, message: Any) -> None:
        try:
            due = float(message.data)
        except (TypeError, ValueError):
            due = self._clock.seconds()
        self.notify(due)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        self._wake_at = None
        if timer is not None and timer.active():
            timer.cancel()

    def _wake(self, delay: float) -> None:
        self._cancel_timer()
        if not self.running:
            return
        self._wake_at = self._clock.seconds() + delay
        self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._wake_at = None
        if not self.running or self._claiming:
            return
        room = self.concurrency - len(self._in_flight)
        if self.target_key is None and room <= 0:
            return  # a finishing handler wakes us
        self._claiming = True
        self._again = False
        d: Deferred[Any]
        if self.target_key is not None:
            d = self.queue.move_due(
                self.target_key, self.batch, self.target_kind, self.target_levels
            )
            d.addCallback(self._moved)
        else:
            limit = min(self.batch, room)
            d = self.queue.claim(limit, self.lease)
            d.addCallback(self._claimed, limit)
        d.addErrback(self._claim_failed)
        d.addBoth(self._claim_done)

    def _claim_done(self, delay: Any) -> None:
        self._claiming = False
        planned, self._wake_at = self._wake_at, None
        if self._again:
            delay = 0.0
        if planned is not None:
            delay = min(delay, max(0.0, planned - self._clock.seconds()))
        if self.running:
            if self.target_key is None and len(self._in_flight) >= self.concurrency:
                return
            self._wake(delay)
        self._check_stopped()

    def _sleep_until(self, *times: float | None) -> float:
        now = self._clock.seconds()
        known = [t for t in times if t is not None]
        if not known:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, min(known) - now))

    def _moved(self, result: tuple[int, float | None]) -> float:
        moved, next_due = result
        self.moved += moved
        if moved >= self.batch:
            return 0.0
        return self._sleep_until(next_due)

    def _claimed(self, claim: Any, limit: int) -> float:
        for item in claim.items:
            self._start(*item)
        if len(claim.items) >= limit:
            return 0.0
        return self._sleep_until(claim.next_due, claim.next_lease)

    def _claim_failed(self, failure: Failure) -> float:
        self.log.failure("Claim on delay queue {queue} failed", failure, queue=self.queue.prefix)
        return self.error_delay

    # handling one item

    def _start(self, item_id: str, raw: bytes, attempts: int, due: float) -> None:
        d = self._handle(item_id, raw, attempts, due)
        self._in_flight.add(d)

        def finished(_: Any) -> None:
            self._in_flight.discard(d)
            if self.running and not self._claiming and self._timer is None:
                self._wake(0.0)
            self._check_stopped()

        d.addBoth(finished)

    def _handle(self, item_id: str, raw: bytes, attempts: int, due: float) -> Deferred[None]:
        try:
            item = self.queue.decode(item_id, raw, attempts, due)
        except Exception as e:
            return self._dead(item_id, raw, attempts, f"undecodable payload: {e}")
        if attempts > self.max_attempts:
            # claimed too often without an ack (handlers that crash the poller)
            return self._dead(item_id, raw, attempts, "too many attempts (lease expired)")
        d: Deferred[Any]
        if self.callback is not None:
            d = call(self.callback, item)
        else:
            assert self.events is not None  # the constructor requires it with event=
            d = call(
                self.events.dispatch,
                self.event,
                item,
                source="redis-delay:" + self.queue.name,
            )
            d.addCallback(_raise_dispatch_failure, self.event)

        def ok(_: Any) -> Any:
            self.handled += 1
            return self._settle(item_id, None).addCallback(self._acked, item_id)

        def failed(f: Failure) -> Any:
            self.failed += 1
            if attempts >= self.max_attempts:
                self.log.failure(
                    "Delay item {id} failed {n} times: dead-lettered",
                    f,
                    id=item_id,
                    n=attempts,
                )
                return self._dead(item_id, raw, attempts, _describe(f))
            delay = self.backoff(attempts)
            self.log.warn(
                "Delay item {id} failed (attempt {n}), retry in {delay}s: {error}",
                id=item_id,
                n=attempts,
                delay=delay,
                error=_describe(f),
            )
            return self._settle(item_id, delay).addCallback(lambda _: None)

        d.addCallbacks(ok, failed)
        d.addErrback(self._bookkeeping_failed, item_id)
        return d

    # the outcomes of one reactor turn, in one call

    def _settle(self, item_id: str, delay: float | None) -> Deferred[bool | None]:
        """
        Ack (C{delay} C{None}) or retry C{item_id} with the other outcomes of
        this reactor turn; fires with its flag from L{DelayQueue.settle}, or
        C{None} when the call failed (logged once for the batch).
        """
        d: Deferred[bool | None] = Deferred()
        self._outcomes.append((item_id, delay))
        self._waiting.append(d)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self._flush)
        return d

    def _flush(self) -> None:
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        outcomes, self._outcomes = self._outcomes, []
        waiting, self._waiting = self._waiting, []
        if not outcomes:
            return

        def sent(flags: list[bool]) -> None:
            for d, flag in zip(waiting, flags, strict=True):
                d.callback(flag)

        def failed(failure: Failure) -> None:
            # Redis unreachable: the leases expire and the items are claimed
            # again; nothing is lost.
            self.log.failure(
                "Could not record the outcome of {n} delay item(s) (first ids: "
                "{ids}); they will be redelivered after their lease",
                failure,
                n=len(outcomes),
                ids=[item_id for item_id, _ in outcomes[:10]],
            )
            for d in waiting:
                if not d.called:
                    d.callback(None)

        # An error in sent() (a reply of the wrong length) also ends in
        # failed(), so no waiter is left hanging.
        self.queue.settle(outcomes).addCallback(sent).addErrback(failed)

    def _acked(self, present: bool | None, item_id: str) -> None:
        if present is False:
            self.log.warn(
                "Delay item {id} was acked after its lease expired (it may "
                "have been delivered twice)",
                id=item_id,
            )

    def _dead(self, item_id: str, raw: bytes, attempts: int, error: str) -> Deferred[None]:
        self.dead += 1
        d: Deferred[Any] = self.queue.dead_letter(item_id, raw, attempts, error)
        d.addCallback(lambda _: None)
        d.addErrback(self._bookkeeping_failed, item_id)
        return d

    def _bookkeeping_failed(self, failure: Failure, item_id: str) -> None:
        # Redis unreachable for ack/retry: the lease expires and the item is
        # claimed again; nothing is lost.
        self.log.failure(
            "Could not record the outcome of delay item {id} (it will be "
            "redelivered after its lease)",
            failure,
            id=item_id,
        )


def _raise_dispatch_failure(result: Any, event: str | None) -> Any:
    if not result.outcomes:
        raise NoHandler(f"no handler for event {event!r}")
    result.raise_first_failure()
    return result


def _describe(f: Failure) -> str:
    return f"{type(f.value).__name__}: {f.getErrorMessage()}"
