# -*- test-case-name: txmsg.test.test_worker_lifecycle -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the worker's drain when it shares services with an application
(L{txmsg.worker._lifecycle}, L{txmsg.ordered}).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import EventRegistry
from txmsg.ordered import OrderedMultiService
from txmsg.redis.connection import RedisNotRunning
from txmsg.test._events_fakes import FakeThreadPool, ThreadingClock
from txmsg.testing import MemoryBroker
from txmsg.worker._lifecycle import one_line
from txmsg.worker.service import WorkerService
from txmsg.worker.tasks import TaskCatalog


class FakeRedisService(Service):
    """
    Just enough of a L{txmsg.redis.RedisService} for the worker: a handler
    that exists only while running, as the real one.
    """

    def __init__(self, log: list[str]) -> None:
        self.keys: dict[str, str] = {}
        self.members: set[str] = set()
        self.calls = log

    @property
    def handler(self) -> Any:
        if not self.running:
            raise RedisNotRunning("RedisConnection for redis://127.0.0.1:6379/0 is not running")
        return self

    def control_listener(self, name: str, handlers: Any = None, *, status: Any = None) -> None:
        pass

    def stopService(self) -> None:
        self.calls.append("redis stopped")
        super().stopService()

    def set(self, key: str, value: str, expire: int = 0, **kw: Any) -> Deferred[Any]:
        self.keys[key] = value
        return succeed("OK")

    def sadd(self, key: str, member: str) -> Deferred[Any]:
        self.members.add(member)
        return succeed(1)

    def delete(self, key: str) -> Deferred[Any]:
        self.calls.append("unregistered")
        return succeed(int(self.keys.pop(key, None) is not None))

    def srem(self, key: str, member: str) -> Deferred[Any]:
        self.members.discard(member)
        return succeed(1)


class Child(Service):
    """
    A service added to the worker: it must stop with the worker.
    """

    def __init__(self, log: list[str]) -> None:
        self.calls = log

    def stopService(self) -> None:
        self.calls.append("child stopped")
        super().stopService()


