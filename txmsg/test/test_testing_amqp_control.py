# -*- test-case-name: txmsg.test.test_testing_amqp_control -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the control API of L{txmsg.testing.MemoryBroker}
(L{txmsg.testing._amqp_control}).
"""

from __future__ import annotations

from typing import Any

from pika.exceptions import ChannelClosedByBroker, NackError
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import MemoryBroker


class _Owner:
    """Records what an L{txmsg.amqp.AMQPConnection} would be told."""

    def __init__(self) -> None:
        self.ready: list[Any] = []
        self.lost: list[Any] = []

    def _protocol_ready(self, conn: Any) -> None:
        self.ready.append(conn)

    def _protocol_lost(self, conn: Any, reason: Any) -> None:
        self.lost.append(reason)


class BrokerControlTests(SynchronousTestCase):
    """Withheld replies and confirms, connection control and the channel record."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("q")
        self.owner = _Owner()
        self.conn = self.broker.connect(self.owner)

    def channel(self) -> Any:
        return self.successResultOf(self.conn.channel())

    def test_connect_is_ready_at_once(self) -> None:
        """C{connect} tells the owner at once and leaves no timer behind."""
        self.assertEqual(self.owner.ready, [self.conn])
        self.assertTrue(self.conn.is_open)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lose(self) -> None:
        """C{lose} closes every channel with the reason and requeues unacked deliveries."""
        ch = self.channel()
        self.successResultOf(ch.basic_consume("q"))
        self.broker.publish("", "q", b"x")
        self.clock.advance(0)
        self.assertEqual(self.broker.unacked_count("q"), 1)
        self.conn.lose(ConnectionLost())
        self.assertTrue(ch.is_closed)
        self.assertIsInstance(self.owner.lost[0].value, ConnectionLost)
        self.assertEqual([m.redelivered for m in self.broker.messages("q")], [True])

    def test_hold_replies(self) -> None:
        """A held method takes effect at once; its reply waits for the release."""
        ch = self.channel()
        self.broker.hold_replies("Queue.Declare")
        d = ch.queue_declare("new")
        self.assertNoResult(d)
        self.assertTrue(self.broker.has_queue("new"))
        self.broker.release_replies()
        self.assertEqual(self.successResultOf(d).method.queue, "new")
        self.assertEqual(ch.calls[0][0], "queue_declare")
        self.assertRaises(ValueError, self.broker.hold_replies, "Queue.Bogus")

    def test_held_reply_fails_on_close(self) -> None:
        """A held reply fails with the reason when its channel closes first."""
        ch = self.channel()
        self.broker.hold_replies("Basic.Qos")
        d = ch.basic_qos(prefetch_count=1)
        ch.basic_ack(99)  # an unknown delivery tag: 406, the channel closes
        self.clock.advance(0)
        self.assertEqual(self.failureResultOf(d, ChannelClosedByBroker).value.reply_code, 406)
        self.broker.release_replies()

    def test_release_confirm(self) -> None:
        """Withheld confirms are released one by one, C{multiple}, or as nacks."""
        ch = self.channel()
        self.successResultOf(ch.confirm_delivery())
        self.broker.hold_confirms()
        ds = [ch.basic_publish("", "q", b"%d" % i) for i in range(4)]
        self.assertEqual(self.broker.unconfirmed(ch), [1, 2, 3, 4])
        self.broker.release_confirm(2)
        self.assertNoResult(ds[0])
        self.assertEqual(self.successResultOf(ds[1]).delivery_tag, 2)
        self.broker.release_confirm(3, multiple=True)
        self.assertTrue(self.successResultOf(ds[0]).multiple)
        self.broker.release_confirm(nack=True)
        self.failureResultOf(ds[3], NackError)
        self.assertRaises(ValueError, self.broker.release_confirm)
        self.assertEqual(len(ch.published), 4)

    def test_block_connections(self) -> None:
        """Blocked / unblocked callbacks get pika's C{Connection.Blocked} frames."""
        seen: list[Any] = []
        self.conn._impl.add_on_connection_blocked_callback(
            lambda c, frame: seen.append(frame.method.reason)
        )
        self.conn._impl.add_on_connection_unblocked_callback(lambda c, frame: seen.append("ok"))
        self.broker.block_connections("low on disk")
        self.broker.unblock_connections()
        self.assertEqual(seen, ["low on disk", "ok"])
