# -*- test-case-name: txmsg.test.test_amqp_publisher -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Confirmed publishing over a reconnecting L{AMQPConnection}.

L{Publisher.publish} returns a Deferred that fires when the broker has
confirmed the message (publisher confirms are on by default), and fails with
one exception class per failure kind: L{PublishNacked}, L{PublishReturned}
(a C{mandatory} message nobody could receive), L{PublishTimeout},
L{PublishLost} (the channel or connection closed before the confirm; the
message may or may not have been routed) and L{PublisherStopped}.

At most C{window} publishes are unconfirmed at a time (a counter and a FIFO
of waiting publishes); that is also the flow control while the broker
blocks the connection.  Publishing while disconnected waits for the reconnect until
the publish's timeout.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from pika import exceptions
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._waiters import InFlight
from txmsg.amqp._protocol import describe_reason
from txmsg.amqp.properties import make_properties

if TYPE_CHECKING:  # a type only: connection.py imports this module
    from txmsg.amqp.connection import AMQPConnection

__all__ = [
    "PublishError",
    "PublishLost",
    "PublishNacked",
    "PublishReturned",
    "PublishTimeout",
    "Publisher",
    "PublisherStopped",
]

_DEFAULT: Any = object()


class PublishError(Exception):
    """Base class: a publish did not get a positive broker confirm."""


class PublishNacked(PublishError):
    """The broker nacked the message (an internal error on its side)."""


class PublishReturned(PublishError):
    """
    A C{mandatory} message could not be routed to any queue and came back.

    @ivar reply_code: the C{Basic.Return} code (312 NO_ROUTE).
    @ivar reply_text: the C{Basic.Return} text.
    """

    def __init__(self, message: str, reply_code: Any = None, reply_text: Any = None):
        super().__init__(message)
        self.reply_code = reply_code
        self.reply_text = reply_text


class PublishTimeout(PublishError):
    """
    No confirm in time.

    @ivar stage: where the time ran out: C{"window"} (too many unconfirmed
        publishes), C{"connect"} (no connection), or C{"confirm"} (sent but not
        confirmed; it may still be routed).
    """

    def __init__(self, message: str, stage: str):
        super().__init__(message)
        self.stage = stage


class PublishLost(PublishError):
    """
    The channel or connection closed before the confirm; the message may or
    may not have reached a queue.

    @ivar reason: the close reason (an exception).
    """

    def __init__(self, message: str, reason: Any = None):
        super().__init__(message)
        self.reason = reason


class PublisherStopped(PublishError):
    """The publisher is stopping or stopped."""


def _lost_error(reason: Any) -> PublishError:
    info = describe_reason(reason)
    return PublishLost(
        "channel or connection closed before the broker confirmed: {}: {}".format(
            info["reason_type"], info["reason"]
        ),
        reason.value if isinstance(reason, Failure) else reason,
    )


