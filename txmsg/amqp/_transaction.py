# -*- test-case-name: txmsg.test.test_amqp_transaction,txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The settlements of a transactional consumer channel, committed together
(L{TransactionBatch}).

On a channel in AMQP transaction mode (C{tx.select}) the broker applies
publishes, acks and nacks only when the client commits (C{tx.commit}), and
it answers C{tx.commit-ok} once they are done: the messages published are
enqueued (written to disk first, for persistent ones) and the acks applied.
So a reply published with the ack of its request on the consumer's channel
needs one round trip to the broker, where a confirmed publish on another
channel followed by the ack needs two: at prefetch 1 that is the whole time
a task takes.

The rules, which L{TransactionBatch} keeps:

  - What settles in one reactor turn is sent, then committed, at the end of
    it (C{callLater(0)}), in one write: the nacks, then the messages
    published with acks, then the acks, combined into C{multiple} ones as
    L{txmsg.amqp._acks.AckBatch} does (never over a nacked tag).
  - Nothing is sent while a commit that published messages is in flight,
    and a batch that publishes waits until no commit is in flight: RabbitMQ
    answers such a commit only once the queues have taken the messages,
    and (3.10, measured) left it unanswered for good when more publishes
    reached the channel before that answer.  Acks and nacks alone are
    committed at the end of each turn even while earlier ack-only commits
    are in flight (pika sends each commit once the previous one is
    answered; RabbitMQ answers an ack-only commit as it reads it): holding
    them back cost up to a fifth of the worker's rate without replies.
  - A commit that fails (the channel or connection went away) applied
    nothing: the broker redelivers those deliveries, as it does any unacked
    delivery, and the messages that were to go with them were not sent.
  - Messages published with an ack are mandatory; one the broker returns
    (no queue by that name) is passed to C{on_return}.

