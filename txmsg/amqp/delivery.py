# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What a consumer's handler receives (L{Delivery}) and how it decides what
happens to it (return an L{Disposition}, or raise L{RetryLater}, L{DeadLetter}
or L{DropMessage}); L{ErrorPolicy} covers every other exception.  A handler
of a transactional consumer can also return L{AckWith}: messages published
in the same transaction as the ack.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

__all__ = [
    "AckWith",
    "DeadLetter",
    "Delivery",
    "DropMessage",
    "ErrorPolicy",
    "Disposition",
    "HandlerDecision",
    "Outcome",
    "Publish",
    "RetryLater",
]


class Disposition(enum.Enum):
    """What to do with a delivery; a handler may return one."""

    #: Processing succeeded: ack.
    ACK = "ack"
    #: Put the message back in the queue (C{basic_nack(requeue=True)}).
    RETRY = "retry"
    #: Reject without requeue, so the queue's dead-letter exchange gets it.
    DEAD_LETTER = "dead_letter"
    #: Discard it on purpose: ack, and log that it was dropped.
    DROP = "drop"


#: The old name of L{Disposition}, kept for one release (it was confusable
#: with L{txmsg.events.HandlerOutcome}, then also called C{Outcome}).
Outcome = Disposition


class Publish(NamedTuple):
    """
    A message to publish (mandatory) on a consumer's channel, with an ack.
    """

    exchange: str
    routing_key: str
    body: bytes
    #: C{pika.BasicProperties}.
    properties: Any


class AckWith(NamedTuple):
    """
    What a handler of a transactional consumer (C{Consumer(...,
    transactional=True)}) returns to ack its delivery and publish
    C{publishes} in one AMQP transaction: one round trip to the broker for
    both, and neither happens unless the commit does.  Returned for a
    delivery that did not come on a transactional channel
    (C{delivery.transactional} is false), it is a handler failure.
    """

    publishes: tuple[Publish, ...]


class ErrorPolicy(enum.Enum):
    """What a handler failure (any other exception) does."""

    #: Requeue; a delivery that was already redelivered is dead-lettered.
    REQUEUE_ONCE = "requeue_once"
    #: Always requeue (beware of poison messages looping).
    REQUEUE = "requeue"
    #: Always dead-letter (or discard, when the queue has no DLX).
    DEAD_LETTER = "dead_letter"


class HandlerDecision(Exception):
    """Base of the exceptions a handler raises to decide explicitly."""

    outcome = Disposition.ACK


class RetryLater(HandlerDecision):
    """Raise to requeue the delivery."""

    outcome = Disposition.RETRY


class DeadLetter(HandlerDecision):
    """Raise to dead-letter the delivery."""

    outcome = Disposition.DEAD_LETTER


class DropMessage(HandlerDecision):
    """Raise to drop (ack) the delivery without processing it."""

    outcome = Disposition.DROP


class Delivery(NamedTuple):
    """
    One message delivered to a consumer (an immutable value).

    @ivar body: the message body.
    @ivar properties: the C{pika.BasicProperties}.
    @ivar redelivered: whether the broker delivered it before (possibly a
        duplicate: make handlers idempotent).
    @ivar transactional: whether it came on a channel in transaction mode,
        where the handler may return L{AckWith} (see
        L{txmsg.amqp.Consumer.set_transactional}: a consumer moved to or
        from that mode still settles what came before the move on the old
        channel).
    """

    body: bytes
    queue: str
    exchange: str
    routing_key: str
    redelivered: bool
    delivery_tag: int
    consumer_tag: str
    properties: Any
    transactional: bool = False

    @property
    def headers(self) -> dict:
        """The message headers (empty dict when none)."""
        return self.properties.headers or {}

    @property
    def content_type(self) -> str | None:
        """The content type property."""
        return self.properties.content_type

    @property
    def correlation_id(self) -> str | None:
        """The correlation id property."""
        return self.properties.correlation_id

    @property
    def reply_to(self) -> str | None:
        """The reply-to property."""
        return self.properties.reply_to

    @property
    def message_id(self) -> str | None:
        """The message id property."""
        return self.properties.message_id
