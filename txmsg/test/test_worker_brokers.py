# -*- test-case-name: txmsg.test.test_worker_brokers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.brokers}: the AMQP provider of L{IWorkerBroker},
on the in-memory broker.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg.amqp import Outcome
from txmsg.amqp.delay_levels import decode
from txmsg.testing import memory_amqp
from txmsg.worker.brokers import IncomingMessage, IWorkerBroker
from txmsg.worker.brokers.amqp import AMQPWorkerBroker
from txmsg.worker.decisions import Ack, DeadLetter, Delay, Requeue, Retry
from txmsg.worker.headers import ATTEMPT_HEADER, DELIVERY_COUNT_HEADER, REASON_HEADER


class AMQPWorkerBrokerTests(SynchronousTestCase):
    """
    L{AMQPWorkerBroker} declares, consumes and settles on RabbitMQ.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.amqp = memory_amqp(self.clock)
        self.broker = self.amqp.broker
        self.provider = AMQPWorkerBroker(self.amqp, "w1")
        self.provider.declare("work", [1.0], None)
        self.amqp.startService()
        self.clock.advance(0)
        self.seen: list[IncomingMessage] = []
        self.addCleanup(lambda: self.amqp.stopService())

    def test_interface(self) -> None:
        """It provides L{IWorkerBroker}."""
        self.assertTrue(verifyObject(IWorkerBroker, self.provider))

    def test_declare(self) -> None:
        """The work queue comes with its dead-letter queue and the delay levels."""
        self.assertEqual(sorted(self.broker.queue_names("work*")), ["work", "work.dead"])
        self.assertIn("txmsg.delay.24", self.broker.queue_names("txmsg.delay.*"))

    def message(self, headers: dict | None = None) -> IncomingMessage:
        """Consume one message published to C{work} with C{headers}."""
        self.amqp.publish("", "work", b"body", headers=headers or {})
        self.provider.consume("work", self.handle, 1)
        self.clock.advance(0)
        return self.seen[-1]

    def handle(self, message: IncomingMessage) -> Deferred[object]:
        """Record the message; never settle it."""
        self.seen.append(message)
        return Deferred()

    def test_retry_strips_delivery_count(self) -> None:
        """
        A retry waits in the delay levels for its jittered wait (900 ms: 512
        + 256 + 128 ms, in ticks of 100 ms rounded up) with the new attempt
        count; the broker's delivery count of the old copy is not carried
        over, nor its dead-letter history.
        """
        message = self.message(
            {DELIVERY_COUNT_HEADER: 2, "x-app": "kept", "x-death": [{"queue": "txmsg.delay.00"}]}
        )
        d = self.provider.settle(message, Retry(1.0, 3, 900))
        self.clock.advance(0)
        self.assertIs(self.successResultOf(d), Outcome.ACK)
        [copy] = self.broker.messages("txmsg.delay.03")
        self.assertEqual(decode(copy.routing_key), (9, "work"))
        self.assertEqual(copy.headers, {ATTEMPT_HEADER: 3, "x-app": "kept"})
        self.assertIsNone(copy.properties.expiration)
        self.clock.advance(0.89)
        self.assertEqual(self.broker.message_count("work"), 0)
        self.clock.advance(0.01)
        self.assertEqual(self.broker.message_count("work"), 1)

    def test_dead_letter_and_requeue(self) -> None:
        """A dead letter carries its reason; ack and requeue publish nothing."""
        message = self.message()
        d = self.provider.settle(message, DeadLetter("bad-headers", "BadHeaders", "why"))
        self.clock.advance(0)
        self.assertIs(self.successResultOf(d), Outcome.ACK)
        [dead] = self.broker.messages("work.dead")
        self.assertEqual(dead.headers[REASON_HEADER], "bad-headers")
        self.assertIs(self.successResultOf(self.provider.settle(message, Ack())), Outcome.ACK)
        self.assertIs(self.successResultOf(self.provider.settle(message, Requeue())), Outcome.RETRY)

    def test_failed_publish_fails(self) -> None:
        """A retry the broker nacks fails: nothing is acked."""
        message = self.message()
        self.broker.nack_next(1)
        d = self.provider.settle(message, Retry(7.0, 1))
        self.clock.advance(0)
        self.failureResultOf(d)

    def test_retry_any_delay(self) -> None:
        """
        A retry after a delay no policy step named (7.3 s) waits in the
        shared levels and is back in its queue on time, not a tick early.
        """
        message = self.message()
        d = self.provider.settle(message, Retry(7.3, 1))
        self.clock.advance(0)
        self.assertIs(self.successResultOf(d), Outcome.ACK)
        self.clock.advance(7.29)
        self.assertEqual(self.broker.message_count("work"), 0)
        self.clock.advance(0.01)
        self.assertEqual(self.broker.message_count("work"), 1)

    def test_delay(self) -> None:
        """
        A L{Delay} republishes the message unchanged (its attempt count
        too) through the delay levels, then acks it.
        """
        message = self.message({ATTEMPT_HEADER: 2, "x-app": "kept"})
        d = self.provider.settle(message, Delay(2.5, attempts=2))
        self.clock.advance(0)
        self.assertIs(self.successResultOf(d), Outcome.ACK)
        self.clock.advance(2.49)
        self.assertEqual(self.broker.message_count("work"), 0)
        self.clock.advance(0.01)
        [copy] = self.broker.messages("work")
        self.assertEqual((copy.body, copy.headers[ATTEMPT_HEADER]), (b"body", 2))
        self.assertEqual(copy.headers["x-app"], "kept")
