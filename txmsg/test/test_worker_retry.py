# -*- test-case-name: txmsg.test.test_worker_retry -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.retry}.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg.worker.retry import RetryPolicy, dead_letter_queue_name, retry_queue_name


class RetryPolicyTests(SynchronousTestCase):
    """
    Tests for L{RetryPolicy}.
    """

    def test_exponential_capped(self) -> None:
        """
        Delays grow by C{factor} from C{initial_delay} and stop at C{max_delay}.
        """
        p = RetryPolicy(max_retries=6, initial_delay=1, factor=3, max_delay=30)
        self.assertEqual([p.step_delay(r) for r in range(1, 7)], [1, 3, 9, 27, 30, 30])
        self.assertEqual(p.steps(), [1, 3, 9, 27, 30])

    def test_should_retry(self) -> None:
        """
        A task gets C{max_retries} retries after its first attempt.
        """
        p = RetryPolicy(max_retries=2)
        self.assertEqual([p.should_retry(a) for a in (1, 2, 3)], [True, True, False])
        self.assertFalse(RetryPolicy(max_retries=0).should_retry(1))
        self.assertEqual(RetryPolicy(max_retries=0).steps(), [])

    def test_jitter_shortens_never_lengthens(self) -> None:
        """
        The expiration lies between C{(1 - jitter)} of the step and the step.
        """
        p = RetryPolicy(initial_delay=10, jitter=0.2)
        self.assertEqual(p.expiration_ms(1, lambda: 0.0), 10000)
        self.assertEqual(p.expiration_ms(1, lambda: 0.5), 9000)
        self.assertEqual(p.expiration_ms(1, lambda: 0.999999), 8000)
        self.assertEqual(RetryPolicy(jitter=0).expiration_ms(2, lambda: 0.7), 2000)

    def test_invalid(self) -> None:
        """
        Nonsense settings are refused.
        """
        bad: list[dict[str, object]] = [
            {"max_retries": -1},
            {"initial_delay": 0},
            {"initial_delay": 10, "max_delay": 5},
            {"factor": 0.5},
            {"jitter": 1},
        ]
        for kw in bad:
            self.assertRaises(ValueError, RetryPolicy, **kw)
        self.assertRaises(ValueError, RetryPolicy().step_delay, 0)

    def test_queue_names(self) -> None:
        """
        Step queues are named by their delay in milliseconds; the dead-letter
        queue by the work queue.
        """
        self.assertEqual(retry_queue_name("tasks", 1.5), "tasks.retry.1500ms")
        self.assertEqual(retry_queue_name("tasks", 300), "tasks.retry.300000ms")
        self.assertEqual(dead_letter_queue_name("tasks"), "tasks.dead")