class _Publish:
    """One publish on its way: window slot, channel, confirm."""

    __slots__ = ("publisher", "args", "result", "timer", "deadline", "stage", "slot")

    def __init__(self, publisher: Publisher, args: tuple) -> None:
        self.publisher = publisher
        self.args = args
        self.result: Deferred = Deferred(self._cancel)
        self.timer: Any = None
        self.deadline: float | None = None
        self.stage = "window"
        self.slot = False

    def got_slot(self) -> None:
        self.slot = True
        pub = self.publisher
        channel = pub._channel
        if channel is not None and not channel.is_open:
            # A channel that just closed may still be set while pika errbacks
            # its confirms (and user code publishes again from the errback).
            channel = pub._channel = None
        if channel is not None:
            self.send(channel)
        else:
            self.stage = "connect"
            pub._channel_waiters.append(self)

    def send(self, channel: Any) -> None:
        self.stage = "confirm"
        exchange, routing_key, body, props, mandatory = self.args
        try:
            d = channel.basic_publish(exchange, routing_key, body, props, mandatory)
        except Exception as e:
            self.failed(Failure(e))
            return
        d.addCallbacks(self.confirmed, self.failed)

    def confirmed(self, _: Any) -> None:
        self.release()
        if not self.result.called:
            self._settle(None)

    def failed(self, f: Failure) -> None:
        self.release()
        if self.result.called:
            return
        if isinstance(f.value, exceptions.UnroutableError):
            msgs = f.value.messages or [None]
            method = getattr(msgs[0], "method", None)
            code = getattr(method, "reply_code", None)
            text = getattr(method, "reply_text", None)
            err: PublishError = PublishReturned(
                f"message to exchange {self.args[0]!r} with routing key "
                f"{self.args[1]!r} was returned: {code} {text}",
                code,
                text,
            )
        elif f.check(exceptions.NackError):
            err = PublishNacked(
                f"the broker nacked the message to exchange {self.args[0]!r} "
                f"with routing key {self.args[1]!r}"
            )
        else:
            err = _lost_error(f)
        self._settle(Failure(err))

    def expire(self) -> None:
        self.timer = None
        if self.result.called:
            return
        stage = self.stage
        self.forget()
        self._settle(
            Failure(
                PublishTimeout(
                    "publish to exchange {!r} with routing key {!r} timed out "
                    "waiting for {}".format(
                        self.args[0],
                        self.args[1],
                        {
                            "window": "a free slot in the unconfirmed window",
                            "connect": "a connection",
                            "confirm": "the broker's confirm",
                        }[stage],
                    ),
                    stage,
                )
            )
        )

    def fail(self, exc: Exception) -> None:
        if not self.result.called:
            self.forget()
            self._settle(Failure(exc))

    def forget(self) -> None:
        """Leave the window queue or the connection wait list."""
        pub = self.publisher
        if self.stage == "window":
            try:
                pub._window_waiters.remove(self)
            except ValueError:
                pass
        elif self.stage == "connect" and self in pub._channel_waiters:
            pub._channel_waiters.remove(self)
            self.release()

    def release(self) -> None:
        if self.slot:
            self.slot = False
            self.publisher._release()

    def _done(self) -> None:
        """Drop the deadline and count this publish as settled."""
        if self.timer is not None:
            timer, self.timer = self.timer, None
            if timer.active():
                timer.cancel()
        self.deadline = None
        self.publisher._finished()

    def _settle(self, result: Any) -> None:
        self._done()
        self.publisher._count(result)
        if isinstance(result, Failure):
            self.result.errback(result)
        else:
            self.result.callback(result)

    def _cancel(self, _: Deferred) -> None:
        # The Deferred errbacks with CancelledError after this returns.
        self.forget()
        self._done()


