# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.rpc}.
"""

from pika import spec
from pika.exceptions import ConnectionClosedByBroker
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._fakes import FakeConnection, fake_service
from txmsg.amqp.rpc import (
    DIRECT_REPLY_TO,
    RPCClient,
    RPCLost,
    RPCServer,
    RPCTimeout,
    RPCUnroutable,
)

GOOD = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAADdQAAAABrDlUS.3auFiRutTy+ox75kdhWHkQ=="


def reply(ch, corr, body):
    ch.deliver(body, properties=spec.BasicProperties(correlation_id=corr))


class RPCClientTests(SynchronousTestCase):
    """Tests for L{RPCClient}."""

    def setUp(self):
        self.clock = Clock()
        self.svc = fake_service(self.clock)
        self.client = RPCClient(self.svc, timeout=10)

    def connect(self):
        conn = FakeConnection(self.svc).open()
        return conn, conn.channels[-1]

    def test_direct_reply_to_setup(self):
        """The client consumes amq.rabbitmq.reply-to (auto-ack) and enables confirms before publishing."""
        conn, ch = self.connect()
        names = [n for n, _ in ch.calls]
        self.assertEqual(names, ["basic_consume", "confirm_delivery"])
        self.assertEqual(ch.calls[0][1]["queue"], DIRECT_REPLY_TO)
        self.assertTrue(ch.calls[0][1]["auto_ack"])

    def test_call_correlates(self):
        """call publishes reply_to and correlation_id and fires with the matching reply only."""
        conn, ch = self.connect()
        d1 = self.client.call("rpc_queue", "30")
        d2 = self.client.call("rpc_queue", "31")
        _, key, body, props1, mandatory = ch.published[0]
        props2 = ch.published[1][3]
        self.assertEqual(
            (key, body, mandatory, props1.reply_to),
            ("rpc_queue", b"30", True, DIRECT_REPLY_TO),
        )
        reply(ch, props2.correlation_id, b"b")
        self.assertNoResult(d1)
        self.assertEqual(self.successResultOf(d2), b"b")
        reply(ch, props1.correlation_id, b"a")
        self.assertEqual(self.successResultOf(d1), b"a")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unknown_reply_discarded_with_log(self):
        """A reply with an unknown correlation_id is discarded with a log line."""
        conn, ch = self.connect()
        with capturedLogs() as events:
            reply(ch, "nobody", b"x")
        self.assertEqual(self.client.discarded, 1)
        self.assertTrue(any("nobody" in repr(e.get("corr")) for e in events))

    def test_timeout_then_late_reply(self):
        """A call times out with L{RPCTimeout}; its late reply is discarded."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1", timeout=2)
        self.clock.advance(2)
        self.failureResultOf(d, RPCTimeout)
        reply(ch, ch.published[0][3].correlation_id, b"late")
        self.assertEqual(self.client.discarded, 1)

    def test_cancel_cleans_up(self):
        """Cancelling a call forgets it and its timer."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.client._pending, {})

    def test_loss_fails_pending(self):
        """Pending calls fail with L{RPCLost} when the connection is lost."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1")
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
        self.failureResultOf(d, RPCLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_call_while_disconnected_waits(self):
        """A call made while disconnected is sent after the reconnect."""
        d = self.client.call("rpc_queue", b"1")
        conn, ch = self.connect()
        self.assertEqual(len(ch.published), 1)
        reply(ch, ch.published[0][3].correlation_id, b"ok")
        self.assertEqual(self.successResultOf(d), b"ok")

    def test_unroutable(self):
        """A request nobody can receive fails fast with L{RPCUnroutable}."""
        conn, ch = self.connect()
        d = self.client.call("nobody", b"1")
        ch.return_message()
        self.failureResultOf(d, RPCUnroutable)

    def test_exclusive_reply_queue_recreated(self):
        """Without direct reply-to, an exclusive reply queue is declared on every connection."""
        client = RPCClient(self.svc, direct_reply_to=False)
        names = []
        for _ in range(2):
            conn = FakeConnection(self.svc).open()
            names.append(client.reply_to)
            conn.lose(ConnectionClosedByBroker(320, "x"))
        self.assertNotEqual(names[0], names[1])
        self.assertTrue(all(n.startswith("amq.gen-") for n in names))


class RPCServerTests(SynchronousTestCase):
    """Tests for L{RPCServer}."""

    def test_answers_with_correlation_id_then_acks(self):
        """The reply goes to reply_to with the same correlation_id; the request is acked after its confirm."""
        svc = fake_service(Clock())
        RPCServer(svc, "rpc_queue", lambda d: int(d.body) * 2)
        conn = FakeConnection(svc).open()
        consumer_ch = [c for c in conn.channels if c.consumers][0]
        pub_ch = [c for c in conn.channels if c is not consumer_ch and c.is_open][0]
        tag = consumer_ch.deliver(
            b"21",
            properties=spec.BasicProperties(reply_to=GOOD, correlation_id="c-1"),
        )
        ((exchange, key, body, props, _),) = pub_ch.published
        self.assertEqual(
            (exchange, key, body, props.correlation_id),
            ("", GOOD, b"42", "c-1"),
        )
        self.assertEqual(consumer_ch.acks, [])
        pub_ch.ack()
        self.assertEqual(consumer_ch.acks, [tag])

    def test_client_gone_drops_request(self):
        """If the reply is returned (client gone), the request is dropped (acked), not requeued."""
        svc = fake_service(Clock())
        result = Deferred()
        RPCServer(svc, "rpc_queue", lambda d: result)
        conn = FakeConnection(svc).open()
        consumer_ch = [c for c in conn.channels if c.consumers][0]
        pub_ch = [c for c in conn.channels if c is not consumer_ch and c.is_open][0]
        tag = consumer_ch.deliver(
            b"1", properties=spec.BasicProperties(reply_to="gone", correlation_id="c")
        )
        result.callback(b"r")
        pub_ch.return_message()
        self.assertEqual(consumer_ch.acks, [tag])

    def test_forged_direct_reply_to_dropped(self):
        """
        A request whose C{reply_to} is a direct reply-to name RabbitMQ did
        not generate is acked with one warning; its handler does not run
        and nothing is published (such a publish can close the connection).
        """
        svc = fake_service(Clock())
        calls = []
        RPCServer(svc, "rpc_queue", calls.append)
        conn = FakeConnection(svc).open()
        consumer_ch = [c for c in conn.channels if c.consumers][0]
        with capturedLogs() as events:
            tag = consumer_ch.deliver(
                b"1",
                properties=spec.BasicProperties(
                    reply_to="amq.rabbitmq.reply-to.abc.def", correlation_id="c"
                ),
            )
        self.assertEqual(calls, [])
        self.assertEqual(consumer_ch.acks, [tag])
        self.assertEqual([c.published for c in conn.channels if c.published], [])
        warnings = [e for e in events if e["log_level"].name == "warn"]
        self.assertEqual(len(warnings), 1)
