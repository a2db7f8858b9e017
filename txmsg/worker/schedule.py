# -*- test-case-name: txmsg.test.test_worker_schedule -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's checks of a task's times (envelope v2), before it runs:

  - delivered after its C{expires}: not run; dead-lettered with reason
    C{expired} (and an error reply C{TaskExpired} to a caller waiting for
    one).  Dead-lettered rather than dropped, so that it can be inspected
    and requeued (C{txmsg dead-letters}), and so that the results store
    records the status C{expired}.
  - delivered before its C{eta} (more than L{EARLY} seconds): not run;
    handed back to the broker to come back when it is due, without
    counting as a run.

Pure: plain values in, a decision (or L{None}: run it) out.
"""

from __future__ import annotations

from collections.abc import Sequence

from txmsg.worker.decisions import DeadLetter, Decision, DeliveryFacts, Retry
from txmsg.worker.envelope import Task, encode_error

__all__ = ["EARLY", "EXPIRED", "NOT_DUE", "check_times"]

#: The dead-letter reason of a task delivered after its expiry.
EXPIRED = "expired"
#: The C{error} of the decision that hands back a task not due yet.
NOT_DUE = "not due yet"
#: A task this close to its ETA (seconds) runs: clocks of different hosts
#: differ by this much anyway, and it saves a trip through the broker.
EARLY = 0.01


def check_times(
    task: Task, now: float, facts: DeliveryFacts, delays: Sequence[float]
) -> Decision | None:
    """
    Whether a task may run now.

    @param now: the worker's Unix time.
    @param delays: the delays (seconds) the broker has delay queues for.
    @return: L{None} to run it; a L{DeadLetter} (C{expired}); or a
        decision that brings it back when due, uncounted.
    """
    if task.expires is not None and now > task.expires:
        message = "expired {:.3f}s before it was delivered".format(now - task.expires)
        reply = encode_error(task.id, "TaskExpired", message) if facts.has_reply_to else None
        return DeadLetter(EXPIRED, "TaskExpired", message, reply=reply)
    if task.eta is not None and task.eta - now > EARLY:
        return _not_due(task.eta - now, facts, delays)
    return None


def _not_due(wait: float, facts: DeliveryFacts, delays: Sequence[float]) -> Decision:
    # Through the shortest delay queue at least as long as the wait, with
    # the message's own expiration cut to the wait; a longer wait goes
    # round the longest queue again.  The attempt count is unchanged.
    steps = sorted(delays) or [wait]
    step = min((s for s in steps if s >= wait), default=steps[-1])
    wait_ms = max(1, int(round(min(wait, step) * 1000)))
    return Retry(step, facts.attempts, wait_ms, error=NOT_DUE)
