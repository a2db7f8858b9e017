# -*- test-case-name: txmsg.test.test_worker_decisions -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's decision step: what becomes of one delivery.

Plain values in (L{DeliveryFacts} about the delivery, and what happened to
it: one of the outcome values below), one frozen decision value out:

  - L{Ack}: done, nothing to publish;
  - L{Reply}: publish the reply (confirmed), then ack;
  - L{Retry}: publish the message again (confirmed) after C{delay} seconds
    with its new attempt count, then ack;
  - L{DeadLetter}: publish it (confirmed) to the dead-letter queue with the
    reason, and the error reply if any, then ack;
  - L{Delay}: publish it again unchanged (confirmed) to reach its queue
    C{seconds} from now, then ack; the attempt is not counted (a task that
    arrived before its ETA: see L{delay});
  - L{Requeue}: hand it back to the broker.  C{counted}: as it is (nack
    with requeue), so that the broker counts the delivery (its task
    started and was cancelled when the shutdown grace period ended: it may
    have had side effects).  Not counted (L{hand_back}): its task never
    started (it waited for a thread when the grace period ended, or it
    arrived after the consumer stopped), so an unchanged copy goes back to
    its queue (confirmed), then the delivery is acked: a graceful restart
    does not use up a retry.

The rule for poison: a delivery whose handling fails for a reason that is
not the task's own failure (L{Rejected}, L{Broken}) is dead-lettered at once
with a reason; only a transient error (the broker or Redis went away) is
retried, with a delay, and counted like a run.  A message is never delivered
more than C{max_retries + 1} times: past that it is dead-lettered with reason
C{delivery-limit} (L{admit}).

Pure: no I/O, no clock, no randomness (the caller passes the jitter in);
a broker provider (L{txmsg.worker.brokers}) carries the decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from txmsg.worker.envelope import CONTENT_TYPE, encode_error, encode_result
from txmsg.worker.retry import RetryPolicy

__all__ = [
    "Ack",
    "Broken",
    "Cancelled",
    "DeadLetter",
    "Decision",
    "Delay",
    "DeliveryFacts",
    "Duplicate",
    "Failed",
    "Outcome",
    "Rejected",
    "Reply",
    "Requeue",
    "Retry",
    "Succeeded",
    "admit",
    "decide",
    "delay",
    "hand_back",
]

#: Dead-letter reasons of deliveries that never reached their task.
MALFORMED = "malformed"
BAD_HEADERS = "bad-headers"
UNKNOWN_TASK = "unknown-task"
BAD_ARGUMENTS = "bad-arguments"
DELIVERY_LIMIT = "delivery-limit"
INTERNAL_ERROR = "internal-error"


# -- facts ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFacts:
    """
    What the decision step knows about one delivery (headers validated).

    @ivar queue: the work queue it came from.
    @ivar task_id: the task id, once the body was decoded.
    @ivar attempts: runs of the task before this delivery (the attempt
        header, plus the broker's delivery count when it keeps one).
    @ivar redelivered: the broker delivered this very message before.
    @ivar counted: the broker counts deliveries (quorum queues'
        C{x-delivery-count}), so C{attempts} already includes them.
    @ivar has_reply_to: the sender asked for a reply.
    """

    queue: str
    task_id: str | None = None
    attempts: int = 0
    redelivered: bool = False
    counted: bool = False
    has_reply_to: bool = False

    @property
    def attempt(self) -> int:
        """
        This run's number: 1 for the first run.
        """
        return self.attempts + 1


# -- outcomes ------------------------------------------------------------------


@dataclass(frozen=True)
class Succeeded:
    """The task returned C{value}."""

    value: Any = None


@dataclass(frozen=True)
class Failed:
    """
    The task raised (or ran over its time limit).  C{retry}: whether its
    rules retry this error (L{txmsg.worker.retry_rules}); C{delay}: the
    wait it asked for (C{raise Retry(delay=...)}), else its backoff step.
    """

    error_type: str
    message: str
    traceback: str = ""
    timed_out: bool = False
    retry: bool = True
    delay: float | None = None


