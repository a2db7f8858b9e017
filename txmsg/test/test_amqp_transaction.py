# -*- test-case-name: txmsg.test.test_amqp_transaction -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._transaction.TransactionBatch}: what settles in one
reactor turn is committed together, nothing is sent while a commit that
published is in flight, nacks go before the acks that could cover them, and
a failed commit drops what it carried.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import Publish
from txmsg.amqp._transaction import TransactionBatch
from txmsg.test._logs import captured_global_logs


class FakeTxChannel:
    """Records what is sent; each commit returns a Deferred the test fires."""

    is_open = True

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.commits: list[Deferred[None]] = []
        self.return_callbacks: list[Any] = []

    def basic_publish(
        self, exchange: str, key: str, body: bytes, props: Any, mandatory: bool
    ) -> None:
        self.sent.append(("publish", key, body, mandatory))

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.sent.append(("ack", delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        self.sent.append(("nack", delivery_tag, requeue))

    def tx_commit(self) -> Deferred[None]:
        self.sent.append(("commit",))
        d: Deferred[None] = Deferred()
        self.commits.append(d)
        return d

    def add_on_return_callback(self, callback: Any) -> None:
        self.return_callbacks.append(callback)


def reply(key: str) -> Publish:
    return Publish("", key, b"r", None)


class TransactionBatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.channel = FakeTxChannel()
        self.returned: list[Any] = []
        self.batch = TransactionBatch(self.channel, self.clock, self.returned.append)
        for tag in (1, 2, 3, 4):
            self.batch.delivered(tag)

    def test_turn_committed_together(self) -> None:
        """
        What settles in one turn is sent at its end: nacks first (a multiple
        ack could otherwise cover them), the published messages (mandatory),
        the acks combined, then one commit.
        """
        self.batch.ack(1, (reply("a"),))
        self.batch.nack(3, requeue=False)
        self.batch.ack(2)
        self.assertEqual(self.channel.sent, [])
        self.clock.advance(0)
        self.assertEqual(
            self.channel.sent,
            [
                ("nack", 3, False),
                ("publish", "a", b"r", True),
                ("ack", 2, True),
                ("commit",),
            ],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_multiple_never_covers_unsettled(self) -> None:
        """
        A delivery still running below an acked one keeps the acks above it
        single.
        """
        self.batch.ack(1)
        self.batch.ack(3)
        self.clock.advance(0)
        self.assertEqual(self.channel.sent, [("ack", 1, False), ("ack", 3, False), ("commit",)])

    def test_publishing_commit_holds_everything(self) -> None:
        """
        While a commit that published is in flight nothing else is sent;
        what settled meanwhile goes in the next commit, once it is answered.
        """
        self.batch.ack(1, (reply("a"),))
        self.clock.advance(0)
        self.batch.ack(2)
        self.batch.nack(3, requeue=True)
        self.clock.advance(0)
        self.assertEqual(
            self.channel.sent, [("publish", "a", b"r", True), ("ack", 1, False), ("commit",)]
        )
        self.assertTrue(self.batch.pending)
        self.channel.commits[0].callback(None)
        self.assertEqual(self.channel.sent[3:], [("nack", 3, True), ("ack", 2, False), ("commit",)])
        self.channel.commits[1].callback(None)
        self.assertFalse(self.batch.pending)
        self.assertEqual(self.batch.commits, 2)

    def test_publishes_wait_for_every_commit(self) -> None:
        """
        A batch that publishes waits until no commit is in flight, even an
        ack-only one.
        """
        self.batch.ack(1)
        self.clock.advance(0)
        self.batch.ack(2, (reply("b"),))
        self.clock.advance(0)
        self.assertEqual(self.channel.sent, [("ack", 1, False), ("commit",)])
        self.channel.commits[0].callback(None)
        self.assertEqual(
            self.channel.sent[2:], [("publish", "b", b"r", True), ("ack", 2, False), ("commit",)]
        )

    def test_ack_only_commits_pipelined(self) -> None:
        """
        Acks alone do not wait for an ack-only commit in flight: they are
        sent and committed at the end of their turn.
        """
        self.batch.ack(1)
        self.clock.advance(0)
        self.batch.ack(2)
        self.clock.advance(0)
        self.assertEqual(
            self.channel.sent, [("ack", 1, False), ("commit",), ("ack", 2, False), ("commit",)]
        )
        d = self.batch.flush()
        self.channel.commits[0].callback(None)
        self.assertNoResult(d)
        self.channel.commits[1].callback(None)
        self.assertIsNone(self.successResultOf(d))

    def test_flush_waits_for_the_commit(self) -> None:
        """
        C{flush} commits at once and fires when nothing is pending any more
        (what a consumer waits for before it closes its channel).
        """
        self.batch.ack(1)
        d = self.batch.flush()
        self.assertEqual(self.channel.sent, [("ack", 1, False), ("commit",)])
        self.assertNoResult(d)
        self.channel.commits[0].callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(self.batch.flush()))
        self.assertEqual(len(self.channel.commits), 1)

    def test_failed_commit_dropped_and_logged(self) -> None:
        """
        A commit that fails (the channel went away) applied nothing: it is
        logged, what waited behind it is dropped (its channel is gone too)
        and waiters are released once no commit is in flight.
        """
        self.batch.ack(1, (reply("a"),))
        self.clock.advance(0)
        self.batch.ack(2)
        d = self.batch.flush()
        self.channel.commits[0].errback(RuntimeError("channel closed"))
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.batch.pending)
        self.assertEqual(
            self.channel.sent, [("publish", "a", b"r", True), ("ack", 1, False), ("commit",)]
        )

    def test_failures_logged_once(self) -> None:
        """
        When the channel goes, every commit in flight fails; one warning
        says so.
        """
        logged = captured_global_logs(self)
        self.batch.ack(1)
        self.clock.advance(0)
        self.batch.ack(2)
        self.clock.advance(0)
        for d in self.channel.commits:
            d.errback(RuntimeError("channel closed"))
        self.assertFalse(self.batch.pending)
        warnings = [e for e in logged if "Committing" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)

    def test_closed_channel_sends_nothing(self) -> None:
        """
        Settlements on a channel that has closed are dropped: the broker
        redelivers those deliveries.
        """
        self.batch.ack(1)
        self.channel.is_open = False
        self.assertIsNone(self.successResultOf(self.batch.flush()))
        self.assertEqual(self.channel.sent, [])

    def test_returns_reach_the_callback(self) -> None:
        """
        The return callback given is registered on the channel.
        """
        self.assertEqual(self.channel.return_callbacks, [self.returned.append])


class HeldWriter:
    """Counts holds; records whether the channel wrote while held."""

    def __init__(self) -> None:
        self.held = 0
        self.holds = 0

    def hold(self) -> None:
        self.held += 1
        self.holds += 1

    def release(self) -> None:
        self.held -= 1


class WriterTests(SynchronousTestCase):
    def test_batch_and_commit_in_one_hold(self) -> None:
        """
        A batch and its commit are written while the connection's writer is
        held, so that they leave in one write.
        """
        clock = Clock()
        writer = HeldWriter()
        channel = FakeTxChannel()
        seen: list[int] = []
        original = channel.tx_commit

        def commit() -> Deferred[None]:
            seen.append(writer.held)
            return original()

        channel.tx_commit = commit  # type: ignore[method-assign]
        batch = TransactionBatch(channel, clock, writer=writer)
        batch.delivered(1)
        batch.ack(1, (reply("a"),))
        clock.advance(0)
        self.assertEqual(seen, [1])
        self.assertEqual((writer.held, writer.holds), (0, 1))
