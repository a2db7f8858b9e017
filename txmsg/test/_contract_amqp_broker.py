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
from pika.spec import BasicProperties

from txmsg.amqp import PublishReturned, Queue
from txmsg.amqp.reply import is_direct_reply_to
from txmsg.test._contract_amqp import AMQPContract
from txmsg.test._contract_base import contract

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class AMQPBrokerContract(AMQPContract):
    """Channel errors, broker cancels and direct reply-to names."""

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

    async def direct_reply_to_caller(self, conn: Any) -> tuple[Any, Any, str]:
        """
        A caller consuming on C{amq.rabbitmq.reply-to} on a channel of its
        own: C{(channel, its consumer queue, the generated reply name)}.
        """
        caller = await self.wait(conn.open_channel())
        replies, _tag = await self.wait(caller.basic_consume(DIRECT_REPLY_TO, auto_ack=True))
        requests = await self.declare_queue(conn, self.unique("requests"))
        got: list[Any] = []
        await self.consume(conn, requests, got.append)
        caller.basic_publish(
            "", requests.name, b"request", BasicProperties(reply_to=DIRECT_REPLY_TO)
        )
        await self.eventually(lambda: got)
        name = got[0].reply_to
        self.assertTrue(is_direct_reply_to(name), name)
        return caller, replies, name

    @contract
    async def test_direct_reply_to_name_check(self) -> None:
        """
        A passive declare of a generated direct reply-to name succeeds while
        its caller consumes on C{amq.rabbitmq.reply-to} (and a reply to it
        reaches the caller); once the caller's channel is closed it fails
        with 404 naming it, closing the declaring channel.
        """
        conn = await self.connect()
        caller, replies, name = await self.direct_reply_to_caller(conn)
        checker = await self.wait(conn.open_channel())
        frame = await self.wait(checker.queue_declare(name, passive=True))
        self.assertEqual((frame.method.queue, frame.method.consumer_count), (name, 1))
        await self.wait(conn.publish("", name, b"reply", mandatory=False))
        reply = await self.wait(replies.get())
        self.assertEqual(reply.body, b"reply")
        caller.close()
        await self.wait(caller.on_closed)
        err = await self.failure_of(checker.queue_declare(name, passive=True))
        self.assertIsInstance(err, ChannelClosedByBroker)
        self.assertEqual(
            (err.reply_code, err.reply_text),
            (404, f"NOT_FOUND - no queue '{name}' in vhost '/'"),
        )
        await self.eventually(lambda: checker.is_closed)

    @contract
    async def test_direct_reply_to_mandatory(self) -> None:
        """
        A mandatory publish to a live direct reply-to name reaches the
        caller I{and} comes back as 312 NO_ROUTE (RabbitMQ up to 4.1); to a
        gone caller's name it is just returned.
        """
        conn = await self.connect()
        caller, replies, name = await self.direct_reply_to_caller(conn)
        err = await self.failure_of(conn.publish("", name, b"mandatory"))
        self.assertIsInstance(err, PublishReturned)
        self.assertEqual(err.reply_code, 312)
        reply = await self.wait(replies.get())
        self.assertEqual(reply.body, b"mandatory")
        caller.close()
        await self.wait(caller.on_closed)
        err = await self.failure_of(conn.publish("", name, b"late"))
        self.assertIsInstance(err, PublishReturned)
