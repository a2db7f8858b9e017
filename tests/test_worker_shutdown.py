# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: stopping C{twistd -n txmsg-worker} with SIGTERM while a
task runs (grace period, requeue, second SIGTERM).
"""

from __future__ import annotations

import signal
import time

from twisted.trial.unittest import TestCase

from tests._streams_support import RedisBroker
from tests._worker_support import (
    OneQueueMixin,
    WorkerProcess,
    elapsed_since,
    wait_until,
)


class SigtermTests(OneQueueMixin, TestCase):
    """
    SIGTERM drains: running tasks get C{--grace} seconds, what is left is
    requeued, nothing is lost.
    """

    timeout = 90

    queue_prefix = "txmsg-worker-term"

    def start_task(self, worker: WorkerProcess, task: str, seconds: float) -> str:
        """
        Submit one task and wait until the worker runs it.
        """
        task_id = self.client.submit(self.queue, task, seconds)
        wait_until(lambda: self.client.count(self.queue) == 0, 10, "the worker to take the task")
        time.sleep(0.5)
        worker.assert_running()
        return task_id

    def test_task_finishes_within_grace(self) -> None:
        """
        SIGTERM during a 5-second thread task with C{--grace 10}: the task
        finishes, its result is delivered, the process exits cleanly once it
        is done (not before, not after the grace period), and the queue is
        empty.
        """
        w = self.worker("--grace", "10")
        task_id = self.start_task(w, "sleep", 5)
        started = time.monotonic()
        status = w.terminate(timeout=30)
        took = elapsed_since(started)
        w.assert_clean_stop(status)
        self.assertTrue(3.5 < took < 9, "stopped after {:.1f}s".format(took))
        replies = self.client.collect(1, 5)
        self.assertEqual(replies[0][0], task_id)
        self.assertEqual(replies[0][1]["status"], "ok")
        self.assertEqual(replies[0][1]["result"]["value"], 5)
        self.assertEqual(self.client.count(self.queue), 0)

    def test_short_grace_requeues(self) -> None:
        """
        SIGTERM during a 5-second coroutine task with C{--grace 1}: the
        worker stops after about a second without a result, the task is back
        in the queue, and a restarted worker runs it (as a redelivery).
        """
        w = self.worker("--grace", "1")
        task_id = self.start_task(w, "wait", 5)
        started = time.monotonic()
        status = w.terminate(timeout=30)
        took = elapsed_since(started)
        w.assert_clean_stop(status)
        self.assertLess(took, 4, "stopped after {:.1f}s".format(took))
        self.assertIn("Grace period over", w.log())
        self.assertEqual(self.client.count(self.queue), 1)
        self.assertEqual(self.client.replies, [])

        again = self.worker("--grace", "10")
        replies = self.client.collect(1, 15)
        self.assertEqual(replies[0][0], task_id)
        self.assertEqual(replies[0][1]["result"]["value"], 5)
        self.assertTrue(replies[0][1]["result"]["redelivered"])
        again.assert_clean_stop(again.terminate())
        self.assertEqual(self.client.count(self.queue), 0)

    def test_short_grace_thread_task(self) -> None:
        """
        A thread task cannot be interrupted: with C{--grace 1} its delivery is
        requeued when the grace period ends, but the process only exits once
        the thread returns (the thread pool is joined); its late result is
        discarded, and a restarted worker runs the task again.
        """
        w = self.worker("--grace", "1")
        task_id = self.start_task(w, "sleep", 4)
        started = time.monotonic()
        w.process.send_signal(signal.SIGTERM)
        wait_until(lambda: self.client.count(self.queue) == 1, 5, "the task to be requeued")
        requeued = elapsed_since(started)
        status = w.process.wait(30)
        w.assert_clean_stop(status)
        self.assertLess(requeued, 3, "requeued after {:.1f}s".format(requeued))
        self.assertEqual(self.client.replies, [])
        again = self.worker("--grace", "10")
        replies = self.client.collect(1, 15)
        self.assertEqual(replies[0][0], task_id)
        self.assertTrue(replies[0][1]["result"]["redelivered"])
        again.assert_clean_stop(again.terminate())

    def test_second_sigterm_stops_at_once(self) -> None:
        """
        A second SIGTERM cuts a 30-second grace period short: the running
        task is requeued (not acked) and the process exits cleanly at once.
        """
        w = self.worker("--grace", "30")
        self.start_task(w, "wait", 20)
        started = time.monotonic()
        w.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping: waiting up to" in w.log(), 5, "the drain to start")
        w.process.send_signal(signal.SIGTERM)
        status = w.process.wait(30)
        took = elapsed_since(started)
        w.assert_clean_stop(status)
        self.assertLess(took, 4, "stopped after {:.1f}s".format(took))
        self.assertIn("Second signal", w.log())
        self.assertEqual(self.client.count(self.queue), 1)


class SigtermRedisTests(RedisBroker, SigtermTests):
    """
    The same on Redis Streams.
    """
