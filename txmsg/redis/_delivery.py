# -*- test-case-name: txmsg.test.test_redis_delivery -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
One subscription's delivery: decode, call the callback, keep order, bound
what waits.

The delivery model (also in docs/redis.md):

  - Callbacks run on the reactor thread, straight from the connection's
    C{dataReceived}; a callback that returns a plain value costs no
    scheduling at all.
  - A callback may return a Deferred or a coroutine.  Each subscription has
    C{concurrency} slots (default 1): while they are all busy, further
    messages for I{that subscription} wait in its own FIFO queue, so with the
    default one message at a time is handled, in publish order.  Other
    subscriptions (other channels or patterns) have their own queues and are
    not held up by a slow callback.
  - The queue holds at most C{max_queued} messages; beyond that new messages
    are dropped and counted (C{stats["dropped"]}).  Redis pub/sub is
    at-most-once anyway: the server itself drops a subscriber whose output
    buffer overflows.
  - A message whose payload cannot be decoded, and a callback that raises or
    fails, are logged and counted; the subscriber carries on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from inspect import iscoroutine
from itertools import repeat
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._lograte import should_log as _should_log
from txmsg._waiters import Waiters
from txmsg.serializers import Serializer, get_serializer

__all__ = ["Message", "Subscription", "SubscriptionCancelled"]


class SubscriptionCancelled(Exception):
    """
    The subscription was cancelled (or its service stopped) before Redis
    confirmed it.
    """


class Message(NamedTuple):
    """
    One pub/sub message, as handed to callbacks.

    @ivar channel: the channel it was published on (decoded UTF-8; undecodable
        bytes are kept as surrogate escapes).
    @ivar data: the payload, decoded as the subscription asked.
    @ivar pattern: the matching pattern for pattern subscriptions, else C{None}.
    @ivar raw: the payload bytes as received.
    """

    channel: str
    data: Any
    pattern: str | None
    raw: bytes


