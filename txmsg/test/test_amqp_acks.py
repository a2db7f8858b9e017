# -*- test-case-name: txmsg.test.test_amqp_acks -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._acks.AckBatch}: acks that settle in one reactor turn
go out together, and a C{multiple} ack never covers an unsettled delivery.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._acks import AckBatch


class FakeChannel:
    is_open = True

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.nacks: list[tuple[int, bool]] = []

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        self.nacks.append((delivery_tag, requeue))


class AckBatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.channel = FakeChannel()
        self.batch = AckBatch(self.channel, self.clock)

    def deliver(self, *tags: int) -> None:
        for tag in tags:
            self.batch.delivered(tag)

    def test_lone_ack_at_end_of_turn(self) -> None:
        """
        A lone ack goes out alone at the end of the turn, and no delayed
        call is left.
        """
        self.deliver(1)
        self.batch.ack(1)
        self.assertEqual(self.channel.acks, [])
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [(1, False)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_turn_acks_combined(self) -> None:
        """
        Acks of one turn go out at its end, as one multiple ack when nothing
        below them is unsettled.
        """
        self.deliver(1, 2, 3)
        self.batch.ack(2)
        self.batch.ack(1)
        self.batch.ack(3)
        self.assertEqual(self.channel.acks, [])
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [(3, True)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_never_covers_unsettled(self) -> None:
        """
        A delivery still running (or left unacked) below an acked one is not
        covered: the acks above it go out one by one.
        """
        self.deliver(1, 2, 3, 4, 5)
        for tag in (1, 2, 4, 5):
            self.batch.ack(tag)
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [(2, True), (4, False), (5, False)])
        self.assertEqual(self.batch.unsettled, {3})

    def test_single_pending_not_multiple(self) -> None:
        """
        One pending ack is a plain ack.
        """
        self.deliver(1, 2)
        self.batch.ack(1)
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [(1, False)])

    def test_nacked_not_unsettled(self) -> None:
        """
        A nack goes out at once, and the nacked delivery does not hold back
        a multiple ack above it (the broker no longer counts it as unacked).
        """
        self.deliver(1, 2, 3)
        self.batch.nack(2, requeue=False)
        self.assertEqual(self.channel.nacks, [(2, False)])
        self.batch.ack(1)
        self.batch.ack(3)
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [(3, True)])

    def test_flush_sends_pending(self) -> None:
        """
        An explicit flush (the consumer's, before it closes the channel)
        sends the pending acks at once and cancels the turn's call.
        """
        self.deliver(1, 2)
        self.batch.ack(1)
        self.batch.ack(2)
        self.assertIsNone(self.successResultOf(self.batch.flush()))
        self.assertEqual(self.channel.acks, [(2, True)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closed_channel_drops(self) -> None:
        """
        Acks pending when the channel closed are dropped: the broker
        redelivers those messages (at-least-once).
        """
        self.deliver(1)
        self.batch.ack(1)
        self.channel.is_open = False
        self.clock.advance(0)
        self.assertEqual(self.channel.acks, [])

    def test_ack_failure_logged(self) -> None:
        """
        An ack that raises is logged, not raised into the reactor.
        """

        def broken(delivery_tag: int, multiple: bool = False) -> None:
            raise RuntimeError("channel gone")

        self.channel.basic_ack = broken  # type: ignore[method-assign]
        self.deliver(1)
        self.batch.ack(1)
        self.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class WriterTests(SynchronousTestCase):
    def test_acks_of_a_turn_in_one_hold(self) -> None:
        """
        The acks of a turn are written while the connection's writer is
        held (one write), and it is released afterwards.
        """
        clock = Clock()
        channel = FakeChannel()
        events: list[str] = []

        class Writer:
            def hold(self) -> None:
                events.append("hold")

            def release(self) -> None:
                events.append("release")

        original = channel.basic_ack

        def ack(delivery_tag: int, multiple: bool = False) -> None:
            events.append("ack")
            original(delivery_tag, multiple)

        channel.basic_ack = ack  # type: ignore[method-assign]
        batch = AckBatch(channel, clock, Writer())
        for tag in (1, 2, 3):
            batch.delivered(tag)
        batch.ack(1)
        batch.ack(3)
        clock.advance(0)
        self.assertEqual(events, ["hold", "ack", "ack", "release"])