class _WorkerFixture(SynchronousTestCase):
    """
    A worker's fakes: a memory broker and an AMQP connection to it, clock,
    thread pool, and the txmsg log messages as text in C{self.messages}.
    """

    def setUp(self) -> None:
        self.pool = FakeThreadPool()
        self.clock = ThreadingClock(self.pool)
        self.events = EventRegistry(reactor=self.clock)
        self.broker = MemoryBroker(self.clock)
        self.amqp = self.broker.connection(events=self.events)
        # never started: connected by hand with broker.connect
        self.amqp.setServiceParent(MultiService())
        self.calls: list[str] = []
        self.messages: list[str] = []
        observer = cast(ILogObserver, self.observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def observe(self, event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("txmsg"):
            self.messages.append(formatEvent(event))


class SharedRedisDrainTests(_WorkerFixture):
    """
    A worker sharing a Redis service with its application drains and leaves
    the worker registry when the application stops.
    """

    def build(self, top: MultiService) -> tuple[FakeRedisService, WorkerService]:
        redis = FakeRedisService(self.calls)
        redis.setServiceParent(top)
        worker = WorkerService(
            TaskCatalog(),
            queues=["work"],
            name="w1",
            amqp=self.amqp,
            redis=cast(Any, redis),
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
        )
        worker.setServiceParent(top)
        Child(self.calls).setServiceParent(worker)
        top.startService()
        self.broker.connect(self.amqp)
        self.broker.flush()
        self.assertIn("txmsg:worker:w1", redis.keys)  # the first heartbeat
        return redis, worker

    def test_ordered_parent_stops_redis_after_the_worker(self) -> None:
        """
        In an L{OrderedMultiService} told that the worker uses Redis, the
        worker drains, removes its registry entry and stops before Redis.
        """
        top = OrderedMultiService()
        redis, worker = self.build(top)
        top.uses(worker, redis)
        d = top.stopService()
        self.broker.flush()  # the broker answers on the next reactor turn
        self.successResultOf(d)
        self.assertEqual(self.calls, ["unregistered", "child stopped", "redis stopped"])
        self.assertEqual(redis.keys, {})
        self.assertIn("Worker w1 drained", self.messages)
        self.assertIn("Worker w1 removed from the worker registry", self.messages)
        self.assertIn("Worker w1 stopped", self.messages)

    def test_redis_gone_first_does_not_skip_the_drain(self) -> None:
        """
        In a plain C{MultiService} the shared Redis stops at the same time:
        the failed unregistration is logged in one line and the rest of the
        drain still runs.
        """
        top = MultiService()
        redis, worker = self.build(top)
        redis.stopService()  # as MultiService may do before the worker's drain ends
        d = worker.stopService()
        self.broker.flush()
        self.successResultOf(d)
        self.assertIn("child stopped", self.calls)
        self.assertEqual(worker.state, "stopped")
        self.assertIn(
            "Worker w1 could not remove itself from the worker registry: RedisNotRunning: "
            "RedisConnection for redis://127.0.0.1:6379/0 is not running; the entry expires "
            "on its own",
            self.messages,
        )
        self.assertIn("Worker w1 stopped", self.messages)


class OneLineTests(SynchronousTestCase):
    """
    L{one_line} names the real cause of a failure on one line.
    """

    def test_first_error_is_unwrapped(self) -> None:
        """
        The C{FirstError} of C{gatherResults} is replaced by the error it
        wraps.
        """
        d = gatherResults(
            cast(list[Deferred[Any]], [succeed(1), Deferred.fromCoroutine(self.refused())]),
            consumeErrors=True,
        )
        failure = self.failureResultOf(d)
        self.assertEqual(one_line(failure), "ConnectionRefusedError: refused now")

    async def refused(self) -> None:
        raise ConnectionRefusedError("refused\nnow")

    def test_plain(self) -> None:
        """
        A plain failure is C{Type: message} with its whitespace folded; an empty
        message leaves the type.
        """
        self.assertEqual(one_line(Failure(ValueError("bad  value"))), "ValueError: bad value")
        self.assertEqual(one_line(Failure(ValueError())), "ValueError")


class StartUpTests(_WorkerFixture):
    """
    What the worker says and measures right after it starts.
    """

    def observe(self, event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("txmsg.worker"):
            self.messages.append(formatEvent(event))

    def worker(self, **kw: Any) -> WorkerService:
        tasks = TaskCatalog()
        tasks.add(lambda: None, name="noop")
        worker = WorkerService(
            tasks,
            queues=["work"],
            name="w1",
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
            **kw,
        )
        worker.startService()
        self.addCleanup(worker.stopService)
        return worker

    def test_connecting_then_consuming(self) -> None:
        """
        The worker says it is connecting when it starts, and that it
        consumes only once the broker registered its consumer.
        """
        self.worker()
        self.assertEqual(
            self.messages,
            [
                "Worker w1 connecting: will consume work (prefetch 1, 4 threads, tasks: noop)",
            ],
        )
        self.broker.connect(self.amqp)
        self.broker.flush()
        self.assertEqual(self.messages[-1], "Worker w1 consuming work")

    def test_block_at_start_up_is_measured(self) -> None:
        """
        A reactor blocked right after start-up shows in the first lag tick:
        the lag is recorded and warned about.
        """
        worker = self.worker(lag_warning=0.5)
        self.clock.advance(3.5)  # the first tick, due at 1.0, runs at 3.5
        self.assertEqual(worker.stats.max_lag, 2.5)
        self.assertIn(
            "The reactor was 2.50s late: something blocks it (a blocking call in a "
            "task not declared blocking=True?)",
            self.messages,
        )

    def test_heartbeat_failure_is_one_line(self) -> None:
        """
        A failed heartbeat is one warning naming the cause, not the raw
        C{FirstError} of the registry's C{gatherResults}.
        """

        class DownRedis(FakeRedisService):
            def set(self, key: str, value: str, expire: int = 0, **kw: Any) -> Deferred[Any]:
                return fail(ConnectionError("Not connected"))

        redis = DownRedis([])
        redis.startService()
        self.worker(redis=redis)
        self.assertIn("Worker heartbeat failed: ConnectionError: Not connected", self.messages)
