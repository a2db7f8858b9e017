# -*- test-case-name: txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Broker behaviours txmsg's unit tests rely on when they run on the memory
broker: checked here on the memory broker and on RabbitMQ alike (mixed into
the same runners as L{txmsg.test._contract_amqp.AMQPContract}).
"""

from __future__ import annotations

from typing import Any

from pika.exceptions import ChannelClosedByBroker

from txmsg.amqp import Queue
from txmsg.test._contract_amqp import AMQPContract
from txmsg.test._contract_base import contract


class AMQPBrokerContract(AMQPContract):
    """Channel errors and broker cancels."""

    @contract
    async def test_inequivalent_declaration(self) -> None:
        """
        Declaring an existing queue with other properties fails with 406 and
        closes the channel; the declarations after it still succeed.
        """
        conn = await self.connect()
        bad = await self.declare_queue(conn, self.unique("bad"))
        good = self.unique("good")
        self.forget_queue(good)
        failures = await self.wait(
            conn.declare(Queue(bad.name, durable=True), Queue(good, durable=False))
        )
        self.assertEqual(len(failures), 1)
        self.flush_errors(ChannelClosedByBroker)
        channel = await self.wait(conn.open_channel())
        frame = await self.wait(channel.queue_declare(good, passive=True))
        self.assertEqual(frame.method.queue, good)

    @contract
    async def test_deleted_queue_cancels_consumer(self) -> None:
        """
        Deleting a consumed queue cancels its consumer (C{Basic.Cancel});
        the consumer consumes again once the queue is back.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("cancel"))
        got: list[Any] = []
        consumer = await self.consume(conn, q, lambda d: got.append(d.body), retry_delay=0.2)
        channel = await self.wait(conn.open_channel())
        await self.wait(channel.queue_delete(q.name))
        await self.eventually(lambda: not consumer.consuming)
        await self.wait(channel.queue_declare(q.name, durable=False))
        await self.eventually(lambda: consumer.consuming)
        await self.wait(conn.publish("", q.name, b"back"))
        await self.eventually(lambda: got == [b"back"])
        self.flush_errors(ChannelClosedByBroker)