class Publisher:
    """
    Publishes with confirms on its own channel of an L{AMQPConnection}.

    The channel is recreated after a channel error and after every reconnect;
    C{confirm_delivery()} always completes before the first publish on it.
    """

    log = Logger()
    stop_order = 2

    def __init__(
        self,
        connection: AMQPConnection,
        *,
        window: int = 100,
        confirms: bool = True,
        timeout: float | None = 30.0,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param connection: the L{txmsg.amqp.connection.AMQPConnection}.
        @param window: maximum number of unconfirmed publishes.
        @param confirms: use publisher confirms (strongly recommended).
        @param timeout: default per-publish timeout in seconds, covering the
            wait for a window slot, for a connection and for the confirm.
        @param clock: the clock for timeouts (default: the connection's
            reactor).
        """
        self._conn = connection
        self._clock = clock if clock is not None else connection.reactor
        self._window = window
        self._free = window
        self._window_waiters: deque[_Publish] = deque()
        self._releasing = False
        self._deadlines: deque[_Publish] = deque()
        self._sweep: Any = None
        self._confirms = confirms
        self._timeout = timeout
        self._channel: Any = None
        self._opening: Any = None
        self._channel_waiters: list[_Publish] = []
        self._outstanding = InFlight()
        self._stopped = False
        #: Counters: publishes asked for, and how they settled.
        self.published = 0
        self.confirmed = 0
        self.nacked = 0
        self.returned = 0
        self.failed = 0
        connection.add_participant(self)

    def _count(self, result: Any) -> None:
        """Count how one publish settled (confirmed, nacked, returned or failed)."""
        if not isinstance(result, Failure):
            self.confirmed += 1
        elif result.check(PublishReturned):
            self.returned += 1
        elif result.check(PublishNacked):
            self.nacked += 1
        else:
            self.failed += 1

    @property
    def unconfirmed(self) -> int:
        """How many publishes hold a window slot right now."""
        return self._window - self._free

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        *,
        properties: Any = None,
        headers: dict | None = None,
        content_type: str | None = None,
        persistent: bool = True,
        mandatory: bool = True,
        timeout: float | None = _DEFAULT,
        **property_fields: Any,
    ) -> Deferred:
        """
        Publish one message.

        @param exchange: the exchange (C{""}: the default exchange, which
            routes by queue name).
        @param routing_key: the routing key.
        @param body: the body; C{str} is encoded as UTF-8.
        @param properties: C{pika.BasicProperties} to start from.
        @param headers: message headers.
        @param content_type: the content type, e.g. C{application/json}.
        @param persistent: C{delivery_mode=2} unless the properties set one.
        @param mandatory: ask the broker to return unroutable messages
            (they then fail with L{PublishReturned}).
        @param timeout: seconds (default: the publisher's); L{None} for none.
        @param property_fields: other properties (C{correlation_id},
            C{reply_to}, C{message_id}, C{expiration}, ...).
        @return: a Deferred firing with L{None} once confirmed.
        """
        if self._stopped:
            return fail(PublisherStopped("the publisher is stopped"))
        if isinstance(body, str):
            body = body.encode("utf-8")
        props = make_properties(
            properties,
            headers=headers,
            content_type=content_type,
            persistent=persistent,
            **property_fields,
        )
        op = _Publish(self, (exchange, routing_key, body, props, mandatory))
        self._outstanding.enter()
        self.published += 1
        if timeout is _DEFAULT:
            # Default deadlines are in FIFO order: one sweeping timer serves all.
            timeout = self._timeout
            if timeout is not None:
                op.deadline = self._clock.seconds() + timeout
                self._deadlines.append(op)
                if self._sweep is None:
                    self._sweep = self._clock.callLater(timeout, self._sweep_deadlines)
        elif timeout is not None:
            op.timer = self._clock.callLater(timeout, op.expire)
        if self._free > 0 and not self._window_waiters:
            self._free -= 1
            op.got_slot()
        else:
            self._window_waiters.append(op)
        return op.result

    def stop(self) -> Deferred:
        """
        Refuse new publishes and wait for the outstanding ones to settle
        (each is bounded by its timeout).
        """
        self._stopped = True
        waiters, self._channel_waiters = self._channel_waiters, []
        for op in waiters:
            op.fail(PublisherStopped("the publisher stopped before connecting"))
        self._conn.remove_participant(self)
        return self._outstanding.drain()

    # -- participant ----------------------------------------------------------

    def _attach(self, conn: Any) -> Deferred:
        if self._opening is not None or self._stopped:
            return succeed(None)
        d = self._conn.open_channel()
        self._opening = d
        d.addCallback(self._opened, conn)
        d.addBoth(self._done_opening, d)
        return d

    def _done_opening(self, result: Any, d: Deferred) -> Any:
        if self._opening is d:
            self._opening = None
        return result

    def _opened(self, channel: Any, conn: Any) -> Any:
        channel.on_closed.addCallback(self._channel_closed, channel, conn)
        if not self._confirms:
            self._ready(channel)
            return None
        d = channel.confirm_delivery()
        d.addCallback(lambda _: self._ready(channel))
        return d

    def _ready(self, channel: Any) -> None:
        if not channel.is_open:
            return
        self._channel = channel
        waiters, self._channel_waiters = self._channel_waiters, []
        for op in waiters:
            if not op.result.called:
                op.send(channel)

    def _channel_closed(self, reason: Any, channel: Any, conn: Any) -> None:
        if self._channel is channel:
            self._channel = None
        if not self._stopped and conn is self._conn.connection and conn.is_open:
            self.log.warn(
                "Publisher channel closed ({reason}); reopening",
                reason=describe_reason(reason)["reason"],
            )
            self._attach(conn)

    def _detach(self, reason: Any) -> None:
        self._channel = None

    # -- window ---------------------------------------------------------------

    def _release(self) -> None:
        self._free += 1
        if self._releasing:
            return  # the outer loop hands the slot on
        self._releasing = True
        try:
            waiters = self._window_waiters
            while self._free > 0 and waiters:
                op = waiters.popleft()
                self._free -= 1
                op.got_slot()
        finally:
            self._releasing = False

    def _sweep_deadlines(self) -> None:
        self._sweep = None
        now = self._clock.seconds()
        queue = self._deadlines
        while queue:
            op = queue[0]
            if op.deadline is None:  # settled or cancelled
                queue.popleft()
            elif op.deadline <= now:
                queue.popleft()
                op.deadline = None
                op.expire()
            else:
                self._sweep = self._clock.callLater(op.deadline - now, self._sweep_deadlines)
                return

    def _finished(self) -> None:
        if self._outstanding.count == 1 and self._sweep is not None:
            # the last one: no deadlines left to sweep
            if self._sweep.active():
                self._sweep.cancel()
            self._sweep = None
            self._deadlines.clear()
        self._outstanding.leave()
