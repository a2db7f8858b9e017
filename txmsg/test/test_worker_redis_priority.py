# -*- test-case-name: txmsg.test.test_worker_redis_priority -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for priorities on the Redis Streams broker (one stream per level)
and for L{txmsg.worker.TaskClient} sending to it, on the in-memory Redis.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis import streams
from txmsg.redis.streams import GROUP, StreamKeys
from txmsg.test import test_worker_redis_streams as single
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis
from txmsg.worker._client_redis import add_task, is_redis_url
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.brokers.redis_streams import RedisStreamsBroker
from txmsg.worker.client import TaskClient
from txmsg.worker.decisions import Ack, Delay
from txmsg.worker.envelope import Task, decode_task
from txmsg.worker.handles import NoResultStore
from txmsg.worker.headers import read_headers
from txmsg.worker.tasks import TaskCatalog


class _Sender:
    """A stand-in for a client's Redis connection: the in-memory one."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler


class PriorityTests(single.BrokerTests):
    """
    A broker with C{max_priority=3}: streams per level, read highest first
    (and every single-stream test of L{single.BrokerTests} passes with levels).
    """

    max_priority = 3

    def setUp(self) -> None:
        super().setUp()
        self.decide: Any = Ack()

    def handle(self, message: IncomingMessage) -> Any:
        self.seen.append(message)
        return self.broker.settle(message, self.decide)

    def send(self, name: str, priority: int | None = None, eta: float | None = None) -> None:
        task = Task(name, (), {}, name, eta)
        self.successResultOf(add_task(self.h, "q", task, self.clock.seconds(), priority))

    def names(self) -> list[str]:
        return [decode_task(m.body).name for m in self.seen]

    def test_levels(self) -> None:
        """
        Level 0 is the queue's stream; level k is C{<stream>:p<k>}, all in
        the queue's hash tag; levels are listed highest first.
        """
        self.assertEqual(self.keys.level(0), "txmsg:{q}:stream")
        self.assertEqual(self.keys.level(2), "txmsg:{q}:stream:p2")
        self.assertEqual(self.keys.levels(2), [self.keys.level(k) for k in (2, 1, 0)])
        self.assertEqual(self.keys.levels(None), ["txmsg:{q}:stream"])
        self.assertRaises(
            ValueError, RedisStreamsBroker, "redis://x", "w", max_priority=256, reactor=self.clock
        )

    def test_strict_order_at_prefetch_one(self) -> None:
        """
        With a backlog on every level, a consumer at prefetch 1 runs the
        highest level first, a level's entries in order; priorities above
        the maximum count as the maximum.
        """
        consumer = self.broker.consume("q", self.handle, 1)
        self.clock.advance(0)
        self.assertTrue(consumer.consuming)
        self.assertEqual(self.successResultOf(self.h.get(self.keys.max_priority)), "3")
        release: Deferred[None] = Deferred()
        handle = self.handle

        def busy_first(message: IncomingMessage) -> Any:
            if not self.seen:  # the first task holds the only slot
                self.seen.append(message)
                return release.addCallback(lambda _: self.broker.settle(message, Ack()))
            return handle(message)

        consumer.handler = busy_first
        self.send("busy")
        self.clock.advance(0)
        for name, priority in [("a0", None), ("b1", 1), ("c9", 9), ("d0", 0), ("e3", 3)]:
            self.send(name, priority)
        self.clock.advance(0.1)
        self.assertEqual(self.names(), ["busy"])
        release.callback(None)
        for _ in range(10):
            self.clock.advance(0.1)
        self.assertEqual(self.names(), ["busy", "c9", "e3", "b1", "a0", "d0"])
        self.assertEqual(consumer.acked, 6)
        for stream in self.keys.levels(3):
            self.assertEqual(self.successResultOf(self.h.execute_command("XLEN", stream)), 0)

    def test_blocked_read_wakes_on_any_level(self) -> None:
        """
        An idle consumer blocked on every level gets what arrives on any.
        """
        self.broker.consume("q", self.handle, 4)
        self.clock.advance(0)
        self.send("late", 2)
        self.clock.advance(0)
        self.assertEqual(self.names(), ["late"])
        self.assertEqual(self.seen[0].handle.stream, self.keys.level(2))

    def test_claim_on_level_stream(self) -> None:
        """
        An entry a dead consumer read from a level stream is claimed after
        the visibility timeout with its delivery count.
        """
        for stream in self.keys.levels(3):
            self.successResultOf(streams.ensure_group(self.h, stream))
        self.successResultOf(self.h.set(self.keys.max_priority, 3))
        self.send("poison", 2)
        message = self.claimed_from_dead_consumer(self.keys.level(2))
        self.assertEqual(read_headers(message.headers).delivery_count, 1)
        self.assertEqual(message.handle.stream, self.keys.level(2))
        pending = self.successResultOf(
            self.h.execute_command("XPENDING", self.keys.level(2), GROUP)
        )
        self.assertEqual(pending[0], 0)

    def test_delayed_copy_keeps_level(self) -> None:
        """
        An entry sent back later (a retry, an early ETA) waits in the delay
        set and returns to its own level's stream.
        """
        self.broker.consume("q", self.handle, 5)
        self.clock.advance(0)
        self.decide = Delay(5.0)
        self.send("x", 2)
        self.clock.advance(0)
        self.decide = Ack()
        self.assertEqual(self.successResultOf(self.h.zcard(self.keys.delay_due)), 1)
        for _ in range(7):
            self.clock.advance(1)
        self.assertEqual(self.names(), ["x", "x"])
        self.assertEqual(self.seen[1].handle.stream, self.keys.level(2))
        self.assertEqual(self.seen[1].handle.priority, "2")

    def test_send_with_eta_waits(self) -> None:
        """
        A task whose ETA is ahead goes to the delay set and reaches its
        level when due, not before.
        """
        self.broker.consume("q", self.handle, 5)
        self.clock.advance(0)
        self.send("soon", 1, eta=self.clock.seconds() + 3)
        self.clock.advance(2.5)
        self.assertEqual(self.seen, [])
        for _ in range(10):
            self.clock.advance(0.25)
        self.assertEqual(self.names(), ["soon"])
        self.assertEqual(self.seen[0].handle.stream, self.keys.level(1))

    def test_no_priorities_level_zero(self) -> None:
        """
        Without a max-priority key (no worker reads levels), a priority
        send goes to the queue's one stream.
        """
        self.send("p", 7)
        self.assertEqual(self.successResultOf(self.h.execute_command("XLEN", self.keys.stream)), 1)


class ClientTests(SynchronousTestCase):
    """
    L{TaskClient} with a Redis URL.
    """

    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.memory = MemoryRedis(self.clock)
        self.h = self.memory.handler()
        self.client = TaskClient(url="redis://127.0.0.1:1/0", queue="q", reactor=self.clock)
        self.assertIsNone(self.client.amqp)
        self.assertIsNotNone(self.client.redis)
        self.client.redis = _Sender(self.h)  # type: ignore[assignment]
        self.keys = StreamKeys("q")

    def entries(self) -> list[streams.StreamEntry]:
        reply = self.successResultOf(self.h.execute_command("XRANGE", self.keys.stream, "-", "+"))
        return [streams.decode_entry(i, f) for i, f in reply]

    def test_urls(self) -> None:
        """
        Redis URLs are told from AMQP ones by their scheme.
        """
        self.assertTrue(is_redis_url("redis://h"))
        self.assertTrue(is_redis_url("rediss://h"))
        self.assertTrue(is_redis_url("unix:///tmp/r.sock"))
        self.assertFalse(is_redis_url("amqp://h"))
        self.assertFalse(is_redis_url(None))

    def test_send_now(self) -> None:
        """
        C{send} adds the task's envelope to the queue's stream.
        """
        ref = self.successResultOf(self.client.send("add", (2, 3), priority=4))
        [entry] = self.entries()
        self.assertEqual(entry.message_id, ref.id)
        self.assertEqual(entry.priority, "4")
        self.assertEqual(json.loads(entry.body)["task"], "add")

    def test_countdown_in_delay_set(self) -> None:
        """
        C{send(countdown=)} and C{submit(countdown=)} schedule the task in
        the delay set at its ETA.
        """
        ref = self.successResultOf(self.client.send("add", (1, 2), countdown=10))
        task_id = self.successResultOf(self.client.submit("add", (1, 2), countdown=20))
        self.assertEqual(self.entries(), [])
        due = self.successResultOf(
            self.h.execute_command("ZRANGE", self.keys.delay_due, 0, -1, "WITHSCORES")
        )
        self.assertEqual([float(s) for s in due[1::2]], [1010.0, 1020.0])
        items = self.successResultOf(self.h.execute_command("HGETALL", self.keys.delay_items))
        values = " ".join(str(v) for v in items)
        self.assertIn(ref.id, values)
        self.assertIn(task_id, values)

    def test_handles(self) -> None:
        """
        Task handles bound to a Redis client send with their options:
        C{add.s(...).send(priority=)} to the stream, C{countdown=} to the
        delay set.
        """
        tasks = TaskCatalog()

        @tasks.task
        def add(a: int, b: int) -> int:
            return a + b

        tasks.bind(self.client)
        self.addCleanup(tasks.bind, None)
        ref = self.successResultOf(add.s(2, 3).send(priority=2))
        self.successResultOf(add.s(1, 1).send(countdown=5))
        [entry] = self.entries()
        self.assertEqual((entry.message_id, entry.priority), (ref.id, "2"))
        self.assertEqual(self.successResultOf(self.h.zcard(self.keys.delay_due)), 1)

    def test_call_needs_results(self) -> None:
        """
        C{call} on Redis waits through the results store: without one it
        fails at once, naming the option.
        """
        error = self.assertRaises(NoResultStore, self.client.call, "add", (1, 2))
        self.assertIn("results", str(error))

    def test_call_through_results(self) -> None:
        """
        C{call} on Redis sends the task and waits for its state.
        """
        waited: list[tuple[str, Any]] = []
        store = self.client.results = _Store(waited)
        d = self.client.call("add", (1, 2), timeout=5)
        [entry] = self.entries()
        self.assertEqual(waited, [(entry.message_id, 5)])
        store.finish.callback(_State("succeeded", 3))
        self.assertEqual(self.successResultOf(d), 3)


class _State:
    def __init__(self, status: str, result: Any) -> None:
        self.status = status
        self.result = result


class _Store:
    def __init__(self, waited: list[tuple[str, Any]]) -> None:
        self.waited = waited
        self.finish: Deferred[Any] = Deferred()

    def submitted(self, task_id: str, name: str) -> None:
        pass

    def wait(self, task_id: str, timeout: Any) -> Deferred[Any]:
        self.waited.append((task_id, timeout))
        return self.finish
