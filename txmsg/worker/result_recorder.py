# -*- test-case-name: txmsg.test.test_worker_results -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's side of the result store: record each task's status as the
delivery pipeline moves it on, and refuse revoked tasks.

The pipeline calls three methods:

  - L{ResultRecorder.revoked} before a task runs: a local set lookup, no
    round trip (the set is loaded from Redis at start and after each
    reconnect, and fed by the revoke broadcast);
  - L{ResultRecorder.started} when it starts: the write is sent, not
    awaited, so the run does not wait for Redis; its reply cancels the run
    when the task was revoked meanwhile;
  - L{ResultRecorder.settling} with the decision, before it is settled on
    the broker: the one awaited write per task, so the result is stored
    before the message is acked.

What each outcome records is L{status_for}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._lograte import should_log
from txmsg.worker._lifecycle import one_line
from txmsg.worker.decisions import (
    Ack,
    Broken,
    Cancelled,
    DeadLetter,
    Decision,
    DeliveryFacts,
    Duplicate,
    Failed,
    Outcome,
    Rejected,
    Reply,
    Requeue,
    Retry,
    Succeeded,
)
from txmsg.worker.envelope import encode_error
from txmsg.worker.results import REVOKE_CHANNEL, RedisResultStore
from txmsg.worker.states import (
    DEAD_LETTERED,
    EXPIRED,
    FAILED,
    RETRYING,
    REVOKED,
    STARTED,
    SUCCEEDED,
    TERMINAL,
)
from txmsg.worker.tasks import TaskContext

__all__ = ["REVOKE_REASON", "ResultRecorder", "revoked_decision", "status_for"]

#: The dead-letter reason (and cancel reason) of a revoked task.
REVOKE_REASON = "revoked"
#: The dead-letter reason of a task delivered after its expiry.
EXPIRED_REASON = "expired"


def status_for(outcome: Outcome | Decision, decision: Decision) -> str | None:
    """
    The status a settled delivery records, or L{None} for none (a
    duplicate of an idempotent task, a delivery handed back unchanged).
    """
    if isinstance(outcome, Duplicate) or isinstance(decision, Requeue):
        return None
    if isinstance(decision, Retry):
        return RETRYING
    if isinstance(decision, DeadLetter):
        if decision.reason == EXPIRED_REASON:
            return EXPIRED
        if decision.reason == REVOKE_REASON:
            return REVOKED
        if isinstance(outcome, Cancelled) and outcome.because == REVOKE_REASON:
            return REVOKED
        if decision.reason == "failed":
            return FAILED
        return DEAD_LETTERED
    if isinstance(outcome, Succeeded):
        return SUCCEEDED
    return None


def revoked_decision(facts: DeliveryFacts) -> DeadLetter:
    """
    What becomes of a delivery of a revoked task: dead-lettered with reason
    C{revoked} (so a mistaken revoke can be undone by requeueing it), the
    caller, if waiting, told C{TaskRevoked}.
    """
    message = "task {} was revoked".format(facts.task_id)
    reply = (
        encode_error(facts.task_id or "", "TaskRevoked", message) if facts.has_reply_to else None
    )
    return DeadLetter(REVOKE_REASON, "TaskRevoked", message, attempts=facts.attempts, reply=reply)


def _error_of(outcome: Outcome | Decision, decision: Decision) -> tuple[str | None, str | None]:
    if isinstance(outcome, (Failed, Rejected, Broken)):
        return outcome.error_type, outcome.message
    if isinstance(outcome, Cancelled):
        return outcome.error_type, "cancelled by " + outcome.because
    if isinstance(decision, DeadLetter):
        return decision.error_type, decision.error_message
    if isinstance(decision, Retry):
        return "Retry", decision.error or None
    return None, None


