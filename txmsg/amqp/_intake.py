# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Taking a consumer's deliveries as they arrive.

pika's Twisted channel puts each delivery on the consumer's
C{ClosableDeferredQueue}, where a consumer asks for it with C{get()}: a
Deferred, its callback and the queue's bookkeeping per delivery, a few
percent of a worker's CPU on a busy queue.  L{take_deliveries} makes the
queue hand each delivery to a function instead.  Closing the queue (the
channel closed, or the consumer was cancelled) still fails the C{get()}s
waiting on it: that is how the consumer learns of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["take_deliveries"]


def take_deliveries(queue: Any, deliver: Callable[[Any], object]) -> None:
    """
    From now on, hand what is put on C{queue} (pika's
    C{ClosableDeferredQueue}, or the memory fake's) to C{deliver}, at once
    and in order, instead of keeping it for C{get()}; what it already holds
    is handed first.  Once the queue is closed, a put fails as it did.
    """
    held = list(queue.pending)
    del queue.pending[:]
    put_closed = queue.put

    def put(message: Any) -> Any:
        if queue.closed:
            return put_closed(message)  # fails, as pika's does
        deliver(message)
        return None

    queue.put = put
    for message in held:
        deliver(message)
