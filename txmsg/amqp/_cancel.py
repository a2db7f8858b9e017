# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Cancelling a consumer without rejecting what is already on its way.

Between C{basic.cancel} and the broker's C{cancel-ok}, RabbitMQ may still
deliver (up to the prefetch window): those deliveries were sent before it
saw the cancel.  pika's channel rejects each of them at once, with requeue,
because the consumer tag is in its set of cancelled tags from the moment
the cancel is sent.  A rejected message comes back marked C{redelivered}
(and counted in a quorum queue's C{x-delivery-count}), so a worker that
stops under load would count a run for tasks it never started, and a task
allowed no retries would be dead-lettered without running.

L{cancel_consumer} sends the cancel and then takes the tag out of that set,
so the deliveries that arrive before C{cancel-ok} reach the consumer's queue
like any other (pika still forgets the consumer at C{cancel-ok}).  The
consumer handles or gives them back, and they are settled normally.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

__all__ = ["cancel_consumer"]


def cancel_consumer(channel: Any, tag: str) -> Deferred[Any]:
    """
    C{basic.cancel} consumer C{tag} on C{channel} (pika's Twisted channel,
    or the memory fake's), keeping the deliveries that arrive before the
    broker's C{cancel-ok} (see the module docstring).

    @return: a Deferred firing at C{cancel-ok}; a failure if the channel
        could not send the cancel.
    """
    try:
        d = channel.basic_cancel(tag)
    except Exception as e:
        return fail(e)
    # pika.channel.Channel keeps user-cancelled tags in _cancelled until
    # cancel-ok and rejects deliveries for them (Channel._on_deliver).  A
    # channel without that set (another client library, the memory fake)
    # does not reject, and needs nothing.
    cancelled = getattr(getattr(channel, "_channel", None), "_cancelled", None)
    if isinstance(cancelled, set):
        cancelled.discard(tag)
    return d if isinstance(d, Deferred) else succeed(d)