class ResultRecorder:
    """
    Record task states for one worker; keep the local set of revoked ids.

    @ivar store: the L{RedisResultStore}.
    @ivar revoked_ids: task id -> when its revoke lapses (store time).
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self,
        store: RedisResultStore,
        worker_name: str,
        running: Callable[[], Mapping[str, TaskContext]],
        retry_delay: float = 1.0,
    ) -> None:
        """
        @param running: the worker's running tasks by id (a revoke cancels
            the one it names).
        @param retry_delay: seconds before a task whose result could not be
            stored runs again (a delay the broker has a queue for).
        """
        self.retry_delay = retry_delay
        self.store = store
        self.worker_name = worker_name
        self.running = running
        self.revoked_ids: dict[str, float] = {}
        self._subscription: Any = None
        self._hooked = False
        # Starts not sent yet (task id -> context, time), and the call that
        # sends them.
        self._starting: dict[str, tuple[TaskContext, float]] = {}
        #: Start writes that failed (logged rate-limited).
        self.start_failures = 0
        #: Status writes before settling that failed (logged rate-limited).
        self.write_failures = 0
        self._flush: Any = None

    # -- revoked ids -----------------------------------------------------------

    def start(self) -> None:
        """
        Listen to revokes and load the revoked set (again after each
        reconnect of the subscriber connection).
        """
        pubsub = self.store.redis.pubsub
        if not self._hooked:
            self._hooked = True
            pubsub.add_connect_hook(self.load)
        if self._subscription is None:
            self._subscription = sub = self.store.redis.subscribe(
                REVOKE_CHANNEL, self._on_revoke, data_only=True
            )
            sub.when_active().addCallbacks(
                lambda _: self.log.info(
                    "Recording task states; listening for revokes on {channel}",
                    channel=REVOKE_CHANNEL,
                ),
                lambda f: None,  # stopped before Redis answered
            )
        if pubsub.ready:
            self.load()

    def stop(self) -> None:
        """Stop listening to revokes; starts not sent yet are dropped."""
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush, self._starting = None, {}
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.cancel()

    def load(self) -> Any:
        """Read the revoked set from Redis (a failure is logged)."""

        def loaded(ids: dict[str, float]) -> None:
            self.revoked_ids.update(ids)

        def failed(failure: Failure) -> None:
            self.log.warn("Could not load the revoked task ids: {error}", error=one_line(failure))

        return self.store.revoked().addCallbacks(loaded, failed)

    def _on_revoke(self, data: Any) -> None:
        task_id = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        self.revoked_ids[task_id] = self.store.now() + self.store.revoke_ttl
        context = self.running().get(task_id)
        if context is not None and context.cancel(REVOKE_REASON):
            self.log.info("Revoked task {id}: cancelled", id=task_id)

    def revoked(self, task_id: str) -> bool:
        """
        Whether C{task_id} is revoked (a local lookup; lapsed revokes are
        forgotten here).
        """
        until = self.revoked_ids.get(task_id)
        if until is None:
            return False
        if until <= self.store.now():
            del self.revoked_ids[task_id]
            return False
        return True

    # -- recording ---------------------------------------------------------------

    def started(self, context: TaskContext) -> None:
        """
        Record that C{context}'s task started: two reactor turns later,
        sent and not awaited.  A task settled before then (a quick one: a
        task on the reactor usually settles in the turn its message
        arrived) has its start recorded with its end, in one write.  When
        the store says the task is already revoked, the run is cancelled.
        """
        self._starting[context.task.id] = (context, self.store.now())
        if self._flush is None:
            self._flush = self.store.clock.callLater(0, self._next_turn)

    def _next_turn(self) -> None:
        self._flush = self.store.clock.callLater(0, self._send_starts)

    def _send_starts(self) -> None:
        self._flush = None
        starting, self._starting = self._starting, {}
        for context, when in starting.values():
            self._send_start(context, when)

    def _start_fields(self, context: TaskContext, when: float) -> dict[str, Any]:
        return {
            "task": context.task.name,
            "attempts": context.attempt,
            "started": when,
            "worker": self.worker_name,
        }

    def _send_start(self, context: TaskContext, when: float) -> None:
        task = context.task
        try:
            d = self.store.record(task.id, STARTED, **self._start_fields(context, when))
        except Exception:
            self.log.failure("Recording the start of task {id} failed", id=task.id)
            return

        def stored(status: str) -> None:
            if status == REVOKED and context.cancel(REVOKE_REASON):
                self.log.info("Task {id} was revoked: cancelled", id=task.id)
            elif status in TERMINAL and status != REVOKED:
                self.log.warn(
                    "Task {id} already {status} in the result store; this run's status "
                    "is not recorded",
                    id=task.id,
                    status=status,
                )

        def failed(failure: Failure) -> None:
            self.start_failures += 1
            if should_log(self.start_failures):  # a Redis outage: not one line per task
                self.log.warn(
                    "Could not record the start of task {id}: {error} ({n} so far)",
                    id=task.id,
                    error=one_line(failure),
                    n=self.start_failures,
                )

        d.addCallbacks(stored, failed)

    async def settling(
        self,
        facts: DeliveryFacts,
        task_name: str | None,
        outcome: Outcome | Decision,
        decision: Decision,
    ) -> Decision:
        """
        Record the status C{decision} leads to, before it is settled.

        @return: the decision to settle: C{decision}, with a revoked task's
            cancellation named C{revoked}; or, when a C{succeeded} result
            could not be stored, a L{Retry} (at-least-once: the task runs
            again rather than finish without its result).
        """
        status = status_for(outcome, decision)
        task_id = facts.task_id
        if status is None or task_id is None:
            return decision
        if status == REVOKED and isinstance(decision, DeadLetter):
            # A cancelled run is dead-lettered (and replied to) as revoked.
            decision = replace(
                revoked_decision(facts), attempts=decision.attempts, traceback=decision.traceback
            )
        # Few fields, as each costs encoding on the hot path: a run's start
        # already recorded its name, attempt and worker.
        fields: dict[str, Any] = {}
        start = self._starting.pop(task_id, None)
        if start is not None:  # settled before its start was sent
            fields.update(self._start_fields(*start))
        elif not isinstance(outcome, (Succeeded, Failed, Cancelled)):
            fields.update(attempts=facts.attempts, worker=self.worker_name)
            if task_name is not None:
                fields["task"] = task_name
        if status in TERMINAL:
            fields["finished"] = self.store.now()
        if status == SUCCEEDED:
            fields["result"] = getattr(outcome, "value", None)
            if facts.attempt > 1:  # clear the error of an earlier attempt
                fields["error_type"] = fields["error_message"] = None
        else:
            fields["error_type"], fields["error_message"] = _error_of(outcome, decision)
        try:
            try:
                await self.store.record(task_id, status, **fields)
            except (TypeError, ValueError) as e:  # a result JSON cannot carry
                fields.update(result=None, error_type="UnserializableResult", error_message=str(e))
                await self.store.record(task_id, status, **fields)
        except Exception:
            error = one_line(Failure())
            self.write_failures += 1
            loud = should_log(self.write_failures)  # a Redis outage: not one line per task
            if status != SUCCEEDED or not isinstance(decision, (Ack, Reply)):
                if loud:
                    self.log.warn(
                        "Could not record status {status} of task {id}: {error} ({n} so far)",
                        status=status,
                        id=task_id,
                        error=error,
                        n=self.write_failures,
                    )
                return decision
            if loud:
                self.log.warn(
                    "Could not store the result of task {id} ({error}); retrying it later "
                    "({n} so far)",
                    id=task_id,
                    error=error,
                    n=self.write_failures,
                )
            return Retry(self.retry_delay, facts.attempt, error="result not stored: " + error)
        return decision
