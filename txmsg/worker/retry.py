# -*- test-case-name: txmsg.test.test_worker_retry -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Retry arithmetic: exponential backoff with jitter, waiting in the broker.

A failed task is republished through the broker's delayed delivery
(L{txmsg.amqp.delayed}: binary-weighted TTL levels shared by every queue and
every delay), so any delay works, waits durably in the broker and comes
back to the work queue no earlier than asked and within about a second
after.  Jitter shortens each retry's wait by up to C{jitter} of its step,
so that tasks that failed together do not all come back together.  After
C{max_retries} retries the task goes to C{<queue>.dead}.

Older versions used one queue per step, C{<queue>.retry.<ms>ms}
(L{retry_queue_name}); see L{txmsg.worker.brokers.amqp} for what happens to
messages still waiting in them.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ATTEMPT_HEADER",
    "RetryPolicy",
    "dead_letter_queue_name",
    "retry_queue_name",
]

#: The message header carrying how many times the task has run already.
ATTEMPT_HEADER = "x-txmsg-attempts"


def retry_queue_name(queue: str, delay: float) -> str:
    """
    The per-step delay queue older versions used for one backoff step of
    C{queue} (no longer declared; kept to find and drain old queues).
    """
    return "{}.retry.{}ms".format(queue, int(round(delay * 1000)))


def dead_letter_queue_name(queue: str) -> str:
    """
    The dead-letter queue of C{queue}.
    """
    return queue + ".dead"


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how long to wait before running a failed task again.

    @ivar max_retries: retries after the first attempt (0: dead-letter at the
        first failure).
    @ivar initial_delay: seconds before the first retry.
    @ivar factor: each retry waits this many times longer than the previous.
    @ivar max_delay: the longest wait, in seconds.
    @ivar jitter: fraction (0 to 1) by which a wait may be shortened at random,
        so that tasks that failed together do not all come back together.
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 < initial_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def should_retry(self, attempts: int) -> bool:
        """
        @param attempts: how many times the task has run (and failed) so far.
        @return: whether it gets another try.
        """
        return attempts <= self.max_retries

    def step_delay(self, retry: int) -> float:
        """
        The delay step of the C{retry}-th retry (1 for the first).
        """
        if retry < 1:
            raise ValueError("retry counts from 1")
        return float(min(self.initial_delay * self.factor ** (retry - 1), self.max_delay))

    def steps(self) -> list[float]:
        """
        Every distinct delay step this policy can use, shortest first.
        """
        return sorted({self.step_delay(r) for r in range(1, self.max_retries + 1)})

    def expiration_ms(self, retry: int, random: Callable[[], float] = _random.random) -> int:
        """
        The per-message expiration of the C{retry}-th retry, in milliseconds:
        the step delay shortened by up to C{jitter}.  Never longer than the
        step queue's own TTL.
        """
        step = self.step_delay(retry)
        return max(1, int(step * 1000 * (1 - self.jitter * random())))
