# -*- test-case-name: txmsg.test.test_worker_transaction_choice -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
When a worker's RabbitMQ consumer should be transactional: L{TransactionChoice}.

On a transactional channel a reply to an ordinary queue goes out in one
commit with the ack of its task: one round trip instead of a confirmed
publish followed by the ack.  But every ack then needs a commit, which costs
when tasks have nothing to publish, or reply to RabbitMQ's direct reply-to
(which the transaction does not carry).  So the worker watches what its
tasks need and moves its consumer (L{txmsg.amqp.Consumer.set_transactional})
when the mix changes.  This module is the decision only: pure, no I/O.
"""

from __future__ import annotations

__all__ = ["TransactionChoice"]


class TransactionChoice:
    """
    Counts, in windows of C{window} deliveries, those that want a reply to
    an ordinary queue.  At the end of a window: a share of at least C{on}
    makes the consumer transactional, a share of at most C{off} makes it
    plain again, and anything between keeps it as it is (so a mix near one
    threshold does not make it move back and forth).

    @ivar transactional: the mode chosen so far.
    @ivar share: the share of the last complete window.
    """

    __slots__ = ("transactional", "share", "window", "on", "off", "_seen", "_replies")

    def __init__(
        self, transactional: bool = False, window: int = 100, on: float = 0.5, off: float = 0.1
    ) -> None:
        """
        @param transactional: the mode to start in.
        @param window: deliveries per decision.
        @param on: the share of queue replies from which to be transactional.
        @param off: the share of queue replies up to which to be plain.
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        if not 0.0 <= off < on <= 1.0:
            raise ValueError("need 0 <= off < on <= 1")
        self.transactional = transactional
        self.share = 0.0
        self.window = window
        self.on = on
        self.off = off
        self._seen = 0
        self._replies = 0

    def observe(self, queue_reply: bool) -> bool | None:
        """
        Count one delivery.

        @param queue_reply: whether it wants a reply to an ordinary queue.
        @return: the mode to move to, when this delivery completes a window
            that calls for a move; else L{None}.
        """
        self._seen += 1
        if queue_reply:
            self._replies += 1
        if self._seen < self.window:
            return None
        self.share = self._replies / self._seen
        self._seen = self._replies = 0
        if self.share >= self.on and not self.transactional:
            self.transactional = True
            return True
        if self.share <= self.off and self.transactional:
            self.transactional = False
            return False
        return None
