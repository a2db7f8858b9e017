# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.limits}: rate and concurrency limits of tasks in
the real worker (L{WorkerHarness}), on a fake clock and the in-memory Redis.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.limits import ConcurrencyLimit, Rate
from txmsg.tap.worker import Options
from txmsg.test._optional import missing
from txmsg.testing import MemoryBroker, MemoryRedis, WorkerHarness
from txmsg.worker import TaskCatalog
from txmsg.worker.limits import BACKOFF, TaskLimits, check_limits_redis

#: Loaded by the tap test (C{--tasks module:limited}).
limited = TaskCatalog()


@limited.task(max_concurrency=3)
def crawl() -> None:
    """A limited task."""


class DeclarationTests(SynchronousTestCase):
    """The limit options are checked when the task is declared."""

    def test_options_kept(self) -> None:
        tasks = TaskCatalog()
        tasks.task(name="a", rate_limit="30/m", max_concurrency=2, concurrency_lease=5)(len)
        tasks.task(name="b")(len)
        a, b = tasks.get("a"), tasks.get("b")
        assert a is not None and b is not None
        self.assertEqual(
            (a.rate_limit, a.max_concurrency, a.concurrency_lease), (Rate(30, 60), 2, 5.0)
        )
        self.assertTrue(a.limited)
        self.assertFalse(b.limited)

    def test_refused(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"rate_limit": "100"}, "100/s, 30/m or 1000/h"),
            ({"rate_limit": 100}, "rate_limit must be a string"),
            ({"rate_limit": "0/s"}, "positive count"),
            ({"max_concurrency": 0}, "max_concurrency must be a whole number >= 1"),
            ({"max_concurrency": 1.5}, "max_concurrency must be a whole number >= 1"),
            ({"max_concurrency": True}, "max_concurrency must be a whole number >= 1"),
            ({"concurrency_lease": 0.5}, "concurrency_lease must be at least 1 second"),
            ({"concurrency_lease": "5"}, "concurrency_lease must be a number"),
        ]
        for options, text in cases:
            tasks = TaskCatalog()
            with self.assertRaises(ValueError) as e:
                tasks.task(name="t", **options)(len)
            self.assertIn(text, str(e.exception))
            self.assertEqual(len(tasks), 0)

    def test_needs_redis(self) -> None:
        """
        A worker with a limited task and no Redis refuses to start, naming
        the task and the option.
        """
        tasks = TaskCatalog()
        tasks.task(name="fetch", rate_limit="5/s")(len)
        with self.assertRaises(ValueError) as e:
            check_limits_redis(tasks, None)
        self.assertEqual(
            str(e.exception),
            "task 'fetch' has rate_limit but this worker has no Redis (--redis): "
            "limits are kept in Redis",
        )
        check_limits_redis(tasks, object())  # with Redis: fine
        self.assertRaises(ValueError, WorkerHarness, tasks)

    def test_tap_needs_redis(self) -> None:
        """C{twistd txmsg-worker} says so in one line."""
        options = Options()
        e = self.assertRaises(
            UsageError,
            options.parseOptions,
            ["--tasks", __name__ + ":limited", "--amqp", "amqp://localhost/"],
        )
        self.assertIn("task 'crawl' has max_concurrency but this worker has no Redis", str(e))

    def test_backoff(self) -> None:
        """A refused task waits 0.5 s to 2 s, picked by the jitter."""
        limits = TaskLimits(None, "w", Clock(), lambda: 0.0)
        self.assertEqual(limits.backoff(), BACKOFF[0])
        limits.jitter = lambda: 0.999999
        self.assertAlmostEqual(limits.backoff(), BACKOFF[1], places=4)


