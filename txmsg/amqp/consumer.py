# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Consuming with manual acks over a reconnecting L{AMQPConnection}.

A L{Consumer} sets C{basic_qos(prefetch_count=N)} before C{basic_consume},
calls its handler with a L{Delivery} and acks I{on the delivering channel}
only after the handler's result (a value, a Deferred or a coroutine) succeeded.
A failure is nacked (requeued or dead-lettered according to C{on_error}); a
handler can also decide explicitly by returning a L{Disposition} or raising
L{RetryLater}, L{DeadLetter} or L{DropMessage}.

After a reconnect or a channel error the consumer is recreated; a handler
that finishes after its channel died is I{not} acked on the new channel (its
delivery tag means nothing there) and the broker redelivers the message.
Delivery is therefore at-least-once: handlers should be idempotent.

A I{transactional} consumer (C{transactional=True}) puts its channel in AMQP
transaction mode and commits what settles in each reactor turn
(L{txmsg.amqp._transaction}); its handlers can return L{AckWith} to publish
messages in the same transaction as their ack: one round trip to the broker
for a reply and the ack of its request.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from pika.exceptions import ConsumerCancelled
from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._waiters import InFlight, Waiters
from txmsg.amqp._acks import AckBatch
from txmsg.amqp._cancel import cancel_consumer
from txmsg.amqp._intake import take_deliveries
from txmsg.amqp._protocol import describe_reason
from txmsg.amqp._transaction import TransactionBatch
from txmsg.amqp.delivery import (
    AckWith,
    DeadLetter,
    Delivery,
    Disposition,
    DropMessage,
    ErrorPolicy,
    HandlerDecision,
    Outcome,
    Publish,
    RetryLater,
)
from txmsg.amqp.topology import Queue
from txmsg.events import IEventSink

if TYPE_CHECKING:  # a type only: connection.py imports this module
    from txmsg.amqp.connection import AMQPConnection

__all__ = [
    "AckWith",
    "Consumer",
    "ConsumerStopped",
    "DeadLetter",
    "Delivery",
    "DropMessage",
    "Disposition",
    "ErrorPolicy",
    "HandlerDecision",
    "Outcome",
    "Publish",
    "RetryLater",
]


class ConsumerStopped(Exception):
    """The consumer was stopped before what was waited for happened."""


class _Session:
    """One channel with one consumer on it."""

    __slots__ = (
        "channel",
        "queue",
        "tag",
        "name",
        "waiting",
        "backlog",
        "taking_back",
        "dead",
        "acks",
        "transactional",
        "live",
        "handling",
        "retiring",
    )

    def __init__(
        self, channel: Any, queue: Any, tag: str, name: str, acks: Any, transactional: bool
    ) -> None:
        self.channel = channel
        #: An AckBatch, or a TransactionBatch on a transactional channel.
        self.acks = acks
        self.transactional = transactional
        self.queue = queue
        self.tag = tag
        self.name = name
        #: Whether the next delivery is handled as soon as it arrives.
        self.waiting = False
        #: Deliveries that arrived while the consumer was busy, in order.
        self.backlog: deque[Any] = deque()
        #: In L{Consumer._take_back}'s loop.
        self.taking_back = False
        self.dead = False
        #: Whether what its handlers decide is still settled on it.
        self.live = True
        #: Deliveries handed to a handler and not settled yet.
        self.handling = 0
        #: Cancelled for a move to a channel of the other mode (every
        #: delivery the broker sent before its cancel-ok is handled at
        #: once), or by the broker: the channel closes once what it
        #: delivered is settled.
        self.retiring = False


