# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.testing}: exports, failure injection on the memory broker
and Redis, and the worker harness.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import txmsg.testing
from txmsg.amqp import (
    PublishLost,
    PublishNacked,
    PublishReturned,
    PublishTimeout,
    Queue,
    RPCClient,
    RPCServer,
    RPCTimeout,
)
from txmsg.redis import RedisCommandTimeout
from txmsg.testing import (
    MemoryBroker,
    MemoryRedis,
    WorkerHarness,
    memory_amqp,
    memory_redis,
)
from txmsg.worker import RetryPolicy, TaskCatalog
from txmsg.worker.client import TaskFailed


class ExportsTests(SynchronousTestCase):
    """The public names of L{txmsg.testing}."""

    def test_all(self) -> None:
        """Every name in C{__all__} exists and has a docstring."""
        for name in txmsg.testing.__all__:
            obj = getattr(txmsg.testing, name)
            self.assertTrue(obj.__doc__, name)


class BrokerFailureInjectionTests(SynchronousTestCase):
    """Failure injection on L{MemoryBroker}, seen through a real publisher."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.conn = memory_amqp(self.clock)
        self.broker = self.conn.broker
        self.conn.declare(Queue("q", durable=False))
        self.conn.startService()
        self.clock.advance(0)

    def tearDown(self) -> None:
        d = self.conn.stopService()
        self.clock.advance(0)
        self.clock.advance(0)
        self.successResultOf(d)

    def publish(self, key: str = "q", **kw: Any) -> Any:
        d = self.conn.publish("", key, b"x", **kw)
        self.clock.advance(0)
        return d

    def test_nack_next(self) -> None:
        """C{nack_next} makes the next matching publish fail with L{PublishNacked}."""
        self.broker.nack_next()
        self.failureResultOf(self.publish(), PublishNacked)
        self.successResultOf(self.publish())
        self.assertEqual(self.broker.message_count("q"), 1)

    def test_return_next(self) -> None:
        """C{return_next} makes a routable mandatory publish come back."""
        self.broker.return_next(routing_key="q")
        self.failureResultOf(self.publish(), PublishReturned)
        self.assertEqual(self.broker.message_count("q"), 0)

    def test_hold_confirms(self) -> None:
        """Withheld confirms make a publish time out at its deadline."""
        self.broker.hold_confirms()
        d = self.publish(timeout=5)
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertEqual(self.failureResultOf(d, PublishTimeout).value.stage, "confirm")
        self.broker.release_confirms()

    def test_drop_and_refuse(self) -> None:
        """
        A dropped connection fails the unconfirmed publish with
        L{PublishLost}; while refused it stays down; then it reconnects with
        backoff and replays the topology.
        """
        self.broker.hold_confirms()
        d = self.conn.publish("", "q", b"x")
        self.broker.refuse_connections()
        self.broker.drop_connections()
        self.clock.advance(0)
        self.failureResultOf(d, PublishLost)
        self.assertIsNone(self.conn.connection)
        self.clock.advance(5)
        self.assertIsNone(self.conn.connection)
        self.broker.refuse_connections(False)
        self.broker.release_confirms()
        self.clock.advance(20)
        self.assertIsNotNone(self.conn.connection)
        self.assertEqual(self.conn.generation, 2)
        self.successResultOf(self.publish())

    def test_delay_reply(self) -> None:
        """C{delay_next} on the reply-to address makes an RPC call time out."""
        RPCServer(self.conn, "q", lambda d: b"pong")
        client = RPCClient(self.conn, timeout=2)
        self.clock.advance(0)
        self.broker.delay_next(5, routing_key="amq.rabbitmq.reply-to.*")
        d = client.call("q", b"ping")
        self.clock.advance(0)
        self.clock.advance(2)
        self.failureResultOf(d, RPCTimeout)
        d = client.call("q", b"ping")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d), b"pong")
        self.clock.advance(5)

    def test_external_publish_and_get(self) -> None:
        """C{publish} and C{get} act as another client on the broker."""
        self.assertEqual(self.broker.publish("", "q", "hi", headers={"a": 1}), ["q"])
        m = self.broker.get("q")
        self.assertEqual((m.body, m.headers), (b"hi", {"a": 1}))
        self.assertIsNone(self.broker.get("q"))


class RedisFailureInjectionTests(SynchronousTestCase):
    """Failure injection on L{MemoryRedis}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = memory_redis(self.clock, command_timeout=2)
        self.redis.startService()

    def tearDown(self) -> None:
        self.successResultOf(self.redis.stopService())

    def test_commands_wait_for_reconnect(self) -> None:
        """While Redis is down a command waits; past its deadline it fails."""
        memory: MemoryRedis = self.redis.memory
        memory.refuse_connections()
        memory.drop_connections()
        d = self.redis.handler.get("k")
        self.assertNoResult(d)
        self.clock.advance(2)
        self.failureResultOf(d, RedisCommandTimeout)
        memory.refuse_connections(False)
        d = self.redis.handler.set("k", "v")
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), "OK")

    def test_pause(self) -> None:
        """Paused replies arrive on C{resume}."""
        self.redis.memory.pause()
        d = self.redis.handler.set("k", "v")
        self.assertNoResult(d)
        self.redis.memory.resume()
        self.assertEqual(self.successResultOf(d), "OK")

    def test_fail_commands(self) -> None:
        """C{fail_commands} fails every command with the given error."""
        self.redis.memory.fail_commands(ValueError("broken"))
        self.failureResultOf(self.redis.handler.get("k"), ValueError)
        self.redis.memory.fail_commands(None)
        self.assertIsNone(self.successResultOf(self.redis.handler.get("k")))

    def test_string_commands(self) -> None:
        """txredisapi-style methods: set with expire, ttl, incr, hashes, sets."""
        h = self.redis.handler
        self.successResultOf(h.set("a", "1", expire=10))
        self.assertEqual(self.successResultOf(h.ttl("a")), 10)
        self.assertEqual(self.successResultOf(h.incr("a")), 2)
        self.successResultOf(h.hset("h", "f", "v"))
        self.assertEqual(self.successResultOf(h.hgetall("h")), {"f": "v"})
        self.successResultOf(h.sadd("s", "x"))
        self.assertEqual(self.successResultOf(h.smembers("s")), {"x"})
        self.clock.advance(10)
        self.assertIsNone(self.successResultOf(h.get("a")))


