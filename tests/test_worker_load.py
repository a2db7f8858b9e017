# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: many tasks through several C{twistd -n txmsg-worker}
processes on the shared RabbitMQ, fair dispatch, and a worker killed with
SIGKILL while it holds unacked tasks.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.trial.unittest import TestCase

from tests._streams_support import RedisBroker
from tests._worker_support import (
    OneQueueMixin,
    wait_until,
)


def answered_once(test: TestCase, replies: list, ids: Any) -> dict[str, Any]:
    """
    The reply bodies by task id, checking that each task in C{ids} was
    answered exactly once.
    """
    by_id: dict[str, Any] = {}
    for correlation_id, body, _ in replies:
        test.assertNotIn(correlation_id, by_id, "duplicate reply for {}".format(correlation_id))
        by_id[correlation_id] = body
    test.assertEqual(set(by_id), set(ids))
    return by_id


class ManyTasksTests(OneQueueMixin, TestCase):
    """
    Two workers share a queue: every task runs and is acked once.
    """

    timeout = 120

    queue_prefix = "txmsg-worker-load"

    def test_thousand_tasks_two_workers_fair_dispatch(self) -> None:
        """
        1,000 tasks through two workers at prefetch 1, the first a 5-second
        blocking task: every result is correct, each task is answered exactly
        once, the queue is empty afterwards, and while one worker runs the
        slow task the other one processes tasks (the slow worker takes no
        other task meanwhile: prefetch 1 is fair dispatch).
        """
        a = self.worker("--prefetch", "1")
        b = self.worker("--prefetch", "1")
        slow = self.client.submit(self.queue, "sleep", 5)
        # Let one worker take the slow task before the rest arrive.
        wait_until(lambda: self.client.count(self.queue) == 0, 10, "the slow task to be taken")
        ids = {self.client.submit(self.queue, "square", n): n for n in range(999)}
        replies = self.client.collect(1000, 90)
        self.client.linger(1.0)
        replies = self.client.replies

        by_id = answered_once(self, replies, [*ids, slow])
        for task_id, n in ids.items():
            self.assertEqual(by_id[task_id]["status"], "ok", by_id[task_id])
            self.assertEqual(by_id[task_id]["result"]["value"], n * n)
        self.assertEqual(by_id[slow]["result"]["value"], 5)

        slow_pid = by_id[slow]["result"]["pid"]
        self.assertIn(slow_pid, (a.pid, b.pid))
        slow_done = [t for c, _, t in replies if c == slow][0]
        before = [by_id[c]["result"]["pid"] for c, _, t in replies if c != slow and t < slow_done]
        other_pid = b.pid if slow_pid == a.pid else a.pid
        self.assertEqual(
            [p for p in before if p == slow_pid], [], "the busy worker took tasks at prefetch 1"
        )
        self.assertGreater(len([p for p in before if p == other_pid]), 100)

        # Nothing left unacked: after the workers stop, the queue is empty.
        for w in (a, b):
            w.assert_clean_stop(w.terminate())
        self.assertEqual(self.client.count(self.queue), 0)
        self.assertEqual(self.client.count(self.queue + ".dead"), 0)


class KilledWorkerTests(OneQueueMixin, TestCase):
    """
    A worker killed with SIGKILL loses nothing: its unacked tasks go back to
    the queue and another worker runs them.
    """

    timeout = 120

    queue_prefix = "txmsg-worker-kill"

    def test_sigkill_with_unacked_tasks(self) -> None:
        """
        Two workers at prefetch 5 each take 5 two-second tasks; one of them is
        SIGKILLed while it holds them unacked; all 20 tasks complete, on the
        other worker (its 5 as redeliveries), none twice, and the queue ends
        empty.
        """
        a = self.worker("--prefetch", "5")
        b = self.worker("--prefetch", "5")
        ids = {self.client.submit(self.queue, "wait", 2.0) for _ in range(20)}
        wait_until(lambda: self.client.count(self.queue) == 10, 10, "both workers to hold 5 tasks")
        a.kill()
        killed_at = time.monotonic()

        replies = self.client.collect(20, 60)
        self.client.linger(1.0)
        replies = self.client.replies
        self.assertEqual(sorted(c for c, _, _ in replies), sorted(ids))
        for _, body, _ in replies:
            self.assertEqual(body["status"], "ok", body)
            self.assertEqual(body["result"]["pid"], b.pid)
        redelivered = [body for _, body, t in replies if body["result"]["redelivered"]]
        self.assertEqual(len(redelivered), 5)
        # The killed worker's tasks were not finished by it: all arrived after the kill.
        self.assertTrue(all(t > killed_at for _, _, t in replies))
        b.assert_clean_stop(b.terminate())
        self.assertEqual(self.client.count(self.queue), 0)


