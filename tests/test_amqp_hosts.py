# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Several brokers per connection, against the shared RabbitMQ: a node that
refuses is skipped.  (The full failover proof on a 3-node cluster is in
tests_cluster/, run by `make test-cluster`.)
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests._amqp_support import SHARED_URL, cleanup, free_port, require_broker, unique
from txmsg.amqp import AMQPConnection
from txmsg.amqp.topology import Queue


class HostListTests(TestCase):
    """An URL list whose first node is down."""

    async def test_first_node_down(self) -> None:
        """The connection uses the next node; publishes are confirmed there."""
        require_broker()
        dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
        conn = AMQPConnection(f"{dead},{SHARED_URL}", connection_name="txmsg-test-hosts")
        conn.startService()
        self.addCleanup(conn.stopService)
        await conn.when_ready(20)
        self.assertEqual(conn.address.port, 5672)
        queue = unique("txmsg-test-hosts")
        self.addCleanup(cleanup, [queue])
        await conn.declare(Queue(queue, durable=False, auto_delete=False))
        await conn.publish("", queue, b"x")
