# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What became of each delivery: the worker's counters (L{WorkerStats}) and
its log, one entry per delivery.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.worker._stats import WorkerStats
from txmsg.worker.decisions import (
    MALFORMED,
    UNKNOWN_TASK,
    Cancelled,
    DeadLetter,
    Decision,
    DeliveryFacts,
    Duplicate,
    Failed,
    Outcome,
    Rejected,
    Requeue,
    Retry,
    Succeeded,
)

__all__ = ["DeliveryReport"]


class DeliveryReport:
    """
    Count and log the outcome and decision of each delivery.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def report(
        self,
        facts: DeliveryFacts,
        label: str,
        outcome: Outcome | Decision,
        decision: Decision,
        failure: Failure | None,
    ) -> None:
        """
        Count what became of a delivery and log it, once.
        """
        stats, queue = self.stats, facts.queue
        if isinstance(outcome, Succeeded):
            stats.succeeded += 1
            stats.record(queue, label, "succeeded")
            return
        if isinstance(outcome, Duplicate):
            stats.duplicates += 1
            stats.record(queue, label, "duplicate")
            self.log.info(
                "Skipping task {id} ({name}): it already ran (idempotency key)",
                id=facts.task_id,
                name=label,
            )
            return
        if isinstance(decision, Requeue):
            stats.requeued += 1
            stats.record(queue, label, "requeued")
            return
        if isinstance(outcome, Cancelled):
            stats.cancelled += 1
        elif isinstance(outcome, Failed):
            stats.timed_out += int(outcome.timed_out)
            stats.failed += 1
        elif isinstance(outcome, Rejected):
            if outcome.reason == UNKNOWN_TASK:
                stats.unknown += 1
            else:
                stats.malformed += 1
        if isinstance(decision, Retry):
            self._report_retry(facts, label, decision, outcome)
        elif isinstance(decision, DeadLetter):
            stats.dead_lettered += 1
            stats.record(queue, label, "dead_lettered", decision.reason)
            self._log_dead_letter(facts, label, decision, failure)

    def _report_retry(
        self, facts: DeliveryFacts, label: str, retry: Retry, outcome: Outcome | Decision
    ) -> None:
        if retry.redelivered:
            self.log.info(
                "Task {id} ({name}) was redelivered: counting it as run {n} and queueing it again",
                id=facts.task_id,
                name=label,
                n=retry.attempts,
            )
            return
        self.stats.retried += 1
        self.stats.record(facts.queue, label, "retried")
        self.log.warn(
            "Task {task} {id} failed on attempt {attempt} ({error}); retrying in {delay}s",
            task=label,
            id=facts.task_id,
            attempt=retry.attempts,
            error=retry.error,
            delay=retry.delay,
        )

    def _log_dead_letter(
        self, facts: DeliveryFacts, label: str, dead: DeadLetter, failure: Failure | None
    ) -> None:
        if dead.reason == "failed" and failure is not None:
            self.log.failure(
                "Task {task} {id} failed on its last attempt ({attempt}); dead-lettering it",
                failure,
                task=label,
                id=facts.task_id,
                attempt=dead.attempts,
            )
        elif dead.reason == MALFORMED:
            self.log.warn(
                "Dead-lettering a malformed message from {queue}: {reason}",
                queue=facts.queue,
                reason=dead.error_message,
            )
        elif dead.reason != "cancelled" and not dead.reason.startswith("internal-error"):
            self.log.warn(
                "Dead-lettering task {id} from {queue} ({reason}): {message}",
                id=facts.task_id,
                queue=facts.queue,
                reason=dead.reason,
                message=dead.error_message,
            )