@dataclass(frozen=True)
class Cancelled:
    """
    The worker cancelled the task on purpose: C{because} is C{"stop-job"},
    C{"kill-horse"} or C{"shutdown"} (the grace period ended); C{started}:
    whether its function had been called (a blocking task may still have
    been waiting for a thread).
    """

    because: str
    error_type: str = "CancelledError"
    traceback: str = ""
    started: bool = True


@dataclass(frozen=True)
class Duplicate:
    """An idempotent task whose id already ran."""


@dataclass(frozen=True)
class Rejected:
    """
    The delivery cannot run: C{reason} is C{malformed}, C{bad-headers},
    C{unknown-task} or C{bad-arguments}; C{reply_type} is the error type
    the caller's reply names.
    """

    reason: str
    error_type: str
    message: str
    reply_type: str


@dataclass(frozen=True)
class Broken:
    """
    Handling the delivery failed outside the task (a defect, or a server
    that went away: C{transient}).
    """

    error_type: str
    message: str
    traceback: str = ""
    transient: bool = False


Outcome = Succeeded | Failed | Cancelled | Duplicate | Rejected | Broken


# -- decisions -----------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """Ack the delivery; nothing to publish."""


@dataclass(frozen=True)
class Reply:
    """Publish C{body} to the delivery's C{reply_to}, then ack."""

    body: bytes
    content_type: str = CONTENT_TYPE


@dataclass(frozen=True)
class Retry:
    """
    Publish the message again, C{delay} seconds from now (0: straight back
    to the work queue), with C{attempts} runs counted; then ack.

    @ivar expiration_ms: the message's own wait (the delay shortened by the
        jitter), or L{None} for exactly C{delay}.
    @ivar redelivered: mark the copy as redelivered (the task sees it so).
    @ivar error: one line on why, for the log.
    """

    delay: float
    attempts: int
    expiration_ms: int | None = None
    redelivered: bool = False
    error: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """
    Publish the message to the dead-letter queue with C{reason} and the
    error in its headers (and C{reply}, the error reply, to C{reply_to});
    then ack.
    """

    reason: str
    error_type: str
    error_message: str
    traceback: str = ""
    attempts: int | None = None
    reply: bytes | None = None


@dataclass(frozen=True)
class Requeue:
    """
    Give the delivery back to the broker.

    @ivar counted: C{True}: nack it with requeue, so that the broker counts
        the delivery (C{redelivered}, C{x-delivery-count}) and so does the
        delivery cap.  C{False}: publish a copy to its queue (confirmed)
        with C{attempts} runs and the C{redelivered} mark, then ack: the
        broker does not count it.
    """

    counted: bool = True
    attempts: int = 0
    redelivered: bool = False


@dataclass(frozen=True)
class Delay:
    """
    Publish the message again, unchanged but for C{attempts} and the
    C{redelivered} mark (as an uncounted L{Requeue}), so that it reaches
    its queue C{seconds} from now; then ack.  Not a run: the attempt count
    does not grow.  Made by L{delay}.
    """

    seconds: float
    attempts: int = 0
    redelivered: bool = False


Decision = Ack | Reply | Retry | DeadLetter | Requeue | Delay


def _error_reply(facts: DeliveryFacts, error_type: str, message: str) -> bytes | None:
    if not facts.has_reply_to:
        return None
    return encode_error(facts.task_id or "", error_type, message)


def admit(facts: DeliveryFacts, max_retries: int) -> Decision | None:
    """
    Before running: whether this delivery may run at all.

    @param max_retries: the task's retries after its first run.
    @return: L{None} to run it; L{DeadLetter} (C{delivery-limit}) when it
        was delivered C{max_retries + 1} times already; L{Retry} straight
        back to the queue, counted, when the broker redelivered it without
        counting (so that a message that kills its worker cannot loop).
    """
    runs = facts.attempts + (1 if facts.redelivered and not facts.counted else 0)
    if runs > max_retries:
        message = "delivered {} time(s) already; the limit is {} (1 + max_retries)".format(
            runs, max_retries + 1
        )
        return DeadLetter(
            DELIVERY_LIMIT,
            "DeliveryLimit",
            message,
            attempts=runs,
            reply=_error_reply(facts, "DeliveryLimit", message),
        )
    if facts.redelivered and not facts.counted:
        return Retry(0.0, runs, redelivered=True, error="redelivered")
    return None


