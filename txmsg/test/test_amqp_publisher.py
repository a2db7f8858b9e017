# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.publisher}.
"""

from pika.exceptions import ConnectionClosedByBroker
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._fakes import FakeConnection, fake_service
from txmsg.amqp.properties import make_properties
from txmsg.amqp.publisher import (
    Publisher,
    PublisherStopped,
    PublishLost,
    PublishNacked,
    PublishReturned,
    PublishTimeout,
)


class PublisherTests(SynchronousTestCase):
    """Tests for L{Publisher} on fake connections."""

    def setUp(self):
        self.clock = Clock()
        self.svc = fake_service(self.clock)
        self.pub = Publisher(self.svc, window=3, timeout=10)

    def connect(self):
        conn = FakeConnection(self.svc).open()
        return conn, conn.channels[-1]

    def test_confirm_fires_publish(self):
        """publish fires only when the broker confirms; properties are persistent with headers."""
        conn, ch = self.connect()
        d = self.pub.publish("ex", "key", "body", headers={"a": 1}, content_type="text/plain")
        self.assertNoResult(d)
        exchange, key, body, props, mandatory = ch.published[0]
        self.assertEqual((exchange, key, body, mandatory), ("ex", "key", b"body", True))
        self.assertEqual(
            (props.delivery_mode, props.headers, props.content_type),
            (2, {"a": 1}, "text/plain"),
        )
        ch.ack()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_confirm_held(self):
        """A publish issued while Confirm.Select is outstanding waits for SelectOk."""
        conn2 = FakeConnection(self.svc)
        conn2.hold_channels = True
        conn2.open()
        d = self.pub.publish("", "q", b"x")
        ch = conn2.pending_channels[0][1]
        ch.hold.add("confirm_delivery")
        conn2.release_channels()
        self.assertEqual([n for n, _ in ch.calls], ["confirm_delivery"])
        self.assertEqual(ch.published, [])
        ch.release()
        self.assertEqual(len(ch.published), 1)
        ch.ack()
        self.successResultOf(d)

    def test_nack(self):
        """A broker nack fails the publish with L{PublishNacked}."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x")
        ch.nack()
        self.failureResultOf(d, PublishNacked)

    def test_returned(self):
        """A returned mandatory message fails with L{PublishReturned} and its reply code."""
        conn, ch = self.connect()
        d = self.pub.publish("", "nowhere", b"x")
        ch.return_message()
        f = self.failureResultOf(d, PublishReturned)
        self.assertEqual(f.value.reply_code, 312)

    def test_timeout_waiting_for_confirm(self):
        """No confirm within the timeout fails with L{PublishTimeout} (stage confirm)."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x", timeout=2)
        self.clock.advance(2)
        self.assertEqual(self.failureResultOf(d, PublishTimeout).value.stage, "confirm")
        self.assertEqual(self.pub.unconfirmed, 1)
        ch.ack()
        self.assertEqual(self.pub.unconfirmed, 0)

    def test_default_deadlines_share_one_timer(self):
        """Publishes with the default timeout share one sweeping timer and expire in order."""
        conn, ch = self.connect()
        d1 = self.pub.publish("", "q", b"1")
        self.clock.advance(4)
        d2 = self.pub.publish("", "q", b"2")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(6)
        self.failureResultOf(d1, PublishTimeout)
        self.assertNoResult(d2)
        ch.ack(2)
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
        ch.ack()
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
        ch.ack(2, multiple=True)
        self.assertEqual(len(ch.published), 5)
        ch.ack(5, multiple=True)
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
        ch.ack(3, multiple=True)
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
        ch.close_by_broker(404, "NOT_FOUND - no exchange")
        self.failureResultOf(d, PublishLost)
        self.assertTrue(conn.channels[-1].is_open)
        d2 = self.pub.publish("", "q", b"y")
        conn.channels[-1].ack()
        self.successResultOf(d2)

    def test_sync_raise_becomes_failure(self):
        """pika raising synchronously (closing channel) becomes a failed Deferred."""
        conn, ch = self.connect()
        ch.is_closing = True
        d = self.pub.publish("", "q", b"x")
        self.failureResultOf(d, PublishLost)

    def test_stop_waits_for_confirms(self):
        """stop() refuses new publishes and fires after outstanding confirms."""
        conn, ch = self.connect()
        d = self.pub.publish("", "q", b"x")
        stopped = self.pub.stop()
        self.assertNoResult(stopped)
        self.failureResultOf(self.pub.publish("", "q", b"y"), PublisherStopped)
        ch.ack()
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
