# -*- test-case-name: txmsg.test.test_worker_brokers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What the worker needs from a broker: L{IWorkerBroker}.

The worker's pipeline sees deliveries as L{IncomingMessage} values and
answers each with a decision (L{txmsg.worker.decisions}); the provider
carries the decision out (publish with confirm, then ack) and nothing
else, a C{Retry} or C{Delay} with any delay included.  A provider for
another broker (Redis Streams) plugs in here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["IWorkerBroker", "IncomingMessage"]


@dataclass(frozen=True)
class IncomingMessage:
    """
    One delivery, as the worker's pipeline sees it (whatever the broker).

    @ivar body: the message body.
    @ivar queue: the work queue it came from.
    @ivar headers: the message headers, as received (untrusted: see
        L{txmsg.worker.headers.read_headers}).
    @ivar redelivered: the broker delivered this message before.
    @ivar handle: the provider's own delivery object (for settling it).
    """

    body: bytes
    queue: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    redelivered: bool = False
    handle: Any = field(default=None, repr=False, compare=False)


class IWorkerBroker(Interface):
    """
    A broker the worker consumes tasks from and settles them on.
    """

    name = Attribute("A short name for logs and event sources, e.g. C{'amqp'}.")

    def declare(queue: str, retry_delays: Sequence[float], queue_type: str | None) -> None:
        """
        Declare work queue C{queue} with its dead-letter queue and whatever
        the provider needs to delay messages by C{retry_delays} (seconds;
        the AMQP provider's delay levels serve any delay); redeclared after
        every reconnect.
        """

    def consume(
        queue: str,
        handler: Callable[[IncomingMessage], Awaitable[Any]],
        prefetch: int,
        give_back: Callable[[IncomingMessage], Awaitable[Any]] | None = None,
    ) -> Any:
        """
        Consume C{queue}, at most C{prefetch} deliveries unsettled at once.

        @param handler: called with each L{IncomingMessage}; its Deferred
            fires with what L{settle} returned for that message, which the
            provider then applies (ack, or give it back to the broker).
        @param give_back: called, like C{handler}, with each delivery that
            arrives after the consumer was stopped (it settles it with an
            uncounted C{Requeue}); L{None}: the broker requeues those.
        @return: the consumer: an object with C{stop()} returning a
            Deferred, and C{consuming} (whether it is registered now).
        """

    def settle(message: IncomingMessage, decision: Any) -> Deferred[Any]:
        """
        Carry out a decision (L{txmsg.worker.decisions.Decision}): publish
        what it needs (the reply, the retry, the dead letter) and wait for
        the broker to confirm it.

        @return: a Deferred firing with the final action for the consumer
            to apply (ack, or requeue for a counted C{Requeue}; an
            uncounted one is published back to its queue, then acked), or
            failing when a
            publish failed, in which case nothing was acked.
        """

    def reply(message: IncomingMessage, body: bytes, content_type: str) -> Deferred[None]:
        """
        Send C{body} to the message's C{reply_to} with its C{correlation_id};
        a reply nobody can receive any more is logged, not an error.
        """
