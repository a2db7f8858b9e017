# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.connection}, on L{txmsg.testing.MemoryBroker}.
"""

import pika
from OpenSSL.SSL import Error as SSLError
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.connection import (
    AMQPConnection,
    AMQPConnectionFailed,
    NotConnectedError,
    ServiceStopped,
    describe_reason,
    reason_preserving_protocol,
)
from txmsg.amqp.topology import Binding, Exchange, Queue
from txmsg.testing import MemoryBroker, RecordingEvents

URL = "amqp://guest:secret@broker.example:5672/%2F"


def _ssl_error(reason):
    return SSLError([("SSL routines", "", reason)])


class _Participant:
    def __init__(self, log, name, order=0):
        self.log, self.name, self.stop_order = log, name, order

    def _attach(self, conn):
        self.log.append(("attach", self.name, conn))

    def _detach(self, reason):
        self.log.append(("detach", self.name, reason))

    def stop(self):
        self.log.append(("stop", self.name))


class AMQPConnectionTests(SynchronousTestCase):
    """Tests for L{AMQPConnection} driven by L{MemoryBroker.connect}."""

    def setUp(self):
        self.clock = Clock()
        self.events = RecordingEvents()
        self.broker = MemoryBroker(self.clock)
        self.svc = self.broker.connection(url=URL, events=self.events, connection_name="t1")

    def test_connected_event_and_ready(self):
        """A ready connection emits C{amqp.connected} (no password) and fires when_ready."""
        d = self.svc.when_ready()
        self.assertNoResult(d)
        conn = self.broker.connect(self.svc)
        self.assertIs(self.successResultOf(d), conn)
        (payload,) = self.events.named("amqp.connected")
        self.assertEqual(payload["host"], "broker.example")
        self.assertEqual(payload["connection_name"], "t1")
        self.assertNotIn("secret", repr(self.events.events))

    def test_lost_event_carries_real_reason(self):
        """C{amqp.lost} carries the close reason's type, code and text."""
        conn = self.broker.connect(self.svc)
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED - maintenance"))
        (payload,) = self.events.named("amqp.lost")
        self.assertEqual(payload["reply_code"], 320)
        self.assertIn("ConnectionClosedByBroker", payload["reason_type"])
        self.assertIsNone(self.svc.connection)

    def test_when_ready_timeout(self):
        """when_ready fails with L{NotConnectedError} after its timeout, leaving no timer."""
        d = self.svc.when_ready(timeout=5)
        self.clock.advance(5)
        self.failureResultOf(d, NotConnectedError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tls_failure_fails_waiters(self):
        """
        An attempt lost to a TLS verification failure fails the pending
        when_ready calls on the next turn with one line naming the cause
        and the CA option (password redacted), logged once while it
        repeats.
        """
        with capturedLogs() as events:
            d = self.svc.when_ready(timeout=30)
            self.svc._protocol_failed(object(), _ssl_error("certificate verify failed"))
            self.assertNoResult(d)
            self.clock.advance(0)
            message = str(self.failureResultOf(d, AMQPConnectionFailed).value)
            self.assertTrue(
                message.startswith(
                    "TLS certificate verification failed for amqp://guest:***@broker.example:5672/"
                ),
                message,
            )
            self.assertIn("ssl_options={'ca_certs': '/path/to/ca.pem'}", message)
            d2 = self.svc.when_ready(timeout=30)
            self.svc._protocol_failed(object(), _ssl_error("certificate verify failed"))
            self.clock.advance(0)
        self.assertEqual(str(self.failureResultOf(d2, NotConnectedError).value), message)
        errors = [formatEvent(e) for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(errors, ["AMQP connection failed: " + message])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_other_attempt_failure_waits(self):
        """
        An attempt lost for a reason that is not a TLS failure leaves
        when_ready waiting (the service retries).
        """
        d = self.svc.when_ready()
        self.svc._protocol_failed(object(), ConnectionLost())
        self.clock.advance(0)
        self.assertNoResult(d)

    def test_when_ready_timer_cancelled_on_connect(self):
        """A when_ready timer is cancelled when the connection becomes ready."""
        d = self.svc.when_ready(timeout=5)
        self.broker.connect(self.svc)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_topology_replayed_on_every_connection(self):
        """Exchanges, queues and bindings are declared again after a reconnect."""
        ex = Exchange("logs", "fanout")
        q = Queue.server_named()
        self.svc.declare(Binding(q, ex))
        for _ in range(2):
            conn = self.broker.connect(self.svc)
            names = [name for ch in conn.channels for name, _ in ch.calls]
            self.assertEqual(names[:3], ["exchange_declare", "queue_declare", "queue_bind"])
            bind = [kw for ch in conn.channels for n, kw in ch.calls if n == "queue_bind"][0]
            self.assertEqual(bind["queue"], self.svc.topology.queue_name(q))
            self.assertTrue(bind["queue"].startswith("amq.gen-"))
            self.assertEqual(self.broker.queue_names("amq.gen-*"), [bind["queue"]])
            conn.lose(ConnectionLost())
            self.assertEqual(self.broker.queue_names("amq.gen-*"), [])

    def test_server_named_queue_gets_new_name(self):
        """A server-named queue's new name after a reconnect reaches its bindings."""
        q = Queue.server_named()
        self.svc.declare(Binding(q, "amq.fanout"))
        conn = self.broker.connect(self.svc)
        first = self.svc.topology.queue_name(q)
        conn.lose(ConnectionLost())
        conn = self.broker.connect(self.svc)
        second = self.svc.topology.queue_name(q)
        self.assertNotEqual(first, second)
        binds = [kw["queue"] for ch in conn.channels for n, kw in ch.calls if n == "queue_bind"]
        self.assertEqual(binds, [second])

    def test_declare_failure_does_not_stop_others(self):
        """A refused declaration is reported; later ones are declared on a new channel."""
        self.broker.declare_queue("bad", durable=False)  # inequivalent: 406
        self.svc.declare(Queue("bad"), Queue("good"))
        conn = self.broker.connect(self.svc)
        self.clock.advance(0)  # the channel error arrives
        declared = [
            kw["queue"] for ch in conn.channels for n, kw in ch.calls if n == "queue_declare"
        ]
        self.assertEqual(declared, ["bad", "good"])
        self.assertTrue(self.broker.has_queue("good"))
        self.assertEqual(len(self.events.named("amqp.topology_failed")), 1)
        self.assertIsNotNone(self.svc.connection)
        self.assertEqual(len(self.flushLoggedErrors(ChannelClosedByBroker)), 1)

    def test_participants_attach_after_topology(self):
        """Participants attach after the topology is declared, and detach on loss."""
        log = []
        self.svc.declare(Queue("q"))
        self.svc.add_participant(_Participant(log, "p"))
        self.broker.hold_replies("Channel.Open")
        conn = self.broker.connect(self.svc)
        self.assertEqual(log, [])
        self.broker.release_replies()
        self.assertEqual(log, [("attach", "p", conn)])
        conn.lose(ConnectionLost())
        self.assertEqual(log[-1][:2], ("detach", "p"))

    def test_participant_added_while_ready_attaches_now(self):
        """A participant added to a ready connection attaches at once."""
        conn = self.broker.connect(self.svc)
        log = []
        self.svc.add_participant(_Participant(log, "late"))
        self.assertEqual(log, [("attach", "late", conn)])

    def test_stop_order(self):
        """stopService stops participants by stop_order, then closes the connection."""
        log = []
        self.svc.add_participant(_Participant(log, "publisher", 2))
        self.svc.add_participant(_Participant(log, "consumer", 0))
        conn = self.broker.connect(self.svc)
        self.broker.hold_replies("Connection.Close")
        d = self.svc.stopService()
        self.assertEqual(
            [e for e in log if e[0] == "stop"],
            [("stop", "consumer"), ("stop", "publisher")],
        )
        self.assertEqual(conn.close_calls, 1)
        self.assertNoResult(d)
        conn.lose(ConnectionDone())
        self.successResultOf(d)

    def test_stop_close_timeout(self):
        """If the broker never answers the close, stopService still finishes after close_timeout."""
        conn = self.broker.connect(self.svc)
        self.broker.hold_replies("Connection.Close")
        d = self.svc.stopService()
        self.assertNoResult(d)
        self.assertEqual(conn.close_calls, 1)
        self.clock.advance(10)
        self.successResultOf(d)

    def test_stop_bounded_by_participant_grace(self):
        """
        A participant whose stop() never fires holds stopService for its
        C{grace} plus the close timeout only; then the service stops anyway.
        """

        class Stuck:
            grace = 5.0
            stop_order = 0

            def _attach(self, conn):
                return None

            def _detach(self, reason):
                pass

            def stop(self):
                return Deferred()

        self.svc.add_participant(Stuck())
        d = self.svc.stopService()
        self.clock.advance(14.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.successResultOf(d)

    def test_when_ready_cancel_and_timeout(self):
        """
        when_ready can be cancelled, and fails with NotConnectedError (naming
        the redacted URL) after its timeout.
        """
        cancelled = self.svc.when_ready()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        timed = self.svc.when_ready(timeout=3)
        self.clock.advance(3)
        failure = self.failureResultOf(timed, NotConnectedError)
        self.assertIn("within 3s", str(failure.value))

    def test_stop_fails_waiters(self):
        """Waiters fail with L{ServiceStopped}, and later calls fail at once."""
        d = self.svc.when_ready()
        self.svc.stopService()
        self.failureResultOf(d, ServiceStopped)
        self.failureResultOf(self.svc.when_ready(), ServiceStopped)

    def test_open_channel_not_connected(self):
        """open_channel fails (does not raise) when there is no connection."""
        self.failureResultOf(self.svc.open_channel(), NotConnectedError)

    def test_blocked_events(self):
        """Connection.Blocked / Unblocked become amqp.blocked / amqp.unblocked events."""
        self.broker.connect(self.svc)
        self.broker.block_connections("low on memory")
        self.broker.unblock_connections()
        self.assertEqual(self.events.named("amqp.blocked")[0]["reason"], "low on memory")
        self.assertEqual(len(self.events.named("amqp.unblocked")), 1)

    def test_describe_reason(self):
        """describe_reason gives plain fields for pika and Twisted reasons."""
        info = describe_reason(Failure(ConnectionClosedByBroker(320, "forced")))
        self.assertEqual((info["reply_code"], info["reply_text"]), (320, "forced"))
        self.assertIsNone(describe_reason(ConnectionDone())["reply_code"])


class ClientServiceWiringTests(SynchronousTestCase):
    """Tests for the L{ClientService} wiring and the reason-preserving protocol."""

    def test_connects_through_endpoint(self):
        """Starting the service connects to the endpoint with a reason-preserving protocol."""
        reactor = MemoryReactorClock()
        svc = AMQPConnection(
            "amqp://guest:guest@127.0.0.1:5672/%2F",
            reactor=reactor,
            endpoint=TCP4ClientEndpoint(reactor, "127.0.0.1", 5672),
            connection_name="wired",
        )
        svc.startService()
        host, port, factory = reactor.tcpClients[0][:3]
        self.assertEqual((host, port), ("127.0.0.1", 5672))
        proto = factory.buildProtocol(None)._wrappedProtocol._protocol
        self.assertIsInstance(proto, reason_preserving_protocol())
        self.assertIs(proto.owner, svc)
        self.assertEqual(proto._impl.params.client_properties["connection_name"], "wired")
        svc.stopService()

    def test_lost_before_ready_retries_with_backoff(self):
        """
        A connection lost before pika's connection opened (a failed TLS
        handshake, a refused login) makes ClientService retry, without an
        automat NoTransition error, and each such attempt backs off further.
        """
        reactor = MemoryReactorClock()
        svc = AMQPConnection(
            "amqps://guest:guest@127.0.0.1:5671/%2F",
            reactor=reactor,
            endpoint=TCP4ClientEndpoint(reactor, "127.0.0.1", 5671),
            retry_policy=float,
        )
        svc.startService()
        d = svc.when_ready()
        for attempt in (1, 2, 3):
            self.assertEqual(len(reactor.tcpClients), attempt)
            wrapper = reactor.tcpClients[-1][2].buildProtocol(None)
            wrapper.makeConnection(StringTransport())
            wrapper.connectionLost(Failure(_ssl_error("certificate verify failed")))
            reactor.advance(attempt - 0.01)
            self.assertEqual(len(reactor.tcpClients), attempt)
            reactor.advance(0.01)
        self.assertEqual(len(reactor.tcpClients), 4)
        self.assertIn("TLS certificate verification failed", str(self.failureResultOf(d).value))
        self.successResultOf(svc.stopService())

    def test_reason_preserved(self):
        """A ConnectionDone after a broker close is reported as the broker's reason."""
        lost = []

        class Owner:
            def _protocol_failed(self, conn, error):
                pass

            def _protocol_lost(self, conn, reason):
                lost.append(reason)

        proto = reason_preserving_protocol()(pika.ConnectionParameters(), custom_reactor=Clock())
        proto.owner = Owner()
        proto.makeConnection(StringTransport())
        proto.ready = None  # as after the handshake
        proto._impl._error = ConnectionClosedByBroker(320, "CONNECTION_FORCED")
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertIsInstance(lost[0].value, ConnectionClosedByBroker)
        self.assertEqual(lost[0].value.reply_code, 320)
