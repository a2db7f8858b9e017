# -*- test-case-name: txmsg.test.test_amqp_rpc -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.rpc}, on L{txmsg.testing.MemoryBroker}.
"""

from pika.exceptions import ConnectionClosedByBroker
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.rpc import (
    DIRECT_REPLY_TO,
    RPCClient,
    RPCLost,
    RPCServer,
    RPCTimeout,
    RPCUnroutable,
)
from txmsg.testing import MemoryBroker


class RPCClientTests(SynchronousTestCase):
    """Tests for L{RPCClient}."""

    def setUp(self):
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("rpc_queue")
        self.svc = self.broker.connection()
        self.client = RPCClient(self.svc, timeout=10)

    def connect(self):
        conn = self.broker.connect(self.svc)
        return conn, conn.channels[-1]

    def reply(self, request, corr, body):
        """Answer request number C{request} as a server would, to its reply address."""
        self.clock.advance(0)
        address = self.broker.published[request].properties.reply_to
        self.assertTrue(address.startswith(DIRECT_REPLY_TO + "."))
        self.broker.publish("", address, body, correlation_id=corr)
        self.clock.advance(0)

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
        self.reply(1, props2.correlation_id, b"b")
        self.assertNoResult(d1)
        self.assertEqual(self.successResultOf(d2), b"b")
        self.reply(0, props1.correlation_id, b"a")
        self.assertEqual(self.successResultOf(d1), b"a")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unknown_reply_discarded_with_log(self):
        """A reply with an unknown correlation_id is discarded with a log line."""
        conn, ch = self.connect()
        self.client.call("rpc_queue", b"1")
        with capturedLogs() as events:
            self.reply(0, "nobody", b"x")
        self.assertEqual(self.client.discarded, 1)
        self.assertTrue(any("nobody" in repr(e.get("corr")) for e in events))

    def test_timeout_then_late_reply(self):
        """A call times out with L{RPCTimeout}; its late reply is discarded."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1", timeout=2)
        self.clock.advance(2)
        self.failureResultOf(d, RPCTimeout)
        self.reply(0, ch.published[0][3].correlation_id, b"late")
        self.assertEqual(self.client.discarded, 1)

    def test_cancel_cleans_up(self):
        """Cancelling a call forgets it and its timer."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.clock.advance(0)  # the broker's own work (confirm, queue dispatch)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.client._pending, {})

    def test_loss_fails_pending(self):
        """Pending calls fail with L{RPCLost} when the connection is lost."""
        conn, ch = self.connect()
        d = self.client.call("rpc_queue", b"1")
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
        self.failureResultOf(d, RPCLost)
        self.clock.advance(0)  # the broker's own work (confirm, queue dispatch)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_call_while_disconnected_waits(self):
        """A call made while disconnected is sent after the reconnect."""
        d = self.client.call("rpc_queue", b"1")
        conn, ch = self.connect()
        self.assertEqual(len(ch.published), 1)
        self.reply(0, ch.published[0][3].correlation_id, b"ok")
        self.assertEqual(self.successResultOf(d), b"ok")

    def test_unroutable(self):
        """A request nobody can receive fails fast with L{RPCUnroutable}."""
        conn, ch = self.connect()
        d = self.client.call("nobody", b"1")  # no such queue: returned
        self.clock.advance(0)
        self.failureResultOf(d, RPCUnroutable)

    def test_exclusive_reply_queue_recreated(self):
        """Without direct reply-to, an exclusive reply queue is declared on every connection."""
        client = RPCClient(self.svc, direct_reply_to=False)
        names = []
        for _ in range(2):
            conn = self.broker.connect(self.svc)
            names.append(client.reply_to)
            conn.lose(ConnectionClosedByBroker(320, "x"))
        self.assertNotEqual(names[0], names[1])
        self.assertTrue(all(n.startswith("amq.gen-") for n in names))


class RPCServerTests(SynchronousTestCase):
    """Tests for L{RPCServer}."""

    def start_server(self, handler, **kw):
        """An L{RPCServer} on C{rpc_queue} of a broker that withholds confirms."""
        broker = MemoryBroker(Clock())
        broker.declare_queue("rpc_queue")
        broker.hold_confirms()
        svc = broker.connection()
        RPCServer(svc, "rpc_queue", handler, **kw)
        conn = broker.connect(svc)
        [self.consumer_ch] = [c for c in conn.channels if c.consumer_tags]
        [self.pub_ch] = [c for c in conn.channels if c is not self.consumer_ch and c.is_open]
        return broker

    def test_answers_with_correlation_id_then_acks(self):
        """The reply goes to reply_to with the same correlation_id; the request is acked after its confirm."""
        broker = self.start_server(lambda d: int(d.body) * 2)
        broker.declare_queue("replies")
        broker.publish("", "rpc_queue", b"21", reply_to="replies", correlation_id="c-1")
        broker.flush()
        [request] = self.consumer_ch.deliveries
        ((exchange, key, body, props, _),) = self.pub_ch.published
        self.assertEqual(
            (exchange, key, body, props.correlation_id),
            ("", "replies", b"42", "c-1"),
        )
        [answer] = broker.messages("replies")
        self.assertEqual((answer.body, answer.properties.correlation_id), (b"42", "c-1"))
        self.assertEqual(self.consumer_ch.acks, [])
        broker.release_confirm()
        broker.flush()  # acks leave at the end of the turn
        self.assertEqual(self.consumer_ch.acks, [request.method.delivery_tag])

    def test_transactional_reply_with_ack(self):
        """
        On a transactional consumer a reply to a queue is published on the
        consumer's channel and committed with the ack: no confirm to wait
        for, nothing on the publisher's channel.
        """
        broker = self.start_server(lambda d: int(d.body) * 2, transactional=True)
        broker.declare_queue("replies")
        broker.publish("", "rpc_queue", b"21", reply_to="replies", correlation_id="c-1")
        broker.flush()
        [request] = self.consumer_ch.deliveries
        self.assertEqual(
            [name for name, _ in self.consumer_ch.calls][-3:],
            ["basic_publish", "basic_ack", "tx_commit"],
        )
        self.assertEqual(self.pub_ch.published, [])
        [answer] = broker.messages("replies")
        self.assertEqual((answer.body, answer.properties.correlation_id), (b"42", "c-1"))
        self.assertEqual(self.consumer_ch.acks, [request.method.delivery_tag])

    def test_client_gone_drops_request(self):
        """If the reply is returned (client gone), the request is dropped (acked), not requeued."""
        result = Deferred()
        broker = self.start_server(lambda d: result)
        broker.publish("", "rpc_queue", b"1", reply_to="gone", correlation_id="c")
        broker.flush()
        [request] = self.consumer_ch.deliveries
        result.callback(b"r")  # the reply to "gone" is unroutable: returned
        broker.release_confirm()
        broker.flush()
        self.assertEqual(self.consumer_ch.acks, [request.method.delivery_tag])
        self.assertEqual(broker.message_count("rpc_queue"), 0)

    def test_forged_direct_reply_to_dropped(self):
        """
        A request whose C{reply_to} is a direct reply-to name RabbitMQ did
        not generate is acked with one warning; its handler does not run
        and nothing is published (such a publish can close the connection).
        """
        calls = []
        broker = self.start_server(calls.append)
        with capturedLogs() as events:
            broker.publish(
                "", "rpc_queue", b"1", reply_to="amq.rabbitmq.reply-to.abc.def", correlation_id="c"
            )
            broker.flush()
        [request] = self.consumer_ch.deliveries
        self.assertEqual(calls, [])
        self.assertEqual(self.consumer_ch.acks, [request.method.delivery_tag])
        self.assertEqual(self.pub_ch.published, [])
        warnings = [e for e in events if e["log_level"].name == "warn"]
        self.assertEqual(len(warnings), 1)