class Consumer:
    """
    Consume one queue with manual acks, surviving reconnects and channel
    errors.
    """

    log = Logger()
    stop_order = 0

    def __init__(
        self,
        connection: AMQPConnection,
        queue: Queue | str,
        handler: Any = None,
        *,
        prefetch: int = 1,
        concurrency: int | None = None,
        on_error: ErrorPolicy = ErrorPolicy.REQUEUE_ONCE,
        events: IEventSink | None = None,
        event_name: str | None = None,
        exclusive: bool = False,
        arguments: dict | None = None,
        retry_delay: float = 1.0,
        grace: float | None = 30.0,
        give_back: Any = None,
        transactional: bool = False,
        on_return: Any = None,
    ) -> None:
        """
        @param connection: the L{txmsg.amqp.connection.AMQPConnection}.
        @param queue: a L{Queue} (declared with the connection's topology,
            server-named ones included) or the name of an existing queue.
        @param handler: called with each L{Delivery}; returns a value, a
            Deferred or a coroutine.  L{None}: dispatch every delivery into
            the event registry C{events} (default: the connection's) as
            C{event_name} (default C{"amqp.delivery"}).
        @param prefetch: C{basic_qos(prefetch_count)}; 1 is fair dispatch.
        @param concurrency: handlers running at once (default: C{prefetch}).
        @param on_error: what a handler failure does (L{ErrorPolicy}).
        @param retry_delay: seconds before recreating the consumer after a
            channel error or a broker cancel.
        @param grace: seconds L{stop} waits for running handlers before it
            closes the channel anyway (their deliveries are then requeued by
            the broker and their late results not acked); L{None}: no limit.
        @param give_back: called (like C{handler}) with each delivery that
            arrives after L{stop}: the consumer is cancelled at the broker
            first, and what was already sent is handed to C{give_back}
            (whose result settles it, as a handler's does) instead of being
            left for the broker to requeue when the channel closes, which
            would mark it redelivered.  L{None}: left to the broker.
        @param transactional: put the channel in AMQP transaction mode:
            what settles in a reactor turn is committed together, and a
            handler may return L{AckWith} (see the module docstring).
        @param on_return: on a transactional consumer, called with each
            message published with an ack that the broker returned (pika's
            C{ReceivedMessage}); by default such a message is logged.
        """
        if prefetch < 1:
            raise ValueError("prefetch must be >= 1 (manual acks need a bound)")
        self._conn = connection
        self._queue = queue
        if handler is None:
            registry = events if events is not None else connection.events
            if registry is None:
                raise ValueError("a handler or an event registry is required")
            name = event_name or "amqp.delivery"

            def handler(d: Delivery) -> Any:
                return registry.dispatch(name, d, source="amqp:" + d.queue)

        self._handler = handler
        self._give_back = give_back
        self._cancelled: Deferred | None = None
        self._prefetch = prefetch
        self._concurrency = concurrency or prefetch
        self._on_error = ErrorPolicy(on_error)
        self._exclusive = exclusive
        self._arguments = arguments
        self._retry_delay = retry_delay
        self._transactional = transactional
        self._on_return = on_return or self._returned
        self._session: _Session | None = None
        self._starting = False
        self._retry_call: Any = None
        self.grace = grace
        self._inflight = InFlight(connection.reactor)
        self._pumping = False
        self._stopped = False
        self._consuming_waiters: Waiters[str] = Waiters(connection.reactor)
        self._moved_waiters: Waiters[None] = Waiters(connection.reactor)
        self._moving = False
        self._retiring: set[_Session] = set()
        self.acked = 0
        self.nacked = 0
        if isinstance(queue, Queue):
            # Attach only once the queue exists (and, server-named, has a name).
            d = connection.declare(queue)
            d.addBoth(lambda _: None if self._stopped else connection.add_participant(self))
        else:
            connection.add_participant(self)

    def __repr__(self) -> str:
        return f"<Consumer queue={self._queue!r}>"

    @property
    def consuming(self) -> bool:
        """Whether a broker consumer is currently active (or being moved)."""
        return self._session is not None or self._moving

    @property
    def transactional(self) -> bool:
        """
        Whether the consumer's channel is (or, while it is being moved or
        re-created, will be) in transaction mode.
        """
        return self._transactional

    def set_transactional(self, transactional: bool) -> Deferred[None]:
        """
        Consume on a channel in transaction mode from now on (or on a plain
        one).  The current channel's consumer is cancelled at the broker;
        every delivery it had sent is handled and settled on that channel as
        usual (none goes back to the queue or is marked redelivered), a new
        channel in the new mode consumes from the broker's C{cancel-ok} on,
        and the old channel closes once its deliveries are settled.

        @return: a Deferred firing once the consumer consumes in the new mode
            (at once if it already does, or if it is not consuming: it will
            start in that mode).
        """
        self._transactional = transactional
        session = self._session
        if self._moving:
            return self._moved_waiters.wait()
        if self._stopped or session is None or session.transactional == transactional:
            return succeed(None)
        self._moving = True
        waiting = self._moved_waiters.wait()
        d = Deferred.fromCoroutine(self._move(session))
        d.addErrback(
            lambda f: self.log.failure(
                "Moving the consumer of {queue} failed", f, queue=session.name
            )
        )
        return waiting

    async def _move(self, session: _Session) -> None:
        try:
            while True:
                await self._move_once(session)
                current = self._session
                if (
                    self._stopped
                    or current is None
                    or current is session  # its channel went away: re-created in the new mode
                    or current.transactional == self._transactional
                ):
                    break
                session = current  # asked to move back meanwhile
        finally:
            self._moving = False
            self._moved_waiters.fire(None)

    async def _move_once(self, old: _Session) -> None:
        old.retiring = True
        self._retiring.add(old)
        self._take_back(old)
        try:
            await cancel_consumer(old.channel, old.tag)
        except Exception as e:
            # The channel is gone: the usual re-creation takes over, in the
            # new mode.
            self.log.debug("Cancelling the consumer to move it failed: {error}", error=e)
            return
        if self._session is old:
            self._session = None
            conn = self._conn.connection
            started = None if self._stopped or conn is None else self._attach(conn)
            if started is not None:
                await started
        self._retire_when_settled(old)

    def _retire_when_settled(self, session: _Session) -> None:
        # A retiring session is done once cancelled (dead: nothing more can
        # arrive on it) and settled; it is retired once.
        if session.dead and not session.handling and session in self._retiring:
            self._retire(session)

    def _retire(self, session: _Session) -> Deferred[Any]:
        """
        A retiring session whose deliveries are all settled: send what is
        left to send (commit it), then close its channel.
        """
        session.live = False
        self._retiring.discard(session)
        return session.acks.flush().addBoth(self._close_channel, session.channel)

    def when_consuming(self, timeout: float | None = None) -> Deferred[str]:
        """
        A Deferred firing with the queue name once a broker consumer is active
        (at once if it is).  Cancelling it stops the wait.

        @param timeout: seconds to wait; L{None} waits until the consumer
            stops.
        @return: the Deferred; it fails with L{ConsumerStopped} if the
            consumer is (or gets) stopped first, or after C{timeout} with
            C{twisted.internet.defer.TimeoutError}.
        """
        if self._session is not None:
            return succeed(self._session.name)
        if self._stopped:
            return fail(ConsumerStopped(f"{self!r} is stopped"))
        return self._consuming_waiters.wait(timeout)

    @property
    def queue_name(self) -> str | None:
        """The queue's name on the current connection, if consuming."""
        return self._session.name if self._session else None

    # -- participant --------------------------------------------------------

    def _attach(self, conn: Any) -> Deferred | None:
        if self._stopped or self._starting or self._session is not None:
            return None
        self._starting = True
        d = Deferred.fromCoroutine(self._start(conn))
        d.addErrback(self._start_failed, conn)
        d.addBoth(self._not_starting)
        return d

    def _not_starting(self, result: Any) -> Any:
        self._starting = False
        return result

    async def _start(self, conn: Any) -> None:
        name = self._conn.topology.queue_name(self._queue)
        channel = await self._conn.open_channel()
        try:
            await channel.basic_qos(prefetch_count=self._prefetch)
            if self._transactional:
                await channel.tx_select()
            queue, tag = await channel.basic_consume(
                name,
                auto_ack=False,
                exclusive=self._exclusive,
                arguments=self._arguments,
            )
        except BaseException:
            if channel.is_open:
                channel.close()
            raise
        if self._stopped or conn is not self._conn.connection:
            channel.close()
            return
        clock = self._conn.reactor
        writer = getattr(conn, "writer", None)  # the protocol's CoalescingWriter
        acks: AckBatch | TransactionBatch = (
            TransactionBatch(channel, clock, self._on_return, writer)
            if self._transactional
            else AckBatch(channel, clock, writer)
        )
        session = _Session(channel, queue, tag, name, acks, self._transactional)
        self._session = session
        take_deliveries(queue, lambda message: self._arrived(message, session))
        queue.get().addBoth(self._closed, session)  # fails when the queue closes
        channel.on_closed.addCallback(self._channel_closed, session, conn)
        self.log.info(
            "Consuming {queue} (prefetch {prefetch})",
            queue=name,
            prefetch=self._prefetch,
        )
        self._consuming_waiters.fire(name)
        self._pump()

    def _start_failed(self, f: Failure, conn: Any) -> None:
        self.log.failure("Starting consumer on {queue!r} failed", f, queue=self._queue)
        self._retry_later(conn)

    def _retry_later(self, conn: Any) -> None:
        if self._stopped or self._retry_call is not None:
            return
        if conn is not self._conn.connection or not conn.is_open:
            return  # the next connection will attach us

        def retry() -> None:
            self._retry_call = None
            if conn is self._conn.connection and conn.is_open:
                self._attach(conn)

        self._retry_call = self._conn.reactor.callLater(self._retry_delay, retry)

    def _channel_closed(self, reason: Any, session: _Session, conn: Any) -> None:
        session.live = False
        self._retiring.discard(session)
        if session.retiring and self._session is not session:
            return  # replaced already; closed once its deliveries were settled
        if self._session is session:
            self._session = None
        if not self._stopped:
            self.log.info(
                "Consumer channel for {queue} closed: {reason}",
                queue=session.name,
                reason=describe_reason(reason)["reason"],
            )
            self._retry_later(conn)

    def _detach(self, reason: Any) -> None:
        if self._session is not None:
            self._session.live = False
        self._session = None
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    # -- the delivery loop --------------------------------------------------

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._stopped and self._inflight.count < self._concurrency:
                session = self._session
                if session is None or session.dead or session.waiting or session.retiring:
                    return
                if not session.backlog:
                    session.waiting = True  # _arrived hands the next one to _got
                    return
                self._got(session.backlog.popleft(), session)
        finally:
            self._pumping = False

    def _arrived(self, message: Any, session: _Session) -> None:
        # Each delivery, as pika's channel hands it over (take_deliveries).
        if session.waiting:
            session.waiting = False
            self._got(message, session)
        else:
            session.backlog.append(message)

    def _closed(self, result: Any, session: _Session) -> None:
        # The session's queue closed: its channel closed, or the consumer
        # was cancelled.  What it had buffered is gone with it (the broker
        # redelivers it), as in pika's queue.
        if not isinstance(result, Failure):  # put hands deliveries over instead
            self._arrived(result, session)
            session.queue.get().addBoth(self._closed, session)
            return
        session.waiting = False
        session.backlog.clear()
        self._queue_closed(result, session)

    def _got(self, message: Any, session: _Session) -> None:
        if session is not self._session:
            return  # left unacked: its channel is gone
        session.acks.delivered(message.method.delivery_tag)
        if self._stopped:
            if self._give_back is not None:
                self._handle(session, message, self._give_back)
                self._take_back(session)
            # Else left unacked: closing the channel makes the broker requeue it.
            return
        self._handle(session, message)
        if session.retiring:
            self._take_back(session)  # sent before the cancel-ok: handled now
        else:
            self._pump()

    def _take_back(self, session: _Session) -> None:
        # Stopped with give_back, or moving to another channel: take every
        # delivery the broker sent before it confirmed the cancel (then the
        # queue closes), whatever the concurrency; cancel_consumer keeps
        # pika from rejecting those.
        if session.dead or session.waiting or session.taking_back:
            return
        session.taking_back = True
        try:
            while session.backlog and not session.dead:
                self._got(session.backlog.popleft(), session)
        finally:
            session.taking_back = False
        if not session.dead:
            session.waiting = True

    def _queue_closed(self, f: Failure, session: _Session) -> None:
        f.trap(Exception)
        session.dead = True
        if self._session is not session or self._stopped or session.retiring:
            return
        if f.check(ConsumerCancelled):
            # The broker cancelled us (queue deleted, failover).  What it had
            # sent and we had not started is stuck unacked until the channel
            # closes.  The channel closes once the running handlers have
            # settled, so what ran is acked (committed), not redelivered; a
            # new consumer starts after retry_delay meanwhile.
            self.log.warn("Consumer on {queue} was cancelled by the broker", queue=session.name)
            session.retiring = True
            self._retiring.add(session)
            self._session = None
            self._retire_when_settled(session)
            self._retry_later(self._conn.connection)

    @staticmethod
    def _close_channel(_: Any, channel: Any) -> None:
        if channel.is_open:
            channel.close()

    def _returned(self, message: Any) -> None:
        method = message.method
        self.log.warn(
            "A message published with an ack to {routing_key!r} was returned: {code} {text}",
            routing_key=method.routing_key,
            code=method.reply_code,
            text=method.reply_text,
        )

    def _handle(self, session: _Session, msg: Any, handler: Any = None) -> None:
        method = msg.method
        delivery = Delivery(
            msg.body,
            session.name,
            method.exchange,
            method.routing_key,
            method.redelivered,
            method.delivery_tag,
            method.consumer_tag,
            msg.properties,
            session.transactional,
        )
        self._inflight.enter()
        session.handling += 1
        try:
            result = (handler or self._handler)(delivery)
        except BaseException:
            result = Failure()
        else:
            if isinstance(result, Deferred):
                result.addBoth(self._settle, session, msg.channel, delivery)
                return
            if hasattr(result, "__await__"):
                ensureDeferred(result).addBoth(self._settle, session, msg.channel, delivery)
                return
        # A plain value (or a synchronous exception): settle without Deferreds.
        self._settle(result, session, msg.channel, delivery)

    def _settle(self, result: Any, session: _Session, channel: Any, delivery: Delivery) -> None:
        outcome = self._outcome(result, delivery, session.transactional)
        try:
            if not session.live or not channel.is_open:
                self.log.warn(
                    "Not settling delivery {tag} of {queue} ({outcome}): its channel "
                    "is gone; the broker will redeliver it",
                    tag=delivery.delivery_tag,
                    queue=delivery.queue,
                    outcome="ack" if isinstance(outcome, AckWith) else outcome.value,
                )
            elif outcome is Disposition.ACK or outcome is Disposition.DROP:
                # Acked at the end of the turn, with the others settled in it.
                session.acks.ack(delivery.delivery_tag)
                self.acked += 1
            elif isinstance(outcome, AckWith):
                session.acks.ack(delivery.delivery_tag, outcome.publishes)
                self.acked += 1
            else:
                session.acks.nack(delivery.delivery_tag, outcome is Disposition.RETRY)
                self.nacked += 1
        except Exception:
            self.log.failure("Settling delivery {tag} failed", tag=delivery.delivery_tag)
        finally:
            session.handling -= 1
            if session.retiring:
                self._retire_when_settled(session)
            self._inflight.leave()
            self._pump()

    def _outcome(
        self, result: Any, delivery: Delivery, transactional: bool
    ) -> Disposition | AckWith:
        if isinstance(result, Disposition):
            outcome = result
        elif isinstance(result, AckWith):
            if transactional:
                return result
            return self._outcome(
                Failure(TypeError("AckWith needs a transactional consumer")), delivery, False
            )
        elif not isinstance(result, Failure):
            return Disposition.ACK
        elif isinstance(result.value, HandlerDecision):
            outcome = result.value.outcome
        else:
            if self._on_error is ErrorPolicy.REQUEUE or (
                self._on_error is ErrorPolicy.REQUEUE_ONCE and not delivery.redelivered
            ):
                outcome = Disposition.RETRY
            else:
                outcome = Disposition.DEAD_LETTER
            self.log.failure(
                "Handler failed on delivery {tag} of {queue}; {outcome}",
                result,
                tag=delivery.delivery_tag,
                queue=delivery.queue,
                outcome=outcome.value,
            )
            return outcome
        if outcome is Disposition.DROP:
            self.log.info(
                "Dropping delivery {tag} of {queue}",
                tag=delivery.delivery_tag,
                queue=delivery.queue,
            )
        return outcome

    # -- stopping -----------------------------------------------------------

    def stop(self) -> Deferred:
        """
        Stop cleanly: take no more deliveries, wait (up to C{grace} seconds)
        for running handlers and their acks, then cancel the consumer and
        close its channel (which makes the broker requeue deliveries
        buffered but not handled, and those whose handler outlived the
        grace period).  Pending L{when_consuming} calls fail with
        L{ConsumerStopped}.
        """
        self._stopped = True
        self._consuming_waiters.fail(ConsumerStopped(f"{self!r} stopped"))
        self._conn.remove_participant(self)
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        session = self._session
        if (
            self._give_back is not None
            and session is not None
            and not session.dead
            and not session.retiring  # its cancel is on its way
        ):
            self._cancelled = self._cancel(session)
        return Deferred.fromCoroutine(self._stop())

    def _cancel(self, session: _Session) -> Deferred:
        self._take_back(session)
        return cancel_consumer(session.channel, session.tag)

    async def _stop(self) -> None:
        cancelled, self._cancelled = self._cancelled, None
        if cancelled is not None:
            try:
                await cancelled  # what the broker sent before is taken back by then
            except Exception as e:
                self.log.debug("Cancelling the consumer failed: {error}", error=e)
        try:
            await self._inflight.drain(self.grace)
        except TimeoutError:
            self.log.warn(
                "Consumer on {queue} stopping with {n} handler(s) still running after "
                "{grace}s; their deliveries will be redelivered",
                queue=self.queue_name,
                n=self._inflight.count,
                grace=self.grace,
            )
        for retiring in list(self._retiring):
            await self._retire(retiring)
        session, self._session = self._session, None
        if session is None:
            return
        session.live = False
        await session.acks.flush()  # committed, on a transactional channel
        channel = session.channel
        if channel.is_open:
            closed = channel.on_closed
            try:
                channel.close()
            except Exception:
                return
            await closed
