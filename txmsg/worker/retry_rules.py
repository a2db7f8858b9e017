# -*- test-case-name: txmsg.test.test_worker_retry_rules -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Which failures of a task are retried, and after how long: per-task rules.

    @tasks.task(retry_for=(IOError,), max_retries=5,
                backoff=Backoff(base=1, max=600, jitter=True))
    def fetch(url): ...

    @tasks.task
    def charge(order):
        if gateway_busy():
            raise Retry(delay=30)      # retried in 30 s, whatever the rules say

The default (no C{retry_for}, no C{dont_retry_for}): every exception is
retried except L{NOT_RETRIED} (C{TypeError}, C{ValueError}, C{LookupError},
C{AttributeError}, C{NameError}, C{ArithmeticError}, C{AssertionError},
C{NotImplementedError} and their subclasses): errors that come from the
arguments or the code, so another run with the same arguments on the same
code fails the same way.  A time-out is always retried.  C{docs/worker.md}
says why.  Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from txmsg.worker.retry import RetryPolicy

__all__ = ["NOT_RETRIED", "Backoff", "Retry", "RetryRules"]

#: Exceptions not retried unless a task's C{retry_for} says otherwise.
NOT_RETRIED: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    LookupError,
    AttributeError,
    NameError,
    ArithmeticError,
    AssertionError,
    NotImplementedError,
)


class Retry(Exception):
    """
    Raise inside a task to have it run again: after C{delay} seconds, or
    after its backoff step when L{None}.  It counts as a run (so
    C{max_retries} bounds it) and is retried even when the task's rules
    would not retry other errors.
    """

    def __init__(self, delay: float | None = None, message: str = "") -> None:
        if delay is not None and not (math.isfinite(delay) and delay >= 0):
            raise ValueError("Retry delay must be a finite number >= 0")
        super().__init__(
            message or ("retry in {}s".format(delay) if delay is not None else "retry")
        )
        self.delay = delay


@dataclass(frozen=True)
class Backoff:
    """
    Exponential backoff between retries: C{base}, C{base*factor}, ... up to
    C{max} seconds, each wait shortened by up to 10% at random when
    C{jitter} (so tasks that failed together do not all come back
    together).
    """

    base: float = 1.0
    max: float = 300.0
    factor: float = 2.0
    jitter: bool = True

    def policy(self, max_retries: int) -> RetryPolicy:
        """
        The L{RetryPolicy} of this backoff (it validates the numbers).
        """
        return RetryPolicy(
            max_retries=max_retries,
            initial_delay=self.base,
            factor=self.factor,
            max_delay=self.max,
            jitter=0.1 if self.jitter else 0.0,
        )


@dataclass(frozen=True)
class RetryRules:
    """
    Which exceptions of one task are retried.

    @ivar retry_for: retry only these (and their subclasses); L{None}:
        everything but C{dont_retry_for}.
    @ivar dont_retry_for: never retry these; L{None}: L{NOT_RETRIED} when
        C{retry_for} is L{None}, nothing otherwise.
    """

    retry_for: tuple[type[BaseException], ...] | None = None
    dont_retry_for: tuple[type[BaseException], ...] | None = None

    def __post_init__(self) -> None:
        for group in (self.retry_for, self.dont_retry_for):
            for kind in group or ():
                if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                    raise TypeError("{!r} is not an exception class".format(kind))

    def retries(self, error: BaseException) -> bool:
        """
        Whether a run that raised C{error} is retried (a L{Retry} always is).
        """
        if isinstance(error, Retry):
            return True
        never = self.dont_retry_for
        if never is None and self.retry_for is None:
            never = NOT_RETRIED
        if never and isinstance(error, never):
            return False
        if self.retry_for is not None:
            return isinstance(error, self.retry_for)
        return True
