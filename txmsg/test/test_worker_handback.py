# -*- test-case-name: txmsg.test.test_worker_handback -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Graceful requeues do not use up the delivery cap: the real worker on the
in-memory broker (L{txmsg.testing.WorkerHarness}) stopped while tasks wait
for its thread pool, or while deliveries are still arriving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import WorkerHarness
from txmsg.worker.envelope import CONTENT_TYPE, Task, encode_task
from txmsg.worker.headers import ATTEMPT_HEADER
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.tasks import TaskCatalog


class StepPool:
    """
    A thread pool of one thread, stepped by the test: L{start_next} calls
    the next queued function (as a free thread would) but holds its result
    back until L{finish}, so the task counts as started and still running.
    """

    def __init__(self) -> None:
        self.queued: list[
            tuple[Callable[[bool, Any], object], Callable[..., Any], tuple, dict]
        ] = []
        self.busy: list[tuple[Callable[[bool, Any], object], bool, Any]] = []

    def callInThreadWithCallback(
        self, onResult: Callable[[bool, Any], object], func: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        self.queued.append((onResult, func, a, kw))

    def start_next(self) -> None:
        onResult, func, a, kw = self.queued.pop(0)
        try:
            self.busy.append((onResult, True, func(*a, **kw)))
        except BaseException as e:
            self.busy.append((onResult, False, e))

    def run_all(self) -> None:
        while self.queued:
            self.start_next()
        self.finish()

    def finish(self) -> None:
        busy, self.busy = self.busy, []
        for onResult, ok, value in busy:
            onResult(ok, value)


class GracefulRequeueTests(SynchronousTestCase):
    """
    A task handed back at shutdown without having started is not counted
    as a run; one that started is.
    """

    def setUp(self) -> None:
        self.runs: list[str] = []
        self.tasks = TaskCatalog()

        def work(tag: str) -> str:
            self.runs.append(tag)
            return tag

        self.tasks.add(work, name="work", blocking=True, max_retries=0)

    def harness(self, pool: Any = None, **kw: Any) -> WorkerHarness:
        h = WorkerHarness(
            self.tasks,
            prefetch=10,
            grace=1,
            retry=RetryPolicy(max_retries=3, initial_delay=1, jitter=0),
            start=False,
            **kw,
        )
        if pool is not None:
            h.worker.threads.pool = pool
        h.start()
        return h

    def send(self, h: WorkerHarness, tag: str) -> None:
        h.connection.publish(
            "",
            "tasks",
            encode_task(Task("work", (tag,), {}, tag)),
            content_type=CONTENT_TYPE,
            message_id=tag,
        )
        h.advance(0)

    def test_queued_tasks_are_handed_back_uncounted(self) -> None:
        """
        With C{max_retries=0}, prefetch 10 and one busy thread: at the end
        of the grace period the started task is requeued counted, and the
        ones still waiting for the thread are handed back uncounted (not
        redelivered, no attempt counted) and never run in this worker.  A
        second worker then runs each of these once, and dead-letters the
        started one (C{delivery-limit}: it may have had side effects).
        """
        pool = StepPool()
        h = self.harness(pool)
        for tag in ("a", "b", "c"):
            self.send(h, tag)
        self.assertEqual(len(pool.queued), 3)
        pool.start_next()
        self.assertEqual(self.runs, ["a"])
        d = h.stop()
        h.advance(1)
        pool.run_all()  # the queued work reaches a thread after all
        h.advance(0)
        self.successResultOf(d)
        self.assertEqual(self.runs, ["a"])
        back = {m.body: m for m in h.broker.messages("tasks")}
        self.assertEqual(len(back), 3)
        counted = {
            body: (m.redelivered, (m.properties.headers or {}).get(ATTEMPT_HEADER))
            for body, m in back.items()
        }
        self.assertEqual(
            sorted(counted.values(), key=repr), [(False, None), (False, None), (True, None)]
        )
        self.assertEqual(h.broker.message_count("tasks.dead"), 0)

        second = self.harness(broker=h.broker, name="second")
        second.run_until_idle()
        self.assertEqual(sorted(self.runs), ["a", "b", "c"])
        self.assertEqual(
            [(r.id, r.reason) for r in second.dead_letters()], [("a", "delivery-limit")]
        )
        self.successResultOf(second.stop())

    def test_deliveries_after_stop_are_handed_back(self) -> None:
        """
        A delivery that reaches the consumer after it stopped (the broker
        sent it before it saw the cancel) goes back uncounted instead of
        being left for the broker to requeue as redelivered.
        """
        pool = StepPool()
        h = self.harness(pool)
        consumer = h.worker.consumers["tasks"]
        self.send(h, "a")
        pool.start_next()
        consumer.stop()
        self.send(h, "late")  # arrives while the consumer drains
        pool.finish()
        h.advance(0)
        self.assertEqual(self.runs, ["a"])
        [late] = h.broker.messages("tasks")
        self.assertFalse(late.redelivered)
        self.assertEqual(h.broker.unacked_count("tasks"), 0)
        self.successResultOf(h.stop())
