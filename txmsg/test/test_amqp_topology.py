# -*- test-case-name: txmsg.test.test_amqp_topology -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.topology}, on L{txmsg.testing.MemoryBroker}.
"""

from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.topology import (
    Binding,
    Exchange,
    Queue,
    Topology,
    UnresolvedQueueName,
    queue_arguments,
)
from txmsg.testing import MemoryBroker


class TopologyTests(SynchronousTestCase):
    """Tests for L{Topology} and the declarations."""

    def declare(self, topology):
        self.broker = MemoryBroker()
        conn = self.broker.connect(None)
        failures = self.successResultOf(topology.declare(lambda: conn.channel()))
        self.broker.flush()
        return conn, failures

    def test_idempotent_add(self):
        """Equal declarations are added once; server-named queues are each distinct."""
        t = Topology()
        self.assertEqual(len(t.add(Queue("a"), Queue("a"))), 1)
        self.assertEqual(len(t.add(Queue.server_named(), Queue.server_named())), 2)
        self.assertEqual(t.add(Queue("a")), [])

    def test_binding_adds_parts_first(self):
        """Adding a binding adds its exchange and queue objects before it."""
        ex, q = Exchange("topic_logs", "topic"), Queue("q")
        t = Topology([Binding(q, ex, "kern.*")])
        self.assertEqual(t.declarations[:2], (ex, q))

    def test_declare_arguments(self):
        """Queue arguments (DLX, TTL, max length, quorum) and exchange types reach the channel."""
        args = queue_arguments(
            dead_letter_exchange="dlx",
            message_ttl=1000,
            max_length=10,
            queue_type="quorum",
        )
        t = Topology([Exchange("h", "headers"), Queue("jobs", arguments=args)])
        conn, failures = self.declare(t)
        self.assertEqual(failures, [])
        calls = conn.channels[0].calls
        self.assertEqual(calls[0][1]["exchange_type"], "headers")
        self.assertEqual(
            calls[1][1]["arguments"],
            {
                "x-dead-letter-exchange": "dlx",
                "x-message-ttl": 1000,
                "x-max-length": 10,
                "x-queue-type": "quorum",
            },
        )
        self.assertFalse(conn.channels[0].is_open)
        self.assertEqual(self.broker.exchange_type("h"), "headers")
        self.assertTrue(self.broker.has_queue("jobs"))

    def test_server_named_resolution(self):
        """Server-named queue names are resolved after declaration and forgotten on loss."""
        q = Queue.server_named()
        t = Topology([q])
        self.assertRaises(UnresolvedQueueName, t.queue_name, q)
        self.declare(t)
        self.assertTrue(t.queue_name(q).startswith("amq.gen-"))
        t.forget_server_names()
        self.assertRaises(UnresolvedQueueName, t.queue_name, q)
        self.assertEqual(t.queue_name("plain"), "plain")

    def test_validation(self):
        """Invalid declarations are refused."""
        self.assertRaises(ValueError, Exchange, "")
        self.assertRaises(ValueError, Exchange, "x", "bogus")
        self.assertRaises(
            ValueError, Queue, "q", exclusive=True, arguments={"x-queue-type": "quorum"}
        )
        self.assertRaises(TypeError, Topology().add, "not a declaration")

    def test_no_channel_errbacks(self):
        """declare fails when no channel can be opened at all."""
        t = Topology([Queue("q")])
        conn = MemoryBroker().connect(None)
        conn.lose(ConnectionLost())
        d = t.declare(lambda: succeed(None).addCallback(lambda _: conn.channel()))
        self.failureResultOf(d)
