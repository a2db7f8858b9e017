# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Testing a task module without RabbitMQ: the real worker runs on an in-memory
broker and a clock.  Run with
C{python -m twisted.trial examples.test_example_tasks}.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import WorkerHarness


class ExampleTasksTests(SynchronousTestCase):
    """The tasks of L{examples.example_tasks}."""

    def setUp(self) -> None:
        self.worker = WorkerHarness("examples.example_tasks")

    def tearDown(self) -> None:
        self.successResultOf(self.worker.stop())

    def test_add(self) -> None:
        """add returns the sum."""
        task_id = self.worker.submit("add", 2, 3)
        self.assertEqual(self.worker.result(task_id), 5)

    def test_charge_is_retried(self) -> None:
        """A failed charge waits 1 s in the broker's delay levels, then succeeds."""
        task_id = self.worker.submit("charge", "order-1", 30)
        self.assertIsNone(self.worker.outcome(task_id))  # failed once, waiting
        self.assertEqual(self.worker.retries(task_id)[0]["queue"], "tasks")
        self.worker.advance(1.0)
        self.assertEqual(
            self.worker.result(task_id), {"order": "order-1", "charged": 30, "attempt": 2}
        )

    def test_bad_charge_is_dead_lettered(self) -> None:
        """Bad input (a ValueError) is not retried: dead-lettered at once."""
        task_id = self.worker.submit("charge", "order-2", -1)
        self.worker.run_until_idle()
        self.assertEqual(self.worker.attempts(task_id), 1)
        [dead] = self.worker.dead_letters()
        self.assertEqual(
            (dead.id, dead.reason, dead.error_type, dead.attempts),
            (task_id, "failed", "ValueError", 1),
        )

    def test_through_the_task_client(self) -> None:
        """The real TaskClient gets the result too."""
        d = self.worker.call("add", 40, 2)
        self.assertEqual(self.successResultOf(d), 42)
