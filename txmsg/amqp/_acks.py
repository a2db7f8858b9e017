# -*- test-case-name: txmsg.test.test_amqp_acks,txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The acks of one consumer channel, sent together (L{AckBatch}).

The acks of the deliveries that settle in one reactor turn go out at the end
of it: one C{basic_ack(tag, multiple=True)} for the longest run of settled
tags below every unsettled one, single acks for the rest.  C{multiple=True}
acks every unacked delivery up to C{tag} on the channel, so it is only ever
sent when no delivery at or below C{tag} is still unsettled (running, or
left for the broker to requeue).

"The end of the turn" is a C{callLater(0)}: it runs as soon as the reactor
has finished handling what it read, before it waits for the network again,
so an ack is never later on the wire than one sent at once would be (at
prefetch 1 it leaves in the same write as before), while the deliveries of
one read, run there and then, are acked with one frame.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from txmsg.amqp._protocol import one_write

__all__ = ["AckBatch", "send_acks"]


def send_acks(channel: Any, tags: list[int], unsettled: set[int]) -> None:
    """
    Ack C{tags} on C{channel}: one C{basic_ack(multiple=True)} for those
    below every tag in C{unsettled}, single acks for the rest.
    """
    tags.sort()
    floor = min(unsettled, default=None)
    covered = len(tags) if floor is None else bisect_left(tags, floor)
    if covered:
        channel.basic_ack(tags[covered - 1], multiple=covered > 1)
    for tag in tags[covered:]:
        channel.basic_ack(tag)


class AckBatch:
    """
    Unsettled and to-be-acked delivery tags of one channel.

    @ivar unsettled: tags delivered and neither acked nor nacked yet.
    """

    log = Logger(namespace="txmsg.amqp.consumer.Consumer")

    __slots__ = ("channel", "clock", "writer", "unsettled", "_pending", "_call")

    def __init__(self, channel: Any, clock: IReactorTime, writer: Any = None) -> None:
        """
        @param writer: the connection's
            L{txmsg.amqp._protocol.CoalescingWriter}, held while the acks of
            a turn are written so that they leave in one write.
        """
        self.channel = channel
        self.clock = clock
        self.writer = writer
        self.unsettled: set[int] = set()
        self._pending: list[int] = []
        self._call: IDelayedCall | None = None

    def delivered(self, tag: int) -> None:
        """
        Delivery C{tag} arrived: no C{multiple} ack may cover it until it is
        settled.
        """
        self.unsettled.add(tag)

    def nack(self, tag: int, requeue: bool) -> None:
        """
        Nack delivery C{tag} (requeued or not) now.
        """
        self.unsettled.discard(tag)
        self.channel.basic_nack(tag, requeue=requeue)

    def ack(self, tag: int) -> None:
        """
        Ack delivery C{tag} at the end of this reactor turn, with the others
        settled in it.
        """
        self.unsettled.discard(tag)
        self._pending.append(tag)
        if self._call is None:
            self._call = self.clock.callLater(0, self._flush)

    def flush(self) -> Deferred[None]:
        """
        Send the pending acks (dropped if the channel is gone: the broker
        redelivers those messages).

        @return: a Deferred that has fired (the interface of
            L{txmsg.amqp._transaction.TransactionBatch.flush}).
        """
        self._flush()
        return succeed(None)

    def _flush(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        tags, self._pending = self._pending, []
        if not tags or not self.channel.is_open:
            return
        try:
            with one_write(self.writer):
                send_acks(self.channel, tags, self.unsettled)
        except Exception:
            self.log.failure("Acking deliveries {tags} failed", tags=tags)
