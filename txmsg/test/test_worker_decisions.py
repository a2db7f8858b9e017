# -*- test-case-name: txmsg.test.test_worker_decisions -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.decisions}: plain values in, a decision out.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from txmsg.worker.decisions import (
    Ack,
    Broken,
    Cancelled,
    DeadLetter,
    DeliveryFacts,
    Duplicate,
    Failed,
    Rejected,
    Reply,
    Requeue,
    Retry,
    Succeeded,
    admit,
    decide,
    hand_back,
)
from txmsg.worker.retry import RetryPolicy

POLICY = RetryPolicy(max_retries=2, initial_delay=1, jitter=0.5)
FACTS = DeliveryFacts("work", task_id="t1")


class DecideTests(SynchronousTestCase):
    """
    L{decide} turns an outcome into a decision.
    """

    def test_success_without_reply_to_acks(self) -> None:
        """A task that succeeded, with nobody waiting for it, is just acked."""
        self.assertEqual(decide(FACTS, Succeeded(5), POLICY), Ack())

    def test_success_replies(self) -> None:
        """With C{reply_to}, the result is the reply."""
        decision = decide(DeliveryFacts("work", "t1", has_reply_to=True), Succeeded(5), POLICY)
        assert isinstance(decision, Reply)
        self.assertEqual(json.loads(decision.body), {"id": "t1", "status": "ok", "result": 5})

    def test_unserializable_result(self) -> None:
        """A result JSON cannot carry becomes an error reply, not an exception."""
        decision = decide(DeliveryFacts("w", "t", has_reply_to=True), Succeeded(object()), POLICY)
        assert isinstance(decision, Reply)
        self.assertEqual(json.loads(decision.body)["error"]["type"], "UnserializableResult")

    def test_failure_retries_with_jitter(self) -> None:
        """A failure within the retry budget is retried after the step delay, jittered."""
        decision = decide(FACTS, Failed("KeyError", "x"), POLICY, jitter=0.5)
        self.assertEqual(decision, Retry(1.0, 1, 750, error="KeyError: x"))

    def test_last_failure_dead_letters(self) -> None:
        """After C{max_retries} retries a failure is dead-lettered with the attempt count."""
        facts = DeliveryFacts("work", "t1", attempts=2, has_reply_to=True)
        decision = decide(facts, Failed("KeyError", "x", "tb"), POLICY)
        assert isinstance(decision, DeadLetter)
        self.assertEqual((decision.reason, decision.attempts), ("failed", 3))
        assert decision.reply is not None
        self.assertEqual(json.loads(decision.reply)["error"]["type"], "KeyError")

    def test_timeout_reply_type(self) -> None:
        """A task that ran over its time limit is replied to as C{TaskTimeout}."""
        facts = DeliveryFacts("work", "t1", attempts=2, has_reply_to=True)
        decision = decide(facts, Failed("CancelledError", "", timed_out=True), POLICY)
        assert isinstance(decision, DeadLetter) and decision.reply is not None
        self.assertEqual(json.loads(decision.reply)["error"]["type"], "TaskTimeout")

    def test_rejected_dead_letters_at_once(self) -> None:
        """A rejected delivery is dead-lettered with its reason, never retried."""
        decision = decide(FACTS, Rejected("bad-headers", "BadHeaders", "why", "BadHeaders"), POLICY)
        self.assertEqual(decision, DeadLetter("bad-headers", "BadHeaders", "why"))

    def test_cancelled(self) -> None:
        """A task cancelled by a control command is dead-lettered as C{cancelled}."""
        decision = decide(FACTS, Cancelled("stop-job"), POLICY)
        assert isinstance(decision, DeadLetter)
        self.assertEqual(
            (decision.reason, decision.error_message), ("cancelled", "cancelled by stop-job")
        )

    def test_shutdown_requeues(self) -> None:
        """
        A task that started and was cancelled because the grace period
        ended is requeued counted: it may have had side effects.
        """
        self.assertEqual(decide(FACTS, Cancelled("shutdown"), POLICY), Requeue())
        self.assertTrue(decide(FACTS, Cancelled("shutdown", started=True), POLICY).counted)

    def test_shutdown_before_start_is_not_counted(self) -> None:
        """
        A task that never started (it waited for a thread) is handed back
        uncounted, with the runs it had so far, even at C{max_retries=0}.
        """
        facts = DeliveryFacts("work", task_id="t1", attempts=2)
        decision = decide(facts, Cancelled("shutdown", started=False), RetryPolicy(max_retries=0))
        self.assertEqual(decision, Requeue(counted=False, attempts=2))

    def test_hand_back_counts_an_uncounted_redelivery(self) -> None:
        """
        Handing back a classic queue's redelivery counts it (as L{admit}
        would) and keeps the mark; a quorum queue's count is already in.
        """
        classic = DeliveryFacts("work", attempts=1, redelivered=True)
        self.assertEqual(hand_back(classic), Requeue(counted=False, attempts=2, redelivered=True))
        quorum = DeliveryFacts("work", attempts=1, redelivered=True, counted=True)
        self.assertEqual(hand_back(quorum), Requeue(counted=False, attempts=1, redelivered=True))

    def test_duplicate_acks(self) -> None:
        """An idempotent task that already ran is acked."""
        self.assertEqual(decide(FACTS, Duplicate(), POLICY), Ack())

    def test_internal_error_dead_letters(self) -> None:
        """An error outside the task is dead-lettered as C{internal-error:<type>}."""
        decision = decide(FACTS, Broken("RecursionError", "too deep"), POLICY)
        assert isinstance(decision, DeadLetter)
        self.assertEqual(decision.reason, "internal-error:RecursionError")

    def test_transient_error_retries_later(self) -> None:
        """A transient error outside the task is retried after a delay, counted."""
        decision = decide(FACTS, Broken("ConnectionLost", "gone", transient=True), POLICY)
        self.assertEqual(decision, Retry(1.0, 1, 1000, error="ConnectionLost: gone"))

    def test_transient_error_past_the_budget(self) -> None:
        """A transient error on the last allowed delivery dead-letters (C{delivery-limit})."""
        facts = DeliveryFacts("work", "t1", attempts=2)
        decision = decide(facts, Broken("ConnectionLost", "gone", transient=True), POLICY)
        assert isinstance(decision, DeadLetter)
        self.assertEqual(decision.reason, "delivery-limit")

    def test_facts_attempt(self) -> None:
        """The run number is one more than the runs before."""
        self.assertEqual(DeliveryFacts("q", attempts=4).attempt, 5)


