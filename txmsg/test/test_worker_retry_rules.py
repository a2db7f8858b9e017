# -*- test-case-name: txmsg.test.test_worker_retry_rules -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for per-task retry rules (L{txmsg.worker.retry_rules}): the rules,
the decision they lead to, and the worker on the in-memory broker.
"""

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import WorkerHarness
from txmsg.worker import TaskCatalog
from txmsg.worker.decisions import DeadLetter, DeliveryFacts, Failed, Retry, decide
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.retry_rules import NOT_RETRIED, Backoff, RetryRules
from txmsg.worker.retry_rules import Retry as RetryTask


class RulesTests(SynchronousTestCase):
    """
    L{RetryRules.retries}.
    """

    def test_default(self) -> None:
        """
        By default everything is retried but errors of the arguments or the
        code (L{NOT_RETRIED}, subclasses included).
        """
        rules = RetryRules()
        for error in (OSError(), ConnectionError(), RuntimeError(), TimeoutError(), Exception()):
            self.assertTrue(rules.retries(error), error)
        for error in (ValueError(), KeyError(), TypeError(), ZeroDivisionError(), AssertionError()):
            self.assertFalse(rules.retries(error), error)
        self.assertIn(ValueError, NOT_RETRIED)

    def test_retry_for(self) -> None:
        """
        C{retry_for} retries only those (the default list no longer
        applies).
        """
        rules = RetryRules(retry_for=(IOError, ValueError))
        self.assertTrue(rules.retries(ConnectionError()))
        self.assertTrue(rules.retries(ValueError()))
        self.assertFalse(rules.retries(RuntimeError()))

    def test_dont_retry_for(self) -> None:
        """
        C{dont_retry_for} wins over C{retry_for} and replaces the default
        list.
        """
        rules = RetryRules(retry_for=(OSError,), dont_retry_for=(FileNotFoundError,))
        self.assertFalse(rules.retries(FileNotFoundError()))
        self.assertTrue(rules.retries(ConnectionError()))
        everything = RetryRules(dont_retry_for=())
        self.assertTrue(everything.retries(ValueError()))

    def test_retry_always(self) -> None:
        """
        C{raise Retry} is retried whatever the rules say.
        """
        self.assertTrue(RetryRules(retry_for=(OSError,)).retries(RetryTask(5)))

    def test_bad_rules(self) -> None:
        """
        Rules name exception classes; Retry delays are numbers >= 0.
        """
        self.assertRaises(TypeError, RetryRules, retry_for=("IOError",))
        self.assertRaises(ValueError, RetryTask, -1)
        self.assertRaises(ValueError, RetryTask, float("nan"))

    def test_backoff(self) -> None:
        """
        L{Backoff} is a retry policy: doubling from C{base} up to C{max},
        jitter 10% or none.
        """
        policy = Backoff(base=1, max=600, jitter=True).policy(12)
        self.assertEqual([policy.step_delay(n) for n in (1, 2, 10, 11)], [1, 2, 512, 600])
        self.assertEqual(policy.jitter, 0.1)
        self.assertEqual(Backoff(jitter=False).policy(1).jitter, 0)
        self.assertRaises(ValueError, Backoff(base=10, max=1).policy, 1)


class DecisionTests(SynchronousTestCase):
    """
    What C{decide} makes of a failure the rules do not retry, or of a
    requested delay.
    """

    policy = RetryPolicy(max_retries=3, initial_delay=1, jitter=0)

    def test_not_retried(self) -> None:
        """
        A failure the rules do not retry is dead-lettered on its first run.
        """
        facts = DeliveryFacts("q", "t")
        decision = decide(facts, Failed("ValueError", "bad input", retry=False), self.policy)
        self.assertIsInstance(decision, DeadLetter)
        self.assertEqual((decision.reason, decision.attempts), ("failed", 1))

    def test_requested_delay(self) -> None:
        """
        C{Retry(delay=3)} waits exactly 3 s (no jitter), counted as a run.
        """
        decision = decide(DeliveryFacts("q", "t"), Failed("Retry", "", delay=3), self.policy)
        self.assertEqual(decision, Retry(3, 1, error="Retry: "))
        decision = decide(DeliveryFacts("q", "t"), Failed("Retry", "", delay=9999), self.policy)
        self.assertEqual((decision.delay, decision.expiration_ms), (9999, None))

    def test_max_retries_still_bounds(self) -> None:
        """
        A requested retry counts: past C{max_retries} it is dead-lettered.
        """
        facts = DeliveryFacts("q", "t", attempts=3)
        decision = decide(facts, Failed("Retry", "", delay=1), self.policy)
        self.assertIsInstance(decision, DeadLetter)


class WorkerTests(SynchronousTestCase):
    """
    The rules in the real worker.
    """

    def setUp(self) -> None:
        tasks = TaskCatalog()
        self.calls: list[str] = []

        @tasks.task
        def bad_input() -> None:
            self.calls.append("bad_input")
            raise ValueError("bad input")

        @tasks.task
        def flaky() -> None:
            self.calls.append("flaky")
            raise ConnectionError("gateway timeout")

        @tasks.task(
            retry_for=(OSError,), max_retries=5, backoff=Backoff(base=2, max=8, jitter=False)
        )
        def fetch(kind: str) -> None:
            self.calls.append("fetch")
            raise (OSError if kind == "io" else RuntimeError)(kind)

        @tasks.task(max_retries=2)
        def later(*, context: Any) -> int:
            if context.attempt == 1:
                raise RetryTask(delay=1.5)
            return context.attempt

        self.h = WorkerHarness(tasks, retry=RetryPolicy(max_retries=3, initial_delay=1, jitter=0))

    def tearDown(self) -> None:
        self.successResultOf(self.h.stop())

    def test_value_error_not_retried(self) -> None:
        """
        A C{ValueError} runs once and is dead-lettered at once.
        """
        task_id = self.h.submit("bad_input")
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(task_id), 1)
        [dead] = self.h.dead_letters()
        self.assertEqual((dead.reason, dead.error_type, dead.attempts), ("failed", "ValueError", 1))

    def test_transient_error_retried(self) -> None:
        """
        A C{ConnectionError} is retried by the worker's policy.
        """
        task_id = self.h.submit("flaky")
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(task_id), 4)

    def test_retry_for_and_backoff(self) -> None:
        """
        C{retry_for} picks what is retried; the task's backoff sets the
        waits (2, 4, 8, 8, 8 s) and its C{max_retries} the count.
        """
        io = self.h.submit("fetch", "io")
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(io), 6)
        waits = [r["expiration_ms"] for r in self.h.retries(io)]
        self.assertEqual(waits, [2000, 4000, 8000, 8000, 8000])
        other = self.h.submit("fetch", "other")
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(other), 1)

    def test_raise_retry(self) -> None:
        """
        C{raise Retry(delay=1.5)} runs the task again no earlier than 1.5 s
        later.
        """
        task_id = self.h.submit("later")
        self.h.advance(1.4)
        self.assertIsNone(self.h.outcome(task_id))
        self.h.advance(0.1)
        self.assertEqual(self.h.result(task_id), 2)
