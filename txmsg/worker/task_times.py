# -*- test-case-name: txmsg.test.test_worker_task_times -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's checks of a task's times (envelope v2), before it runs:

  - delivered after its C{expires}: not run; dead-lettered with reason
    C{expired} (and an error reply C{TaskExpired} to a caller waiting for
    one).  Dead-lettered rather than dropped, so that it can be inspected
    and requeued (C{txmsg dead-letters}), and so that the results store
    records the status C{expired}.
  - delivered before its C{eta} (more than L{EARLY} seconds): not run;
    handed back to the broker's delayed delivery to come back when it is
    due (L{txmsg.worker.decisions.Delay}), without counting as a run.

Pure: plain values in, a decision (or L{None}: run it) out.
"""

from __future__ import annotations

from txmsg.worker.decisions import DeadLetter, Decision, DeliveryFacts, delay
from txmsg.worker.envelope import Task, encode_error

__all__ = ["EARLY", "EXPIRED", "check_times"]

#: The dead-letter reason of a task delivered after its expiry.
EXPIRED = "expired"
#: A task this close to its ETA (seconds) runs: clocks of different hosts
#: differ by this much anyway, and it saves a trip through the broker.
EARLY = 0.01


def check_times(task: Task, now: float, facts: DeliveryFacts) -> Decision | None:
    """
    Whether a task may run now.

    @param now: the worker's Unix time.
    @return: L{None} to run it; a L{DeadLetter} (C{expired}); or a
        L{txmsg.worker.decisions.Delay} that brings it back when due,
        uncounted.
    """
    if task.expires is not None and now > task.expires:
        message = "expired {:.3f}s before it was delivered".format(now - task.expires)
        reply = encode_error(task.id, "TaskExpired", message) if facts.has_reply_to else None
        return DeadLetter(EXPIRED, "TaskExpired", message, reply=reply)
    if task.eta is not None and task.eta - now > EARLY:
        return delay(facts, task.eta - now)
    return None