class AdmitTests(SynchronousTestCase):
    """
    L{admit} caps how often one message is delivered.
    """

    def test_first_delivery_runs(self) -> None:
        """A fresh message runs."""
        self.assertIsNone(admit(FACTS, 2))

    def test_redelivered_uncounted_is_counted_first(self) -> None:
        """
        A message the broker redelivered without counting (classic queues)
        goes back to the queue once with the delivery counted, marked as
        redelivered, instead of running.
        """
        facts = DeliveryFacts("work", "t1", attempts=1, redelivered=True)
        self.assertEqual(admit(facts, 3), Retry(0.0, 2, redelivered=True, error="redelivered"))

    def test_counted_redelivery_runs(self) -> None:
        """When the broker counts deliveries, a redelivered message just runs."""
        self.assertIsNone(
            admit(DeliveryFacts("w", "t", attempts=2, redelivered=True, counted=True), 2)
        )

    def test_limit(self) -> None:
        """
        A message delivered C{max_retries + 1} times already is dead-lettered
        with reason C{delivery-limit}, and an error reply when asked for.
        """
        for facts in [
            DeliveryFacts("work", "t1", attempts=3, has_reply_to=True),
            DeliveryFacts("work", "t1", attempts=2, redelivered=True, has_reply_to=True),
        ]:
            decision = admit(facts, 2)
            assert isinstance(decision, DeadLetter)
            self.assertEqual((decision.reason, decision.attempts), ("delivery-limit", 3))
            self.assertIsNotNone(decision.reply)

    def test_runs_bounded(self) -> None:
        """
        Whatever the broker does, a message runs at most C{max_retries + 1}
        times: simulate a worker that dies during every run (redelivered,
        uncounted) and one that fails every run.
        """
        for max_retries in range(4):
            for crash in (True, False):
                facts, runs = DeliveryFacts("w", "t"), 0
                for _ in range(50):
                    decision = admit(facts, max_retries)
                    if isinstance(decision, DeadLetter):
                        break
                    if isinstance(decision, Retry):
                        facts = DeliveryFacts("w", "t", attempts=decision.attempts)
                        continue
                    runs += 1
                    if crash:
                        facts = DeliveryFacts("w", "t", attempts=facts.attempts, redelivered=True)
                        continue
                    policy = RetryPolicy(max_retries=max_retries, jitter=0)
                    after = decide(facts, Failed("E", "m"), policy)
                    if not isinstance(after, Retry):
                        break
                    facts = DeliveryFacts("w", "t", attempts=after.attempts)
                self.assertEqual(runs, max_retries + 1, (max_retries, crash))