class _Base(SynchronousTestCase):
    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.memory = MemoryRedis(self.clock)
        self.redis = self.memory.service()
        self.redis.startService()
        self.broker = MemoryBroker(self.clock)
        self.tasks = TaskCatalog()
        self.starts: list[tuple[float, Any]] = []
        self.gates: dict[Any, Deferred[None]] = {}
        self.running = 0
        self.most = 0

    def harness(self, name: str = "w1", prefetch: int = 10, second: bool = False) -> WorkerHarness:
        """
        A worker on the shared broker and Redis; C{second}: only its worker
        (the first harness's client sends and reads replies).
        """
        h = WorkerHarness(
            self.tasks,
            self.clock,
            broker=self.broker,
            redis=self.memory.service(),
            name=name,
            prefetch=prefetch,
            start=False,
        )
        h.worker.pipeline.limits.jitter = lambda: 0.0
        if second:
            h.worker.startService()
            self.addCleanup(h.worker.stopService)
        else:
            h.start()
            self.addCleanup(h.stop)
        return h

    def record(self, n: Any) -> None:
        self.starts.append((round(self.clock.seconds() - 1_000_000, 3), n))

    async def gated(self, n: Any) -> None:
        """Runs until C{self.gates[n]} fires."""
        self.record(n)
        self.running += 1
        self.most = max(self.most, self.running)
        self.gates[n] = Deferred()
        try:
            await self.gates[n]
        finally:
            self.running -= 1

    def holders(self, task: str) -> int:
        d = self.redis.handler.execute_command(
            "ZCARD", "txmsg:{{concurrency:{}}}:holders".format(task)
        )
        return int(self.successResultOf(d))


class RateTests(_Base):
    """Over-limit tasks wait in the broker for their slot, in order."""

    def test_delayed_not_run(self) -> None:
        self.tasks.task(name="r", rate_limit="10/s")(self.record)
        h = self.harness()
        ids = [h.submit("r", i) for i in range(5)]
        self.assertEqual(self.starts, [(0.0, 0)])
        # The others wait in the delay queues, not counted as runs.
        self.assertEqual(h.retries(), [])
        h.run_until_idle()
        self.assertEqual(self.starts, [(0.0, 0), (0.1, 1), (0.2, 2), (0.3, 3), (0.4, 4)])
        self.assertEqual([h.attempts(i) for i in ids], [1] * 5)
        self.assertTrue(all(h.outcome(i).ok for i in ids))

    def test_two_workers_share_the_rate(self) -> None:
        """Workers on the same Redis share one limit; order is kept."""
        self.tasks.task(name="r", rate_limit="5/s")(self.record)
        h1 = self.harness("w1")
        self.harness("w2", second=True)
        for i in range(10):
            h1.submit("r", i)
        h1.run_until_idle()
        self.assertEqual([n for _, n in self.starts], list(range(10)))
        self.assertEqual([t for t, _ in self.starts], [round(0.2 * i, 3) for i in range(10)])

    def test_per_minute(self) -> None:
        self.tasks.task(name="r", rate_limit="2/m")(self.record)
        h = self.harness()
        for i in range(3):
            h.submit("r", i)
        h.run_until_idle()
        self.assertEqual(self.starts, [(0.0, 0), (30.0, 1), (60.0, 2)])

    def test_unlimited_tasks_untouched(self) -> None:
        """Tasks without limits never ask Redis about them."""
        self.tasks.task(name="free")(self.record)
        h = self.harness()
        h.submit("free", 1)
        self.assertEqual(self.starts, [(0.0, 1)])
        self.assertEqual(h.worker.pipeline.limits._rates, {})
        self.assertEqual(h.worker.pipeline.limits._slots, {})

    def test_redis_error(self) -> None:
        """
        Redis failing on the check is a transient failure: retried later
        through the broker, never run meanwhile, nor a crash.
        """
        self.tasks.task(name="r", rate_limit="10/s")(self.record)
        h = self.harness()
        self.memory.fail_commands(ConnectionError("Redis went away"))
        task_id = h.submit("r", 1)
        self.assertEqual(self.starts, [])
        self.assertEqual(len(h.retries(task_id)), 1)
        self.memory.fail_commands(None)
        h.run_until_idle()
        self.assertEqual([n for _, n in self.starts], [1])
        self.assertTrue(h.outcome(task_id).ok)


