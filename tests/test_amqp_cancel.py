# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test against the real RabbitMQ: a consumer stopped while the
broker is still delivering rejects nothing.

Between C{basic.cancel} and C{cancel-ok} the broker may still send up to the
prefetch window; pika's channel rejects those deliveries on its own, and
they come back marked C{redelivered} (which a worker counts as a run).  The
consumer takes them instead (L{txmsg.amqp._cancel}): with C{give_back}, they
are handed back to it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests._amqp_support import SHARED_URL, blocking, cleanup, require_broker, unique
from txmsg.amqp import AMQPConnection, Delivery

MESSAGES = 2000
ROUNDS = 3


class StopUnderLoadTests(TestCase):
    """
    C{Consumer.stop()} with C{give_back} at prefetch 100, handlers running.
    """

    timeout = 120

    def setUp(self) -> None:
        require_broker()
        self.queue = unique("txmsg-cancel-window")
        self.addCleanup(cleanup, [self.queue])

    def fill(self) -> None:
        conn = blocking()
        try:
            ch = conn.channel()
            ch.queue_declare(self.queue, durable=True)
            for n in range(MESSAGES):
                ch.basic_publish("", self.queue, str(n).encode())
        finally:
            conn.close()

    def left_in_queue(self) -> tuple[int, int]:
        """
        (messages left, how many of them are marked redelivered), emptying
        the queue.
        """
        conn = blocking()
        try:
            ch = conn.channel()
            left = redelivered = 0
            while True:
                method, _, _ = ch.basic_get(self.queue, auto_ack=True)
                if method is None:
                    return left, redelivered
                left += 1
                redelivered += bool(method.redelivered)
        finally:
            conn.close()

    async def stop_while_delivering(self) -> dict[str, Any]:
        conn = AMQPConnection(SHARED_URL, reactor=reactor, connection_name=unique("txmsg-cancel"))
        conn.startService()
        seen = {"handled": 0, "given back": 0}

        def handle(delivery: Delivery) -> Any:
            seen["handled"] += 1
            # Slow enough that deliveries are in flight when the stop comes.
            return deferLater(reactor, 0.01, lambda: None)

        def give_back(delivery: Delivery) -> None:
            seen["given back"] += 1

        try:
            consumer = conn.consume(self.queue, handle, prefetch=100, give_back=give_back)
            await consumer.when_consuming(10)
            await deferLater(reactor, 0.1, lambda: None)
            await consumer.stop()
        finally:
            await conn.stopService()
        return seen

    async def test_nothing_rejected(self) -> None:
        """
        Each round: 2,000 messages, a consumer at prefetch 100 whose
        handlers take 10 ms, stopped after 0.1 s.  Every message is either
        handled (acked), given back (acked: the give-back handler returned)
        or still in the queue, and none in the queue is marked redelivered.
        Before the fix, every round left some redelivered (up to the window).
        """
        for _ in range(ROUNDS):
            self.fill()
            seen = await self.stop_while_delivering()
            left, redelivered = self.left_in_queue()
            self.assertEqual(seen["handled"] + seen["given back"] + left, MESSAGES, seen)
            self.assertEqual(redelivered, 0, "{} of {} left redelivered".format(redelivered, left))