RabbitMQ's transactions are atomic within one queue only: a reply and the
ack of its request are committed together, but a broker crash in the middle
of the commit can apply one and not the other (a non-persistent reply would
be lost in that crash anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._waiters import Waiters
from txmsg.amqp._acks import send_acks
from txmsg.amqp._protocol import one_write
from txmsg.amqp.delivery import Publish

__all__ = ["TransactionBatch"]


class TransactionBatch:
    """
    Settlements of one transactional channel, committed once per reactor
    turn (see the module docstring for when a commit waits for another).

    @ivar unsettled: tags delivered and neither acked nor nacked yet.
    @ivar commits: commits that succeeded.
    """

    log = Logger(namespace="txmsg.amqp.consumer.Consumer")

    def __init__(
        self,
        channel: Any,
        clock: IReactorTime,
        on_return: Callable[[Any], None] | None = None,
        writer: Any = None,
    ) -> None:
        """
        @param channel: a pika C{TwistedChannel} already in transaction mode.
        @param on_return: called with each returned message (pika's
            C{ReceivedMessage}) of those published with an ack.
        @param writer: the connection's
            L{txmsg.amqp._protocol.CoalescingWriter}, held while a batch and
            its commit are written so that they leave in one write.
        """
        self.channel = channel
        self.clock = clock
        self.writer = writer
        self.unsettled: set[int] = set()
        self.commits = 0
        #: (tag, publishes) to ack, in the order they settled.
        self._acks: list[tuple[int, Sequence[Publish]]] = []
        #: (tag, requeue) to nack.
        self._nacks: list[tuple[int, bool]] = []
        self._call: IDelayedCall | None = None
        #: Commits sent and not answered yet.
        self._in_flight = 0
        #: Whether one of them published (then nothing else is sent).
        self._holding = False
        #: Whether the settlements waiting to be sent publish.
        self._publishing = False
        #: Commits that failed (only the first is logged).
        self._failures = 0
        self._idle: Waiters[None] = Waiters(clock)
        if on_return is not None:
            channel.add_on_return_callback(on_return)

    def delivered(self, tag: int) -> None:
        """
        Delivery C{tag} arrived: no C{multiple} ack may cover it until it is
        settled.
        """
        self.unsettled.add(tag)

    def ack(self, tag: int, publishes: Sequence[Publish] = ()) -> None:
        """
        Ack delivery C{tag}, after publishing C{publishes}, in the next
        commit.
        """
        self.unsettled.discard(tag)
        self._acks.append((tag, publishes))
        if publishes:
            self._publishing = True
        self._schedule()

    def nack(self, tag: int, requeue: bool) -> None:
        """
        Nack delivery C{tag} (requeued or not) in the next commit.
        """
        self.unsettled.discard(tag)
        self._nacks.append((tag, requeue))
        self._schedule()

    def _can_send(self) -> bool:
        # Nothing while a commit that published is in flight; a batch that
        # publishes waits until no commit is in flight at all.
        return not self._holding and not (self._publishing and self._in_flight)

    def _schedule(self) -> None:
        if self._call is None and self._can_send():
            self._call = self.clock.callLater(0, self.flush)

    @property
    def pending(self) -> bool:
        """Whether settlements wait to be sent or a commit is in flight."""
        return bool(self._in_flight or self._acks or self._nacks)

    def flush(self) -> Deferred[None]:
        """
        Send what has settled and commit it now, unless the rules above
        make it wait for a commit in flight (then it goes when that one is
        answered).

        @return: a Deferred firing once nothing is pending any more
            (committed, or dropped with a dead channel: the broker
            redelivers those deliveries).
        """
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        if (self._acks or self._nacks) and self._can_send():
            self._commit()
        return succeed(None) if not self.pending else self._idle.wait()

    def _commit(self) -> None:
        acks, self._acks = self._acks, []
        nacks, self._nacks = self._nacks, []
        publishes, self._publishing = self._publishing, False
        channel = self.channel
        if not channel.is_open:
            self._settled()
            return
        try:
            with one_write(self.writer):
                self._send(acks, nacks)
                d = channel.tx_commit()
        except Exception:
            self.log.failure(
                "Settling {n} deliveries failed; the broker will redeliver them",
                n=len(acks) + len(nacks),
            )
            self._settled()
            return
        self._in_flight += 1
        self._holding = publishes
        d.addCallbacks(
            self._committed,
            self._failed,
            callbackArgs=(publishes,),
            errbackArgs=(publishes, len(acks) + len(nacks)),
        )

    def _send(
        self, acks: list[tuple[int, Sequence[Publish]]], nacks: list[tuple[int, bool]]
    ) -> None:
        channel = self.channel
        # Nacks first: a multiple ack below would otherwise cover their tags.
        for tag, requeue in nacks:
            channel.basic_nack(tag, requeue=requeue)
        tags = []
        for tag, publishes in acks:
            tags.append(tag)
            for p in publishes:
                channel.basic_publish(p.exchange, p.routing_key, p.body, p.properties, True)
        send_acks(channel, tags, self.unsettled)

    def _committed(self, _: Any, published: bool) -> None:
        self._in_flight -= 1
        self.commits += 1
        if published:
            self._holding = False
        if (self._acks or self._nacks) and self._can_send():
            self._commit()
        elif not self.pending:
            self._idle.fire(None)

    def _failed(self, failure: Failure, published: bool, n: int) -> None:
        self._in_flight -= 1
        if published:
            self._holding = False
        if not self._failures:  # the others in flight fail for the same reason
            self.log.warn(
                "Committing {n} settlements failed ({error}); the broker will redeliver "
                "those deliveries",
                n=n,
                error=failure.getErrorMessage() or type(failure.value).__name__,
            )
        self._failures += 1
        # What settled since goes nowhere either: the channel is gone.
        self._acks, self._nacks, self._publishing = [], [], False
        self._settled()

    def _settled(self) -> None:
        if not self.pending:
            self._idle.fire(None)