class ManyTasksRedisTests(RedisBroker, ManyTasksTests):
    """
    The same on Redis Streams.
    """


class KilledWorkerRedisTests(RedisBroker, KilledWorkerTests):
    """
    The same on Redis Streams: the killed worker's pending entries are
    claimed by the other worker after the visibility timeout.
    """


class Transactions:
    """Workers started with C{--transactions}: replies in the ack's transaction."""

    def worker(self, *args: str, start: bool = True) -> Any:
        return super().worker(*args, "--transactions", start=start)  # type: ignore[misc]


class ManyTasksTransactionTests(Transactions, ManyTasksTests):
    """
    The same with C{--transactions}: the client's replies go to a queue of
    its own, so each is committed with its task's ack.
    """


class KilledWorkerTransactionTests(Transactions, KilledWorkerTests):
    """
    The same with C{--transactions}: a worker killed with uncommitted work
    loses nothing.
    """


class Plain:
    """Workers started with C{--no-transactions}: replies confirmed, then acked."""

    def worker(self, *args: str, start: bool = True) -> Any:
        return super().worker(*args, "--no-transactions", start=start)  # type: ignore[misc]


class ManyTasksPlainTests(Plain, ManyTasksTests):
    """
    The same with C{--no-transactions}: each reply confirmed before its ack.
    """


class MovingConsumerTests(OneQueueMixin, TestCase):
    """
    The default worker moves its consumer to a transactional channel while
    most tasks reply to a queue, and back when they stop replying.
    """

    timeout = 120

    queue_prefix = "txmsg-worker-move"

    def test_moves_under_load_lose_nothing(self) -> None:
        """
        One worker at prefetch 20: 600 tasks replying to the client's queue,
        then 600 without a reply, submitted while it runs.  Both moves are
        logged; every task with a reply is answered exactly once and none was
        redelivered (the moves hand nothing back to the broker); the queue
        and its dead-letter queue end empty.
        """
        w = self.worker("--prefetch", "20")
        ids = {self.client.submit(self.queue, "square", n): n for n in range(600)}
        self.client.collect(600, 60)
        wait_until(lambda: "to a transactional channel" in w.log(), 10, "the move")
        for n in range(600):
            self.client.submit(self.queue, "square", n, reply=False)
        wait_until(lambda: "back to a plain channel" in w.log(), 30, "the move back")
        wait_until(lambda: self.client.count(self.queue) == 0, 30, "the queue to drain")
        self.client.linger(1.0)
        by_id = answered_once(self, self.client.replies, ids)
        for task_id, n in ids.items():
            self.assertEqual(by_id[task_id]["result"]["value"], n * n)
            self.assertFalse(by_id[task_id]["result"]["redelivered"])
        w.assert_clean_stop(w.terminate())
        self.assertEqual(self.client.count(self.queue), 0)
        self.assertEqual(self.client.count(self.queue + ".dead"), 0)


class QuorumStaysPlainTests(OneQueueMixin, TestCase):
    """
    On a quorum queue the worker does not move its consumer.
    """

    timeout = 120

    queue_prefix = "txmsg-worker-quorum-plain"

    def make_client(self) -> Any:
        client = super().make_client()
        client.declare = lambda queue: None  # the worker declares it, as a quorum queue
        return client

    def test_no_move_every_task_once(self) -> None:
        """
        600 tasks replying to the client's queue through a worker on a
        quorum queue: no move is logged, every task is answered exactly once
        and none was redelivered.
        """
        w = self.worker("--prefetch", "20", "--queue-type", "quorum")
        ids = {self.client.submit(self.queue, "square", n): n for n in range(600)}
        self.client.collect(600, 60)
        self.client.linger(1.0)
        by_id = answered_once(self, self.client.replies, ids)
        self.assertEqual([n for i, n in ids.items() if by_id[i]["result"]["redelivered"]], [])
        self.assertNotIn("moving its consumer", w.log())
        w.assert_clean_stop(w.terminate())
