# -*- test-case-name: txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
pika's consumer queue and message tuple, declared again for the memory
broker (importing pika's Twisted adapter would install the global reactor),
and the memory channel's consumers and reply frames.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from twisted.internet.defer import Deferred, DeferredQueue, fail

from txmsg.testing._amqp_state import BrokerMessage

__all__ = ["ClosableDeferredQueue", "ReceivedMessage"]


#: pika's C{ReceivedMessage} (importing pika's Twisted adapter would install
#: the global reactor, so it is declared again here, field for field).
ReceivedMessage = namedtuple("ReceivedMessage", ["channel", "method", "properties", "body"])


class ClosableDeferredQueue(DeferredQueue):
    """
    pika's C{ClosableDeferredQueue}: C{close(reason)} errbacks the waiting
    C{get}s and drops the buffer; later C{get}/C{put} fail with C{reason}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.closed: BaseException | None = None

    def get(self) -> Deferred:
        """The next item, or a failure once closed."""
        if self.closed is not None:
            return fail(self.closed)
        return super().get()

    def put(self, obj: Any) -> Any:
        """Add an item, or fail once closed."""
        if self.closed is not None:
            return fail(self.closed)
        return super().put(obj)

    def close(self, reason: BaseException) -> None:
        """Fail the waiting C{get}s with C{reason} and drop the buffer."""
        self.closed = reason
        while self.waiting:
            self.waiting.pop().errback(reason)
        self.pending = []


class _Frame:
    """A reply frame: pika fires a channel method's Deferred with one."""

    def __init__(self, method: Any) -> None:
        self.method = method


class _Consumer:
    """One C{basic_consume} on a channel."""

    def __init__(self, channel: Any, queue: str, tag: str, auto_ack: bool, prefetch: int) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.auto_ack = auto_ack
        self.prefetch = prefetch
        self.unacked = 0
        self.buffer = ClosableDeferredQueue()

    def has_capacity(self) -> bool:
        return self.auto_ack or not self.prefetch or self.unacked < self.prefetch

    def deliver(self, msg: BrokerMessage) -> None:
        self.channel._deliver(self, msg)

    def deliver_direct(self, msg: BrokerMessage) -> None:
        self.channel._deliver(self, msg)

    def cancelled_by_broker(self) -> None:
        self.channel._drop_consumer(self, broker=True)
