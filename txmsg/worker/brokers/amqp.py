# -*- test-case-name: txmsg.test.test_worker_brokers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker on RabbitMQ: L{AMQPWorkerBroker}, the first L{IWorkerBroker}.

Work queue C{Q} comes with C{Q.dead}, and is bound as a destination of the
broker's delayed delivery (L{txmsg.amqp.delayed}): a C{Retry} with any delay
and a C{Delay} wait there, in a fixed set of TTL levels shared by every
queue and delay, never in the worker.  Every decision is carried out with
publisher confirms, and only then is the delivery acked (by the
L{txmsg.amqp.Consumer}, on the channel it came from).

On a transactional consumer channel the acks (and nacks) of one reactor
turn are committed together, and a reply to an ordinary queue is published
on that channel in the same transaction as the ack of its request
(L{txmsg.amqp.AckWith}): one round trip to the broker instead of a
confirmed publish followed by the ack.  Replies to RabbitMQ's direct
reply-to, and replies that go with a dead letter, take the confirmed path
(L{txmsg.amqp.reply}).  By default (C{transactions=None}) each queue's
consumer starts plain and moves to a transactional channel, and back, as
the share of its tasks that reply to an ordinary queue changes
(L{txmsg.worker.brokers.transaction_choice}); C{True} or C{False} fix the
mode.  Consumers of quorum queues do not move (they stay plain unless
C{transactions=True}): moving cancels the consumer, and RabbitMQ 3.10
returned, counted, messages in flight to a cancelled consumer of a quorum
queue declared with a delivery limit, as the worker declares them.

Before this, each retry delay had its own queue, C{Q.retry.<ms>ms}.  Such
queues are no longer declared or published to; messages still waiting in
them expire back into C{Q} as before (the queue's own dead-letter
arguments), so an upgrade loses nothing.  Delete them once empty.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pika import BasicProperties
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txmsg.amqp import (
    AckWith,
    AMQPConnection,
    Delivery,
    ErrorPolicy,
    Outcome,
    Publish,
    Queue,
    make_properties,
)
from txmsg.amqp.delayed import DelayedDelivery
from txmsg.amqp.queue_types import dead_letter_arguments, work_queue_arguments
from txmsg.amqp.reply import is_direct_reply_to
from txmsg.amqp.reply_to import reply_to_problem
from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker
from txmsg.worker.brokers.transaction_choice import TransactionChoice
from txmsg.worker.decisions import Ack, DeadLetter, Decision, Delay, Reply, Requeue, Retry
from txmsg.worker.envelope import CONTENT_TYPE
from txmsg.worker.headers import (
    ATTEMPT_HEADER,
    DELIVERY_COUNT_HEADER,
    REDELIVERED_HEADER,
    dead_letter_headers,
    uncounted_headers,
)
from txmsg.worker.retry import dead_letter_queue_name

__all__ = ["AMQPWorkerBroker", "work_queue"]


def work_queue(queue: str, queue_type: str | None = None, max_priority: int | None = None) -> Queue:
    """
    The declaration of work queue C{queue}: durable, of C{queue_type}, with
    C{x-max-priority} when C{max_priority} is given.  A client that declares
    the queue must use the same, or the broker refuses the declaration
    (406 PRECONDITION_FAILED).
    """
    arguments = work_queue_arguments(queue_type, dead_letter_queue_name(queue))
    if max_priority is not None:
        if not 1 <= max_priority <= 255:
            raise ValueError("max_priority must be from 1 to 255")
        arguments["x-max-priority"] = max_priority
    return Queue(queue, durable=True, arguments=arguments)


def incoming(queue: str, delivery: Delivery) -> IncomingMessage:
    """
    The broker-neutral view of an AMQP delivery.
    """
    props = delivery.properties
    return IncomingMessage(
        body=delivery.body,
        queue=queue,
        headers=props.headers or {},
        content_type=props.content_type,
        message_id=props.message_id,
        reply_to=props.reply_to,
        correlation_id=props.correlation_id,
        redelivered=bool(delivery.redelivered),
        handle=delivery,
    )


def wants_queue_reply(message: IncomingMessage) -> bool:
    """
    Whether C{message} asks for a reply to an ordinary queue (what a
    transaction can carry with its ack), not to direct reply-to.
    """
    reply_to = message.reply_to
    if not reply_to:
        return False
    return not is_direct_reply_to(reply_to)