class ConcurrencyTests(_Base):
    """Never more than N running at once across workers."""

    def test_never_more_than_n(self) -> None:
        self.tasks.task(name="c", max_concurrency=2)(self.gated)
        h1 = self.harness("w1")
        self.harness("w2", second=True)
        for i in range(6):
            h1.submit("c", i)
        self.assertEqual(self.running, 2)
        self.assertEqual(self.holders("c"), 2)
        done = 0
        for _ in range(200):
            for gate in list(self.gates.values()):
                if not gate.called and self.clock.seconds() > 0:
                    gate.callback(None)
                    done += 1
                    break
            h1.advance(0.1)
            if done == 6:
                break
        h1.run_until_idle()
        self.assertEqual(sorted(n for _, n in self.starts), list(range(6)))
        self.assertEqual(self.most, 2)
        self.assertEqual(self.holders("c"), 0)

    def test_released_on_failure(self) -> None:
        def boom() -> None:
            raise ValueError("no")

        self.tasks.task(name="c", max_concurrency=1, max_retries=0)(boom)
        h = self.harness()
        task_id = h.submit("c")
        self.assertFalse(h.outcome(task_id).ok)
        self.assertEqual(self.holders("c"), 0)

    def test_dead_holder_returns_after_lease(self) -> None:
        """
        A holder that never gives its slot back (its worker was killed)
        loses it when the lease runs out; the waiting task then runs.
        """
        self.tasks.task(name="c", max_concurrency=1, concurrency_lease=10)(self.record)
        dead = ConcurrencyLimit(self.redis, "c", 1, lease=10)
        self.assertTrue(self.successResultOf(dead.acquire("killed:1")))
        h = self.harness()
        h.submit("c", 1)
        h.advance(9)
        self.assertEqual(self.starts, [])
        h.run_until_idle()
        self.assertEqual(len(self.starts), 1)
        self.assertTrue(10 <= self.starts[0][0] <= 10 + BACKOFF[0] + 0.1)

    def test_lease_renewed_while_running(self) -> None:
        """A task running for many leases keeps its slot."""
        self.tasks.task(name="c", max_concurrency=1, concurrency_lease=3)(self.gated)
        h = self.harness()
        h.submit("c", 1)
        h.submit("c", 2)
        for _ in range(30):
            h.advance(0.5)
        self.assertEqual([n for _, n in self.starts], [1])
        self.assertEqual(self.holders("c"), 1)
        self.gates[1].callback(None)
        h.run_until_idle()
        self.assertEqual([n for _, n in self.starts], [1, 2])
        self.assertEqual(self.most, 1)
        self.gates[2].callback(None)
        h.advance(0)
        self.assertEqual(self.holders("c"), 0)

    def test_rate_and_concurrency(self) -> None:
        """Both limits on one task."""
        self.tasks.task(name="c", rate_limit="10/s", max_concurrency=1)(self.record)
        h = self.harness()
        for i in range(3):
            h.submit("c", i)
        h.run_until_idle()
        self.assertEqual([n for _, n in self.starts], [0, 1, 2])
        self.assertEqual(self.holders("c"), 0)

    def test_lost_lease_not_renewed(self) -> None:
        """A slot lost meanwhile is not renewed again (one warning)."""
        self.tasks.task(name="c", max_concurrency=1, concurrency_lease=3)(self.gated)
        h = self.harness()
        h.submit("c", 1)
        self.successResultOf(
            self.redis.handler.execute_command("DEL", "txmsg:{concurrency:c}:holders")
        )
        for _ in range(10):
            h.advance(1)
        lost = [m for m in h.log_messages() if "ran out before it was renewed" in m]
        self.assertEqual(len(lost), 1)
        self.gates[1].callback(None)
        h.advance(0)
        self.assertEqual(self.holders("c"), 0)
