# -*- test-case-name: txmsg.test.test_worker_task_times -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the worker's checks of a task's ETA and expiry
(L{txmsg.worker.task_times}), pure and on the in-memory broker.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import WorkerHarness
from txmsg.worker import TaskCatalog
from txmsg.worker.decisions import DeadLetter, Delay, DeliveryFacts
from txmsg.worker.envelope import Task, decode_result
from txmsg.worker.task_times import EXPIRED, check_times


class CheckTimesTests(SynchronousTestCase):
    """
    L{check_times}: plain values in, a decision out.
    """

    facts = DeliveryFacts("q", "t", attempts=2)

    def test_due(self) -> None:
        """
        A task without times, due, or not yet expired runs.
        """
        for task in (Task("a"), Task("a", eta=100), Task("a", eta=100.005), Task("a", expires=100)):
            self.assertIsNone(check_times(task, 100.0, self.facts))

    def test_expired(self) -> None:
        """
        A task delivered after its expiry is dead-lettered as C{expired},
        with an error reply for a caller that waits.
        """
        decision = check_times(Task("a", expires=99.5), 100.0, self.facts)
        self.assertIsInstance(decision, DeadLetter)
        self.assertEqual((decision.reason, decision.error_type), (EXPIRED, "TaskExpired"))
        self.assertIsNone(decision.reply)
        facts = DeliveryFacts("q", "t", has_reply_to=True)
        decision = check_times(Task("a", id="t", expires=99.5), 100.0, facts)
        assert isinstance(decision, DeadLetter) and decision.reply is not None
        self.assertEqual(decode_result(decision.reply).error_type, "TaskExpired")

    def test_early(self) -> None:
        """
        A task delivered before its ETA goes back to the broker for the
        rest of the wait, its attempt count unchanged (an uncounted
        L{Delay}).
        """
        decision = check_times(Task("a", eta=101.5), 100.0, self.facts)
        self.assertEqual(decision, Delay(1.5, 2))
        redelivered = DeliveryFacts("q", "t", attempts=2, redelivered=True)
        decision = check_times(Task("a", eta=200), 100.0, redelivered)
        self.assertEqual(decision, Delay(100.0, 3, redelivered=True))

    def test_expiry_first(self) -> None:
        """
        An expired task is not delayed.
        """
        decision = check_times(Task("a", eta=200, expires=50), 100.0, self.facts)
        self.assertIsInstance(decision, DeadLetter)


class WorkerTests(SynchronousTestCase):
    """
    The checks in the real worker.
    """

    def setUp(self) -> None:
        tasks = TaskCatalog()

        @tasks.task
        def add(a: int, b: int) -> int:
            return a + b

        self.h = WorkerHarness(tasks)
        self.h.advance(100)

    def tearDown(self) -> None:
        self.successResultOf(self.h.stop())

    def test_expired_not_run(self) -> None:
        """
        A task whose expiry passed while it was queued does not run; it is
        dead-lettered as C{expired}.
        """
        self.h.worker.pause()
        self.h.advance(0)
        d = self.h.client.send("add", (1, 2), expires=10)
        self.h.advance(0)
        ref = self.successResultOf(d)
        self.h.advance(11)
        self.h.worker.resume()
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(ref.id), 0)
        [dead] = self.h.dead_letters()
        self.assertEqual((dead.id, dead.reason, dead.attempts), (ref.id, "expired", None))

    def test_eta(self) -> None:
        """
        A task with an ETA 10 s ahead runs when it is due, not earlier, and
        its first run is attempt 1.
        """
        d = self.h.client.send("add", (1, 2), eta=110.0)
        self.h.advance(0)
        ref = self.successResultOf(d)
        self.h.advance(9.9)
        self.assertEqual(self.h.attempts(ref.id), 0)
        self.h.advance(0.1)
        self.assertEqual(self.h.runs, [(ref.id, "add", 1)])
