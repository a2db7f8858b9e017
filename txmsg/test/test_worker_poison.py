# -*- test-case-name: txmsg.test.test_worker_poison -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Poison messages never loop: the real worker on the in-memory broker
(L{txmsg.testing.WorkerHarness}) with hostile and faulty deliveries.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from txredisapi import ConnectionError as RedisConnectionError

from txmsg.testing import WorkerHarness, memory_redis
from txmsg.worker.envelope import CONTENT_TYPE, Task, encode_task
from txmsg.worker.headers import ATTEMPT_HEADER, DELIVERY_COUNT_HEADER
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.tasks import TaskCatalog

NESTED = ('{"task":"add","args":[' + "[" * 1000 + "]" * 1000 + ",1]}").encode()


class PoisonTests(SynchronousTestCase):
    """
    A delivery whose handling fails outside its task is dead-lettered once
    with a reason, acked, and the next message runs.
    """

    def setUp(self) -> None:
        self.runs: list[str] = []
        self.hanging: list[Deferred[Any]] = []
        tasks = TaskCatalog()
        tasks.add(lambda x, y: x + y, name="add")

        def fail(tag: str) -> None:
            self.runs.append(tag)
            raise ValueError("fails on purpose")

        def hang() -> Deferred[Any]:
            self.runs.append("hang")
            d: Deferred[Any] = Deferred()
            self.hanging.append(d)
            return d

        tasks.add(fail, name="fail", retry_for=(Exception,))
        tasks.add(hang, name="hang")
        self.h = WorkerHarness(tasks, retry=RetryPolicy(max_retries=2, initial_delay=1, jitter=0))
        self.broker = self.h.broker

    def tearDown(self) -> None:
        for d in self.hanging:
            if not d.called:
                d.callback(None)
        self.h.advance(0)
        self.successResultOf(self.h.stop())

    def send(self, body: bytes, headers: dict | None = None) -> None:
        """Publish a raw message to the work queue and let it flow."""
        self.h.connection.publish("", "tasks", body, content_type=CONTENT_TYPE, headers=headers)
        self.h.advance(0)

    def crash(self) -> None:
        """
        The connection drops while a task runs, and the run ends after that:
        its ack is lost and the broker redelivers the message.
        """
        self.broker.drop_connections()
        self.h.advance(0)
        for d in self.hanging:
            if not d.called:
                d.callback(None)
        self.h.advance(5)

    def reasons(self) -> list[str | None]:
        return [d.reason for d in self.h.dead_letters()]

    def assertNextTaskRuns(self) -> None:
        """The queue is not wedged: a good task behind the poison completes."""
        self.assertEqual(self.h.result(self.h.submit("add", 2, 3)), 5)
        self.assertEqual(self.broker.unacked_count("tasks"), 0)
        self.assertEqual(self.broker.message_count("tasks"), 0)

    def test_deeply_nested_body(self) -> None:
        """A body nested 1,000 deep is dead-lettered as C{malformed}, once."""
        self.send(NESTED)
        self.assertEqual(self.reasons(), ["malformed"])
        self.assertNextTaskRuns()

    def test_attempts_not_a_number(self) -> None:
        """C{x-txmsg-attempts: "abc"} is dead-lettered as C{bad-headers}."""
        self.send(encode_task(Task("add", (1, 2), {}, "a")), {ATTEMPT_HEADER: "abc"})
        [dead] = self.h.dead_letters()
        self.assertEqual((dead.reason, dead.error_type), ("bad-headers", "BadHeaders"))
        self.assertIn(ATTEMPT_HEADER, dead.error_message or "")
        self.assertNextTaskRuns()

    def test_negative_attempts(self) -> None:
        """
        C{x-txmsg-attempts: -5} on a failing task is dead-lettered as
        C{bad-headers} without running it (the retry policy used to raise
        after the task ran, and it ran again and again).
        """
        self.send(encode_task(Task("fail", ("x",), {}, "n")), {ATTEMPT_HEADER: -5})
        self.h.run_until_idle()
        self.assertEqual(self.reasons(), ["bad-headers"])
        self.assertEqual(self.runs, [])
        self.assertNextTaskRuns()

    def test_internal_error(self) -> None:
        """
        An exception outside the task dead-letters the message as
        C{internal-error:<type>}, logged once, and the worker goes on.
        """
        pipeline = self.h.worker.pipeline
        original = pipeline.tasks.get

        def broken(name: str) -> Any:
            if name == "add":
                raise RuntimeError("a defect")
            return original(name)

        pipeline.tasks.get = broken  # type: ignore[method-assign]
        self.send(encode_task(Task("add", (1, 2), {}, "i")))
        self.h.run_until_idle()
        self.assertEqual(self.reasons(), ["internal-error:RuntimeError"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 0)  # captured by the harness
        failures = [e for e in self.h.logs if e.get("log_failure") is not None]
        self.assertEqual(len(failures), 1)
        pipeline.tasks.get = original  # type: ignore[method-assign]
        self.assertNextTaskRuns()

    def test_failed_settlement_waits_in_the_broker(self) -> None:
        """
        When the retry cannot be published (the broker nacks it), the
        delivery is retried through the delay queue instead, not nacked
        back to the head of the queue.
        """
        self.broker.nack_next(1, routing_key="*.tasks")
        self.h.submit("fail", "f")
        self.assertEqual(self.runs, ["f"])
        self.assertEqual(self.broker.message_count("tasks"), 0)
        self.assertEqual(self.broker.message_count("txmsg.delay.03"), 1)
        self.h.advance(1)
        self.assertEqual(self.runs, ["f", "f"])

    def test_failed_settlement_fallback_waits(self) -> None:
        """
        When even the delayed retry cannot be published, the delivery is
        given back to the broker only after a delay: no hot loop.
        """
        self.broker.nack_next(None, routing_key="*.tasks")
        self.h.submit("fail", "f")
        self.assertEqual(self.broker.unacked_count("tasks"), 1)
        self.h.advance(0.9)
        self.assertEqual(self.runs, ["f"])
        self.broker.clear_failures()
        self.h.advance(0.1)
        # Given back, redelivered, counted, and run again: twice in all.
        self.h.advance(0)
        self.assertEqual(self.runs, ["f", "f"])

    def test_forged_direct_reply_to(self) -> None:
        """
        A task whose C{reply_to} is a direct reply-to name the broker did
        not generate is dead-lettered at once as C{bad-headers}, without
        running and without any reply (publishing to such a name can close
        the worker's connection); the next task runs.
        """
        self.h.connection.publish(
            "",
            "tasks",
            encode_task(Task("fail", ("r",), {}, "r")),
            content_type=CONTENT_TYPE,
            reply_to="amq.rabbitmq.reply-to.garbage",
        )
        self.h.advance(0)
        self.assertEqual(self.runs, [])
        self.assertEqual(self.reasons(), ["bad-headers"])
        self.assertEqual(self.h.outcomes, {})
        self.assertNextTaskRuns()

    def test_crash_loop_is_capped(self) -> None:
        """
        A message whose run never finishes because the worker loses its
        connection each time (as if the task killed it) runs at most
        C{max_retries + 1} times, then is dead-lettered as C{delivery-limit}.
        """
        self.send(encode_task(Task("hang", (), {}, "c")))
        for _ in range(6):
            self.crash()
        self.assertEqual(self.runs, ["hang"] * 3)
        self.assertEqual(self.reasons(), ["delivery-limit"])

    def test_quorum_delivery_count(self) -> None:
        """
        RabbitMQ's C{x-delivery-count} counts as runs: past the limit the
        message is dead-lettered without running.
        """
        self.send(encode_task(Task("fail", ("q",), {}, "q")), {DELIVERY_COUNT_HEADER: 3})
        self.assertEqual(self.runs, [])
        self.assertEqual(self.reasons(), ["delivery-limit"])

    def test_redelivered_keeps_the_flag(self) -> None:
        """
        A redelivered message, counted and queued again, still tells its
        task that it was redelivered, and its attempt counts the lost run.
        """
        seen: list[tuple[int, bool]] = []

        def look(*, context: Any) -> Deferred[Any]:
            seen.append((context.attempt, context.redelivered))
            d: Deferred[Any] = Deferred()
            self.hanging.append(d)
            return d

        self.h.registry.add(look, name="look")
        self.h.worker.pipeline.install(self.h.worker.threads.run)
        self.send(encode_task(Task("look", (), {}, "r")))
        self.crash()
        self.assertEqual(seen, [(1, False), (2, True)])


class TransientTests(SynchronousTestCase):
    """
    An error outside the task that may be transient is retried through the
    broker's delay queue, counted, never in a hot loop.
    """

    def test_redis_gone(self) -> None:
        """
        When Redis is gone, an idempotent task cannot claim its id: the
        message waits in the delay queue (counted as a run) and runs once
        Redis is back.
        """
        clock = Clock()
        redis = memory_redis(clock)
        runs: list[int] = []
        tasks = TaskCatalog()
        tasks.add(runs.append, name="once", idempotent=True)
        h = WorkerHarness(tasks, clock, redis=redis, retry=RetryPolicy(initial_delay=1, jitter=0))
        redis.memory.fail_commands(RedisConnectionError("Not connected"))
        task_id = h.submit("once", 7)
        self.assertEqual(runs, [])
        [retry] = h.retries(task_id)
        self.assertEqual((retry["queue"], retry["attempt"]), ("tasks", 1))
        self.assertEqual(h.broker.message_count("tasks"), 0)
        redis.memory.fail_commands(None)
        h.advance(1)
        self.assertEqual(runs, [7])
        self.assertEqual(h.dead_letters(), [])
        self.successResultOf(h.stop())

    def test_redis_gone_counts_attempts(self) -> None:
        """
        The retry of a transient error outside the task counts on from the
        delivery's attempts (it does not start again at 1), and past
        C{max_retries} the delivery is dead-lettered (C{delivery-limit})
        rather than retried for as long as Redis stays away.
        """
        clock = Clock()
        redis = memory_redis(clock)
        tasks = TaskCatalog()
        tasks.add(lambda x: None, name="once", idempotent=True)
        h = WorkerHarness(
            tasks, clock, redis=redis, retry=RetryPolicy(initial_delay=1, jitter=0, max_retries=3)
        )
        redis.memory.fail_commands(RedisConnectionError("Not connected"))
        for task_id, attempts in (("second", 1), ("last", 3)):
            h.connection.publish(
                "",
                "tasks",
                encode_task(Task("once", (7,), {}, task_id)),
                content_type=CONTENT_TYPE,
                message_id=task_id,
                headers={ATTEMPT_HEADER: attempts},
            )
            h.advance(0)
        [retry] = h.retries("second")
        self.assertEqual(retry["attempt"], 2)
        self.assertEqual(h.retries("last"), [])
        [dead] = h.dead_letters()
        self.assertEqual((dead.id, dead.reason), ("last", "delivery-limit"))
        redis.memory.fail_commands(None)
        self.successResultOf(h.stop())