@implementer(IWorkerBroker)
class AMQPWorkerBroker:
    """
    Consume and settle tasks on an L{AMQPConnection}.

    @ivar amqp: the connection.
    @ivar worker_name: put in the headers of dead letters.
    """

    log = Logger(namespace="txmsg.worker.service")
    name = "amqp"

    def __init__(
        self,
        amqp: AMQPConnection,
        worker_name: str,
        max_priority: int | None = None,
        transactions: bool | None = None,
    ) -> None:
        """
        @param max_priority: declare work queues with this C{x-max-priority}.
        @param transactions: L{True}: consume on a transactional channel and
            publish replies to ordinary queues in the ack's transaction (one
            round trip per reply instead of two); L{False}: plain acks,
            every reply confirmed before its ack, which is cheaper when
            tasks have no replies or reply to direct reply-to; L{None} (the
            default): choose by itself, per queue, from what the tasks need
            (L{TransactionChoice}), moving the consumer when that changes.
        """
        self.amqp = amqp
        self.worker_name = worker_name
        self.max_priority = max_priority
        self.transactions = transactions
        #: Per queue, when the mode is chosen by the worker: kept across
        #: pause and resume, so a new consumer starts in the last mode.
        self.choices: dict[str, TransactionChoice] = {}
        self._quorum: set[str] = set()
        #: The delayed delivery retries and delays go through (its queue
        #: type is set by the first L{declare}).
        self.delays = DelayedDelivery(amqp)
        self._delays_typed = False

    def declare(self, queue: str, retry_delays: Sequence[float], queue_type: str | None) -> None:
        """
        Declare C{queue} (durable), its dead-letter queue, the delay levels
        (of C{queue_type}) and C{queue}'s binding to them.  C{retry_delays}
        is not needed any more: any delay shares the same levels.  Quorum
        work queues dead-letter at-least-once and cap deliveries broker-side
        (see L{txmsg.amqp.queue_types}).
        """
        dead = dead_letter_queue_name(queue)
        if queue_type == "quorum":
            self._quorum.add(queue)
        self.amqp.declare(
            work_queue(queue, queue_type, self.max_priority),
            Queue(dead, durable=True, arguments=dead_letter_arguments(queue_type)),
        )
        if not self._delays_typed:
            self._delays_typed = True
            self.delays = DelayedDelivery(self.amqp, queue_type=queue_type)
        self.delays.declare(queue)

    def consume(
        self,
        queue: str,
        handler: Callable[[IncomingMessage], Awaitable[Any]],
        prefetch: int,
        give_back: Callable[[IncomingMessage], Awaitable[Any]] | None = None,
    ) -> Any:
        """
        A L{txmsg.amqp.Consumer} of C{queue} calling C{handler} (and
        C{give_back} for deliveries that arrive after it was stopped).
        """
        choice = None
        if self.transactions is None and queue not in self._quorum:
            choice = self.choices.setdefault(queue, TransactionChoice())

        def deliver(delivery: Delivery) -> Any:
            message = incoming(queue, delivery)
            if choice is not None and choice.observe(wants_queue_reply(message)) is not None:
                self._move(consumer, queue, choice)
            return handler(message)

        consumer = self.amqp.consume(
            queue,
            deliver,
            prefetch=prefetch,
            give_back=(None if give_back is None else lambda d: give_back(incoming(queue, d))),
            on_error=ErrorPolicy.REQUEUE,
            # The worker's own grace period settles every running task (see
            # GracePeriod); the consumer must not close its channel earlier.
            grace=None,
            transactional=self.transactions or (choice is not None and choice.transactional),
            on_return=self._reply_returned,
        )
        return consumer

    def _move(self, consumer: Any, queue: str, choice: TransactionChoice) -> None:
        if choice.transactional:
            how = "moving its consumer to a transactional channel (replies committed with acks)"
        else:
            how = "moving its consumer back to a plain channel (replies confirmed, then acked)"
        self.log.info(
            "{share:.0%} of the last {window} tasks on {queue} reply to a queue: {how}",
            share=choice.share,
            window=choice.window,
            queue=queue,
            how=how,
        )
        consumer.set_transactional(choice.transactional)

    def _reply_returned(self, message: Any) -> None:
        self.log.warn(
            "Reply to {reply_to} was lost: no such queue (the caller is gone)",
            reply_to=message.method.routing_key,
        )

    def settle(self, message: IncomingMessage, decision: Decision) -> Deferred[Any]:
        """
        Publish what C{decision} needs, confirmed; fire with the consumer's
        L{Outcome}.
        """
        if isinstance(decision, Ack):
            return succeed(Outcome.ACK)
        if isinstance(decision, Requeue):
            if decision.counted:
                return succeed(Outcome.RETRY)
            d = self._hand_back(message, decision)
        elif isinstance(decision, Reply):
            with_ack = self._reply_with_ack(message, decision)
            if with_ack is not None:
                return succeed(with_ack)
            d = self.reply(message, decision.body, decision.content_type)
        elif isinstance(decision, Retry):
            d = self._republish(message, decision)
        elif isinstance(decision, Delay):
            d = self._delay(message, decision)
        else:
            d = self._dead_letter(message, decision)
        return d.addCallback(lambda _: Outcome.ACK)

    def _reply_with_ack(self, message: IncomingMessage, reply: Reply) -> AckWith | None:
        """
        The reply published in the ack's transaction, unless it must take
        the confirmed path: no C{reply_to} (nothing to publish: a plain
        ack), direct reply-to, or a name the broker could choke on.
        """
        reply_to = message.reply_to
        if (
            not message.handle.transactional
            or not reply_to
            or is_direct_reply_to(reply_to)
            or reply_to_problem(reply_to)
        ):
            return None
        props = BasicProperties(
            content_type=reply.content_type, correlation_id=message.correlation_id
        )
        return AckWith((Publish("", reply_to, reply.body, props),))

    def _properties(self, message: IncomingMessage, headers: dict[str, Any]) -> Any:
        # The broker's own delivery count belongs to the old copy: the new one
        # carries what it counted in the attempt header.
        merged = {k: v for k, v in message.headers.items() if k != DELIVERY_COUNT_HEADER}
        merged.update(headers)
        props = make_properties(message.handle.properties)
        props.headers = merged
        return props

    def _republish(self, message: IncomingMessage, retry: Retry) -> Deferred[None]:
        headers: dict[str, Any] = {ATTEMPT_HEADER: retry.attempts}
        if retry.redelivered:
            headers[REDELIVERED_HEADER] = 1
        props = self._properties(message, headers)
        if retry.delay <= 0:
            return self.amqp.publish(
                "", message.queue, message.body, properties=props, expiration=None
            )
        wait = retry.expiration_ms / 1000.0 if retry.expiration_ms else retry.delay
        return self.delays.publish(message.queue, message.body, wait, properties=props)

    def _delay(self, message: IncomingMessage, delay: Delay) -> Deferred[None]:
        props = self._properties(message, uncounted_headers(delay.attempts, delay.redelivered))
        return self.delays.publish(message.queue, message.body, delay.seconds, properties=props)

    def _hand_back(self, message: IncomingMessage, requeue: Requeue) -> Deferred[None]:
        # A nack with requeue would count as a delivery (classic queues set
        # redelivered, quorum queues increment x-delivery-count): a copy
        # published back to the queue (then the delivery acked) does not.
        return self.amqp.publish(
            "",
            message.queue,
            message.body,
            properties=self._properties(
                message, uncounted_headers(requeue.attempts, requeue.redelivered)
            ),
            expiration=None,
        )

    def _dead_letter(self, message: IncomingMessage, dead: DeadLetter) -> Deferred[None]:
        headers = dead_letter_headers(dead, message.queue, self.worker_name, int(time.time()))
        d = self.amqp.publish(
            "",
            dead_letter_queue_name(message.queue),
            message.body,
            properties=self._properties(message, headers),
            expiration=None,
        )
        if dead.reply is not None:
            body = dead.reply
            d.addCallback(lambda _: self.reply(message, body, CONTENT_TYPE))
        return d

    def reply(self, message: IncomingMessage, body: bytes, content_type: str) -> Deferred[None]:
        """
        Send a reply (not persistent) to C{reply_to}; a reply that is
        really lost (the caller is gone) is logged (L{txmsg.amqp.reply}).
        """
        if not message.reply_to:
            return succeed(None)
        return self.amqp.replies().send(
            message.reply_to,
            body,
            content_type=content_type,
            correlation_id=message.correlation_id,
        )
