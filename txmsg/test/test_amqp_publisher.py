# -*- test-case-name: txmsg.test.test_amqp_publisher -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.publisher}, on L{txmsg.testing.MemoryBroker}.
"""

from pika.exceptions import ConnectionClosedByBroker
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.properties import make_properties
from txmsg.amqp.publisher import (
    Publisher,
    PublisherStopped,
    PublishLost,
    PublishNacked,
    PublishReturned,
    PublishTimeout,
)
from txmsg.testing import MemoryBroker


class PublisherTests(SynchronousTestCase):
    """Tests for L{Publisher} on memory broker connections (confirms withheld)."""

    def setUp(self):
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("q")
        self.broker.hold_confirms()
        self.svc = self.broker.connection()
        self.pub = Publisher(self.svc, window=3, timeout=10)

    def connect(self):
        conn = self.broker.connect(self.svc)
        return conn, conn.channels[-1]

    def test_confirm_fires_publish(self):
        """publish fires only when the broker confirms; properties are persistent with headers."""
        self.broker.declare_exchange("ex")
        self.broker.bind("q", "ex", "key")
        conn, ch = self.connect()
        d = self.pub.publish("ex", "key", "body", headers={"a": 1}, content_type="text/plain")
        self.assertNoResult(d)
        exchange, key, body, props, mandatory = ch.published[0]
        self.assertEqual((exchange, key, body, mandatory), ("ex", "key", b"body", True))
        self.assertEqual(
            (props.delivery_mode, props.headers, props.content_type),
            (2, {"a": 1}, "text/plain"),
        )
        self.broker.release_confirm()
        self.assertIsNone(self.successResultOf(d))
        self.clock.advance(0)  # the broker's own work (queue dispatch)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual([m.body for m in self.broker.messages("q")], [b"body"])

    def test_confirm_held(self):
        """A publish issued while Confirm.Select is outstanding waits for SelectOk."""
        self.broker.hold_replies("Channel.Open", "Confirm.Select")
        conn2 = self.broker.connect(self.svc)
        d = self.pub.publish("", "q", b"x")
        [ch] = conn2.channels
        self.broker.release_replies("Channel.Open")
        self.assertEqual([n for n, _ in ch.calls], ["confirm_delivery"])
        self.assertEqual(ch.published, [])
        self.broker.release_replies()
        self.assertEqual(len(ch.published), 1)
        self.broker.release_confirm()
        self.successResultOf(d)

    def test_nack(self):
        """A broker nack fails the publish with L{PublishNacked}."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x")
        self.broker.release_confirm(nack=True)
        self.failureResultOf(d, PublishNacked)

    def test_returned(self):
        """A returned mandatory message fails with L{PublishReturned} and its reply code."""
        conn, ch = self.connect()
        d = self.pub.publish("", "nowhere", b"x")  # no such queue: unroutable
        self.broker.release_confirm()
        f = self.failureResultOf(d, PublishReturned)
        self.assertEqual(f.value.reply_code, 312)

    def test_timeout_waiting_for_confirm(self):
        """No confirm within the timeout fails with L{PublishTimeout} (stage confirm)."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x", timeout=2)
        self.clock.advance(2)
        self.assertEqual(self.failureResultOf(d, PublishTimeout).value.stage, "confirm")
        self.assertEqual(self.pub.unconfirmed, 1)
        self.broker.release_confirm()
        self.assertEqual(self.pub.unconfirmed, 0)

    def test_default_deadlines_share_one_timer(self):
        """Publishes with the default timeout share one sweeping timer and expire in order."""
        conn, ch = self.connect()
        d1 = self.pub.publish("", "q", b"1")
        self.clock.advance(4)
        d2 = self.pub.publish("", "q", b"2")
        self.clock.advance(0)  # the broker's own work (queue dispatch)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(6)
        self.failureResultOf(d1, PublishTimeout)
        self.assertNoResult(d2)
        self.broker.release_confirm(2)
        self.successResultOf(d2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connection_loss(self):
        """Unconfirmed publishes fail with L{PublishLost} carrying the close reason."""
        conn, ch = self.connect()
        d1 = self.pub.publish("", "q", b"1")
        d2 = self.pub.publish("", "q", b"2")
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
        for d in (d1, d2):
            f = self.failureResultOf(d, PublishLost)
            self.assertEqual(f.value.reason.reply_code, 320)
        self.assertEqual(self.pub.unconfirmed, 0)

    def test_waits_for_reconnect(self):
        """Publishing while disconnected waits for the reconnect, then publishes."""
        d = self.pub.publish("", "q", b"x")
        self.clock.advance(5)
        self.assertNoResult(d)
        conn, ch = self.connect()
        self.assertEqual(len(ch.published), 1)
        self.broker.release_confirm()
        self.successResultOf(d)

    def test_disconnected_timeout(self):
        """Publishing while disconnected fails with L{PublishTimeout} (stage connect)."""
        d = self.pub.publish("", "q", b"x", timeout=3)
        self.clock.advance(3)
        self.assertEqual(self.failureResultOf(d, PublishTimeout).value.stage, "connect")
        conn, ch = self.connect()
        self.assertEqual(ch.published, [])
        self.assertEqual(self.pub.unconfirmed, 0)

    def test_window_bounds_unconfirmed(self):
        """At most C{window} publishes are unconfirmed; the next waits for a confirm."""
        conn, ch = self.connect()
        ds = [self.pub.publish("", "q", str(i)) for i in range(5)]
        self.assertEqual(len(ch.published), 3)
        self.broker.release_confirm(2, multiple=True)
        self.assertEqual(len(ch.published), 5)
        self.broker.release_confirm(5, multiple=True)
        for d in ds:
            self.successResultOf(d)

    def test_window_timeout(self):
        """A publish stuck behind a full window times out with stage window and leaves no slot."""
        conn, ch = self.connect()
        for _ in range(3):
            self.pub.publish("", "q", b"x", timeout=None)
        d = self.pub.publish("", "q", b"late", timeout=1)
        self.clock.advance(1)
        self.assertEqual(self.failureResultOf(d, PublishTimeout).value.stage, "window")
        self.broker.release_confirm(3, multiple=True)
        self.assertEqual(len(ch.published), 3)
        self.assertEqual(self.pub.unconfirmed, 0)

    def test_cancel(self):
        """Cancelling a waiting publish releases everything."""
        d = self.pub.publish("", "q", b"x")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        conn, ch = self.connect()
        self.assertEqual(ch.published, [])

    def test_channel_error_reopens(self):
        """A channel error fails its publishes; the next publish goes on a new channel."""
        conn, ch = self.connect()
        d = self.pub.publish("missing-exchange", "k", b"x")
        self.clock.advance(0)  # the broker closes the channel: 404 NOT_FOUND
        self.assertEqual(self.failureResultOf(d, PublishLost).value.reason.reply_code, 404)
        self.assertTrue(conn.channels[-1].is_open)
        d2 = self.pub.publish("", "q", b"y")
        self.broker.release_confirm()
        self.successResultOf(d2)

    def test_sync_raise_becomes_failure(self):
        """pika raising synchronously (closing channel) becomes a failed Deferred."""
        conn, ch = self.connect()
        publish = ch.basic_publish

        def closing(*args):
            # The channel starts closing just before the publish: pika raises.
            ch.close()
            return publish(*args)

        self.patch(ch, "basic_publish", closing)
        d = self.pub.publish("", "q", b"x")
        self.failureResultOf(d, PublishLost)

    def test_stop_waits_for_confirms(self):
        """stop() refuses new publishes and fires after outstanding confirms."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x")
        stopped = self.pub.stop()
        self.assertNoResult(stopped)
        self.failureResultOf(self.pub.publish("", "q", b"y"), PublisherStopped)
        self.broker.release_confirm()
        self.successResultOf(d)
        self.successResultOf(stopped)

    def test_no_confirms_mode(self):
        """With confirms off, publish fires once the frame is written."""
        pub = Publisher(self.svc, confirms=False)
        conn, _ = self.connect()
        ch = [c for c in conn.channels if not any(n == "confirm_delivery" for n, _ in c.calls)][0]
        self.successResultOf(pub.publish("", "q", b"x"))
        self.assertEqual(len(ch.published), 1)

    def test_make_properties(self):
        """make_properties keeps given properties, adds persistence and extra fields."""
        p = make_properties(correlation_id="c1", reply_to="r", persistent=False)
        self.assertEqual((p.correlation_id, p.reply_to, p.delivery_mode), ("c1", "r", None))
        self.assertRaises(TypeError, make_properties, bogus=1)