def hand_back(facts: DeliveryFacts) -> Requeue:
    """
    A delivery whose task never started, given back to the broker without
    counting as a run.  A broker redelivery not counted yet (classic
    queues' C{redelivered}) is counted now, as L{admit} would have.
    """
    uncounted = facts.redelivered and not facts.counted
    return Requeue(
        counted=False,
        attempts=facts.attempts + (1 if uncounted else 0),
        redelivered=facts.redelivered,
    )


def delay(facts: DeliveryFacts, seconds: float) -> Delay:
    """
    A delivery that came too early (its ETA is C{seconds} away), sent back
    to wait in the broker without counting as a run; a broker redelivery
    not counted yet is counted now, as L{hand_back} does.
    """
    uncounted = facts.redelivered and not facts.counted
    return Delay(
        seconds=max(0.0, seconds),
        attempts=facts.attempts + (1 if uncounted else 0),
        redelivered=facts.redelivered,
    )


def decide(
    facts: DeliveryFacts, outcome: Outcome, policy: RetryPolicy, jitter: float = 0.0
) -> Decision:
    """
    What to do with a delivery, given what happened to it.

    @param policy: the task's retry policy.
    @param jitter: a number in [0, 1) (random in production) that shortens
        a retry's wait by up to the policy's jitter.
    """
    if isinstance(outcome, Succeeded):
        if not facts.has_reply_to:
            return Ack()
        try:
            return Reply(encode_result(facts.task_id or "", outcome.value))
        except (TypeError, ValueError) as e:
            return Reply(encode_error(facts.task_id or "", "UnserializableResult", str(e)))
    if isinstance(outcome, Duplicate):
        return Ack()
    if isinstance(outcome, Rejected):
        return DeadLetter(
            outcome.reason,
            outcome.error_type,
            outcome.message,
            reply=_error_reply(facts, outcome.reply_type, outcome.message),
        )
    if isinstance(outcome, Cancelled):
        if outcome.because == "shutdown":
            return Requeue() if outcome.started else hand_back(facts)
        message = "cancelled by " + outcome.because
        return DeadLetter(
            "cancelled",
            outcome.error_type,
            message,
            outcome.traceback,
            facts.attempt,
            _error_reply(facts, "TaskCancelled", message),
        )
    if isinstance(outcome, Broken):
        return _broken(facts, outcome, policy, jitter)
    return _failed(facts, outcome, policy, jitter)


def _retry(facts: DeliveryFacts, policy: RetryPolicy, jitter: float, error: str) -> Retry:
    attempt = facts.attempt
    return Retry(
        policy.step_delay(attempt),
        attempt,
        policy.expiration_ms(attempt, random=lambda: jitter),
        error=error,
    )


def _failed(facts: DeliveryFacts, outcome: Failed, policy: RetryPolicy, jitter: float) -> Decision:
    error = (
        "timed out" if outcome.timed_out else "{}: {}".format(outcome.error_type, outcome.message)
    )
    if outcome.retry and policy.should_retry(facts.attempt):
        if outcome.delay is None:
            return _retry(facts, policy, jitter, error)
        return Retry(outcome.delay, facts.attempt, error=error)  # the wait it asked for
    reply_type = "TaskTimeout" if outcome.timed_out else outcome.error_type
    return DeadLetter(
        "failed",
        outcome.error_type,
        outcome.message,
        outcome.traceback,
        facts.attempt,
        _error_reply(facts, reply_type, outcome.message),
    )


def _broken(facts: DeliveryFacts, outcome: Broken, policy: RetryPolicy, jitter: float) -> Decision:
    error = "{}: {}".format(outcome.error_type, outcome.message)
    if outcome.transient and policy.should_retry(facts.attempt):
        return _retry(facts, policy, jitter, error)
    reason = "{}:{}".format(INTERNAL_ERROR, outcome.error_type)
    if outcome.transient:
        reason = DELIVERY_LIMIT
    return DeadLetter(
        reason,
        outcome.error_type,
        outcome.message,
        outcome.traceback,
        facts.attempt,
        _error_reply(facts, "InternalError", outcome.message),
    )