# Message(...) without the generated __new__'s extra Python frame
_new_message = tuple.__new__


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class Subscription:
    """
    A callback attached to one channel or one pattern.

    Made by L{txmsg.redis.PubSub.subscribe}/C{psubscribe}; cancel it with
    L{cancel}.

    @ivar name: the channel or pattern.
    @ivar is_pattern: whether C{name} is a pattern (PSUBSCRIBE).
    @ivar active: whether Redis has confirmed it on the current connection.
    @ivar stats: counters: C{received}, C{decode_failures},
        C{callback_failures}, C{dropped}.
    """

    log = Logger()

    def __init__(
        self,
        name: str | bytes,
        callback: Callable[[Message], Any] | Callable[[Any], Any],
        *,
        is_pattern: bool = False,
        decode: str | Serializer = "bytes",
        concurrency: int = 1,
        max_queued: int = 10000,
        data_only: bool = False,
        on_cancel: Callable[[Subscription], None] | None = None,
    ) -> None:
        """
        @param name: channel or pattern.
        @param callback: called with a L{Message}; may return a Deferred or a
            coroutine.
        @param decode: C{"bytes"} (no decoding), C{"text"}, C{"json"},
            C{"msgpack"}, C{"pickle"} (trusted data only) or a serializer.
        @param concurrency: callbacks in flight at once for this
            subscription (1 keeps publish order).
        @param max_queued: messages kept waiting before new ones are dropped.
        @param data_only: call C{callback(data)} with the decoded payload
            alone instead of a L{Message} (the leanest path, for high-rate
            channels whose callback does not need the channel name).
        @param on_cancel: called by L{cancel} (the owning service's hook).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.key = name if isinstance(name, bytes) else name.encode("utf-8")
        self.name = _text(self.key)
        # called with a Message, or with the bare payload when data_only
        self.callback: Callable[[Any], Any] = callback
        self.is_pattern = is_pattern
        serializer = get_serializer(decode)
        self.serializer = serializer
        self._loads = None if serializer.name == "bytes" else serializer.loads
        self.concurrency = concurrency
        self.max_queued = max_queued
        self.data_only = data_only
        self.active = False
        self.cancelled = False
        self.stats = {
            "received": 0,
            "decode_failures": 0,
            "callback_failures": 0,
            "dropped": 0,
        }
        self._on_cancel = on_cancel
        # what waits for a slot: Messages, or payloads when data_only
        self._queue: deque[Any] = deque()
        self._in_flight = 0
        self._draining = False
        self._waiters: Waiters[Subscription] = Waiters()
        self._resubscribed: Waiters[Subscription] = Waiters()

    def __repr__(self) -> str:
        return "<Subscription {} {!r} active={}>".format(
            "pattern" if self.is_pattern else "channel", self.name, self.active
        )

    # confirmation -------------------------------------------------------

    def when_active(self, timeout: float | None = None) -> Deferred[Subscription]:
        """
        Fire with this subscription once Redis has confirmed it (at once if
        it is).  Errbacks with L{SubscriptionCancelled} when cancelled or when
        the pub/sub service stops first.  Redis may be down for a long time:
        pass a C{timeout} (seconds, on the global reactor; it then fails with
        C{twisted.internet.defer.TimeoutError}) or add your own.
        """
        if self.active:
            return succeed(self)
        if self.cancelled:
            return fail(SubscriptionCancelled(f"{self!r} was cancelled"))
        return self._waiters.wait(timeout)

    def when_resubscribed(self) -> Deferred[Subscription]:
        """
        Fire with this subscription the next time Redis confirms it: after
        the subscriber connection was lost and made again (a restart, a
        Sentinel failover), when messages published in between were not
        delivered; a waiter that must not miss a change reads the state
        again then.  Errbacks like L{when_active}; cancel it when no longer
        needed.
        """
        if self.cancelled:
            return fail(SubscriptionCancelled(f"{self!r} was cancelled"))
        return self._resubscribed.wait()

    def _confirmed(self) -> None:
        self.active = True
        self._waiters.fire(self)
        self._resubscribed.fire(self)

    def _fail_waiters(self, reason: Exception) -> None:
        self._waiters.fail(reason)
        self._resubscribed.fail(reason)

    def cancel(self) -> None:
        """
        Stop receiving: Redis is told to unsubscribe when no other
        subscription needs the same channel/pattern; queued messages are
        dropped.  Idempotent.
        """
        if self.cancelled:
            return
        self.cancelled = True
        self.active = False
        self._queue.clear()
        self._fail_waiters(SubscriptionCancelled(f"{self!r} was cancelled"))
        if self._on_cancel is not None:
            self._on_cancel(self)

    # delivery -----------------------------------------------------------

    def deliver(self, channel: bytes | str, raw: bytes, pattern: str | None) -> None:
        """
        Hand one received message to the callback (or queue it).
        """
        stats = self.stats
        stats["received"] += 1
        if self._loads is None:
            data: Any = raw
        else:
            try:
                data = self._loads(raw)
            except Exception:
                stats["decode_failures"] += 1
                n = stats["decode_failures"]
                if _should_log(n):
                    self.log.failure(
                        "Cannot decode a message on {channel} as {codec} ({count} so far); dropped",
                        channel=channel,
                        codec=self.serializer.name,
                        count=n,
                    )
                return
        if self.data_only:
            msg = data
        else:
            if type(channel) is bytes:
                channel = _text(channel)
            msg = _new_message(Message, (channel, data, pattern, raw))
        self._accept(msg)

    def _accept(self, msg: Any) -> None:
        # run it if a slot is free and nothing waits before it, else queue
        # it, or drop it when the queue is full
        if self._in_flight < self.concurrency and not self._queue:
            self._run(msg)
        elif len(self._queue) < self.max_queued:
            self._queue.append(msg)
        else:
            stats = self.stats
            stats["dropped"] += 1
            if _should_log(stats["dropped"]):
                self.log.warn(
                    "Subscriber of {name} is {queued} messages behind; dropped "
                    "a message ({count} so far)",
                    name=self.name,
                    queued=len(self._queue),
                    count=stats["dropped"],
                )

    def deliver_data(self, raw: bytes) -> None:
        """
        L{deliver} for a channel subscription (channel = C{name}, no
        pattern): the subscriber protocol's fast path, taking the common
        case (no decoding, nothing in flight or queued) straight to the
        callback.
        """
        if self._loads is not None or self._in_flight or self._queue:
            self.deliver(self.name, raw, None)
            return
        self.stats["received"] += 1
        # _run, inlined: this is the per-message hot path
        msg = raw if self.data_only else _new_message(Message, (self.name, raw, None, raw))
        self._in_flight = 1
        try:
            result = self.callback(msg)
        except Exception:
            self._in_flight = 0
            self._failed(Failure(), msg)
            result = None
        if result is None:
            self._in_flight = 0
            if self._queue:
                # the callback delivered to this subscription re-entrantly
                self._resume()
        else:
            self._settle(result, msg)

    def deliver_batch(self, raws: list[bytes], channels: list[bytes] | None = None) -> None:
        """
        L{deliver} for several messages in a row, in order: the subscriber
        protocol's path for a read that holds only messages for this (sole)
        subscription of a channel, or of a pattern (then C{channels} gives
        each message's channel).  The L{Message}s are built by C{map} and the
        callbacks called from one tight loop; as soon as a callback leaves
        work in flight (a Deferred or coroutine) or queues, the rest goes
        through the ordinary slot/queue rules.
        """
        if self._loads is not None or self._in_flight or self._queue:
            if channels is None:
                for raw in raws:
                    self.deliver_data(raw)
            else:
                for channel, raw in zip(channels, raws, strict=True):
                    self.deliver(channel, raw, self.name)
            return
        self.stats["received"] += len(raws)
        if self.data_only:
            items: Any = iter(raws)
        elif channels is None:
            items = map(
                _new_message,
                repeat(Message),
                zip(repeat(self.name), raws, repeat(None), raws),
            )
        else:
            items = map(
                _new_message,
                repeat(Message),
                zip(map(_text, channels), raws, repeat(self.name), raws),
            )
        callback = self.callback
        # deliver_data's body, inlined for speed (measurement: docs/benchmarks.md)
        for msg in items:
            self._in_flight = 1
            try:
                result = callback(msg)
            except Exception:
                self._in_flight = 0
                self._failed(Failure(), msg)
                result = None
            if result is None:
                self._in_flight = 0
                if not self._queue and not self.cancelled:
                    continue
            else:
                self._settle(result, msg)
                if not self._in_flight and not self._queue and not self.cancelled:
                    continue
            break
        else:
            return
        # a callback is still running, queued (re-entrantly) or cancelled:
        # what is left follows the ordinary rules, in order
        if self.cancelled:
            # not delivered after all (counted as received up front)
            self.stats["received"] -= sum(1 for _ in items)
            return
        for msg in items:
            self._accept(msg)
        self._resume()

    def _run(self, msg: Any) -> None:
        self._in_flight += 1
        try:
            result = self.callback(msg)
        except Exception:
            self._failed(Failure(), msg)
            result = None
        if result is None:
            self._done(None)
        else:
            self._settle(result, msg)

    def _settle(self, result: Any, msg: Any) -> None:
        # the callback (counted in _in_flight) returned: wait for its result
        # when it is asynchronous
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            result.addCallbacks(self._done, self._errored, errbackArgs=(msg,))
        else:
            self._done(None)

    def _failed(self, failure: Failure, msg: Any) -> None:
        self.stats["callback_failures"] += 1
        self.log.failure(
            "Callback for {name} failed on a message from {channel}",
            failure,
            name=self.name,
            channel=msg.channel if type(msg) is Message else self.name,
        )

    def _errored(self, failure: Failure, msg: Any) -> None:
        self._failed(failure, msg)
        self._done(None)

    def _done(self, _: Any) -> None:
        self._in_flight -= 1
        self._resume()

    def _resume(self) -> None:
        # a slot is free: start what waits (unless _drain, further up the
        # stack, is already doing so)
        if self._queue and not self._draining and not self.cancelled:
            self._drain()

    def _drain(self) -> None:
        self._draining = True
        try:
            while self._queue and self._in_flight < self.concurrency:
                self._run(self._queue.popleft())
        finally:
            self._draining = False

    @property
    def queued(self) -> int:
        """
        Messages waiting for a free callback slot.
        """
        return len(self._queue)