class WorkerHarnessTests(SynchronousTestCase):
    """L{WorkerHarness} runs the real worker."""

    def setUp(self) -> None:
        self.tasks = TaskCatalog()
        self.tasks.add(lambda x, y: x + y, name="add")
        self.tasks.add(lambda: "thread", name="blocking", blocking=True)

        def fail() -> None:
            raise KeyError("missing")

        self.tasks.add(fail, name="fail", max_retries=1, retry_for=(KeyError,))
        self.h = WorkerHarness(self.tasks, retry=RetryPolicy(initial_delay=5, jitter=0))

    def tearDown(self) -> None:
        self.successResultOf(self.h.stop())
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_results(self) -> None:
        """Results of reactor and blocking tasks are recorded."""
        a, b = self.h.submit("add", 1, 2), self.h.submit("blocking")
        self.assertEqual((self.h.result(a), self.h.result(b)), (3, "thread"))
        self.assertEqual(self.h.attempts(a), 1)

    def test_retry_and_dead_letter(self) -> None:
        """A failing task is retried after the policy's delay, then dead-lettered."""
        task_id = self.h.submit("fail")
        self.assertEqual(self.h.attempts(task_id), 1)
        self.assertRaises(LookupError, self.h.result, task_id)
        self.h.advance(4.9)
        self.assertEqual(self.h.attempts(task_id), 1)
        self.h.advance(0.1)
        self.assertEqual(self.h.attempts(task_id), 2)
        self.assertEqual(
            self.h.retries(task_id),
            [{"id": task_id, "attempt": 1, "queue": "tasks", "expiration_ms": 5000}],
        )
        [dead] = self.h.dead_letters()
        self.assertEqual(
            (dead.task, dead.reason, dead.error_type, dead.attempts),
            ("fail", "failed", "KeyError", 2),
        )

        self.assertRaises(TaskFailed, self.h.result, task_id)
        self.assertTrue(any("retrying in 5.0s" in m for m in self.h.log_messages()))

    def test_unknown_task(self) -> None:
        """An unknown task is dead-lettered at once."""
        self.h.submit("nope")
        self.assertEqual([d.reason for d in self.h.dead_letters()], ["unknown-task"])

    def test_load_by_name(self) -> None:
        """A task module can be given by its dotted name."""
        h = WorkerHarness("txmsg.test._worker_tasks_sample", broker=MemoryBroker())
        self.assertEqual(h.result(h.submit("add", 2, 2)), 4)
        self.successResultOf(h.stop())
