# -*- test-case-name: txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
pika's consumer queue and message tuple, declared again for the memory
broker: importing pika's Twisted adapter would install the global reactor.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from twisted.internet.defer import Deferred, DeferredQueue, fail

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
