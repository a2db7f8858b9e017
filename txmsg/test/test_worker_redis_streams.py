# -*- test-case-name: txmsg.test.test_worker_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.brokers.redis_streams} on the in-memory Redis and
a Clock, and for how C{--broker redis://} wires the worker.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg.redis import streams
from txmsg.redis.streams import GROUP, StreamKeys
from txmsg.tap.worker import Options
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis
from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker
from txmsg.worker.brokers.redis_streams import ACKED, LEFT, RedisStreamsBroker
from txmsg.worker.decisions import Ack, DeliveryFacts, Requeue, admit
from txmsg.worker.headers import read_headers
from txmsg.worker.service import WorkerService
from txmsg.worker.tasks import TaskCatalog


class BrokerTests(SynchronousTestCase):
    """
    The broker and its consumer on the in-memory Redis (whose scripts need
    the testing extra's Lua).
    """

    skip = missing("lupa", extra="testing")
    #: the broker's max_priority (a subclass runs these tests with levels)
    max_priority: int | None = None

    def setUp(self) -> None:
        self.clock = Clock()
        self.memory = MemoryRedis(self.clock)
        self.broker = RedisStreamsBroker(
            "redis://unused",
            "me",
            reactor=self.clock,
            visibility_timeout=3.0,
            block=0.5,
            max_priority=self.max_priority,
            connect=lambda command_timeout=5.0: self.memory.connection(),
        )
        self.keys = StreamKeys("q")
        self.broker.declare("q", [1.0], None)
        self.broker.startService()
        self.addCleanup(self.stop)
        self.h = self.memory.handler()
        self.seen: list[IncomingMessage] = []

    def stop(self) -> None:
        d = self.broker.stopService()
        self.clock.advance(1)
        self.successResultOf(d)

    def handle(self, message: IncomingMessage) -> Any:
        self.seen.append(message)
        return self.broker.settle(message, Ack())

    def add(self, body: bytes, headers: Any = None) -> None:
        fields = streams.encode_entry(body, headers)
        self.successResultOf(self.h.execute_command("XADD", self.keys.stream, "*", *fields))

    def test_provides_interface(self) -> None:
        """
        The broker provides L{IWorkerBroker}.
        """
        self.assertTrue(verifyObject(IWorkerBroker, self.broker))

    def test_first_delivery_counted_zero(self) -> None:
        """
        A first delivery carries C{x-delivery-count: 0}, is not redelivered,
        and is acked and deleted once settled.
        """
        consumer = self.broker.consume("q", self.handle, 5)
        self.clock.advance(0)
        self.assertTrue(consumer.consuming)
        self.add(b"one", {"a": 1})
        self.clock.advance(0)
        [message] = self.seen
        self.assertEqual(message.headers, {"a": 1, "x-delivery-count": 0})
        self.assertFalse(message.redelivered)
        self.assertEqual(consumer.acked, 1)
        self.assertEqual(self.successResultOf(self.h.execute_command("XLEN", self.keys.stream)), 0)

    def test_dead_consumer_claimed_with_count(self) -> None:
        """
        An entry another consumer took and never settled is claimed after
        the visibility timeout, with C{x-delivery-count: 1}: the delivery
        cap of a task with no retries dead-letters it (C{delivery-limit}).
        """
        self.successResultOf(streams.ensure_group(self.h, self.keys.stream))
        self.add(b"poison")
        message = self.claimed_from_dead_consumer(self.keys.stream)
        self.assertTrue(message.redelivered)
        headers = read_headers(message.headers)
        self.assertEqual(headers.delivery_count, 1)
        facts = DeliveryFacts("q", attempts=headers.delivery_count or 0, counted=True)
        self.assertEqual(admit(facts, 0).reason, "delivery-limit")

    def claimed_from_dead_consumer(self, stream: str) -> IncomingMessage:
        """
        Have consumer C{dead} read the one entry of C{stream}, then start a
        consumer: the entry it gets after the visibility timeout.
        """
        self.successResultOf(
            self.h.execute_command("XREADGROUP", "GROUP", GROUP, "dead", "STREAMS", stream, ">")
        )
        self.broker.consume("q", self.handle, 5)
        self.clock.advance(0)
        self.assertEqual(self.seen, [])
        for _ in range(8):
            self.clock.advance(0.5)
        [message] = self.seen
        return message

    def test_counted_requeue_left_pending_when_redis_fails(self) -> None:
        """
        A counted requeue that cannot be written leaves the entry pending
        (another worker claims it later) instead of failing.
        """
        message = IncomingMessage(
            b"x", "q", {}, handle=streams.decode_entry("1-0", [b"body", b"x"])
        )
        self.memory.fail_commands(ConnectionError("down"))
        self.assertEqual(self.successResultOf(self.broker.settle(message, Requeue())), LEFT)

    def test_stop_hands_back_late_reads(self) -> None:
        """
        Stopping waits for the blocked read; what it brings is handed back.
        """
        given_back: list[IncomingMessage] = []

        def give_back(message: IncomingMessage) -> Any:
            given_back.append(message)
            return succeed(ACKED)

        consumer = self.broker.consume("q", self.handle, 5, give_back)
        self.clock.advance(0)
        stopped = consumer.stop()
        self.add(b"late")
        self.clock.advance(1)
        self.successResultOf(stopped)
        self.assertEqual([m.body for m in given_back], [b"late"])
        self.assertEqual(self.seen, [])


class WiringTests(SynchronousTestCase):
    """
    C{--broker redis://...} and C{broker_url=}.
    """

    def test_service_on_redis(self) -> None:
        """
        A Redis broker URL makes a worker without AMQP whose control
        channel is the same Redis.
        """
        worker = WorkerService(
            TaskCatalog(), broker_url="redis://127.0.0.1:6379/0", reactor=Clock()
        )
        self.assertIsInstance(worker.broker, RedisStreamsBroker)
        self.assertIsNone(worker.amqp)
        self.assertIsNotNone(worker.redis)
        self.assertEqual(worker.pipeline.source, "redis-streams")

    def test_option(self) -> None:
        """
        C{--broker} takes a Redis URL (and passes an AMQP one to C{--amqp});
        a bad one is one usage line.
        """
        saved = {k: os.environ.pop(k, None) for k in ("TXMSG_AMQP_URL", "TXMSG_REDIS_URL")}
        self.addCleanup(lambda: os.environ.update({k: v for k, v in saved.items() if v}))
        options = Options()
        options.parseOptions(
            ["--tasks", "txmsg.test._worker_tasks_sample", "--broker", "redis://h:1/0"]
        )
        self.assertEqual(options["broker"], "redis://h:1/0")
        self.assertEqual(options["visibility-timeout"], 30.0)
        options = Options()
        options.parseOptions(
            ["--tasks", "txmsg.test._worker_tasks_sample", "--broker", "amqp://h/"]
        )
        self.assertEqual((options["broker"], options["amqp"]), (None, "amqp://h/"))
        e = self.assertRaises(
            UsageError, Options().parseOptions, ["--broker", "redis://:secret@h:notaport/0"]
        )
        self.assertIn("--broker", str(e))
        self.assertNotIn("secret", str(e))
