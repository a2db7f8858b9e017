# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's running counters.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from twisted.internet.interfaces import IReactorTime

from txmsg.worker.envelope import Task

#: Task-name labels for deliveries that name no task of this worker (a fixed
#: label keeps metrics' cardinality bounded whatever the senders put there).
MALFORMED_TASK = "<malformed>"
UNKNOWN_TASK = "<unknown>"
RAW_TASK = "<raw>"

#: Upper bounds (seconds) of the task-duration histogram buckets.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class DurationHistogram:
    """
    Counts of observed durations per bucket (not cumulative), their sum and
    count: the cheapest form a Prometheus histogram can be built from at
    scrape time.

    @ivar bounds: the bucket upper bounds, ascending; one more bucket
        (C{+Inf}) holds everything above the last.
    @ivar counts: observations per bucket, C{len(bounds) + 1} of them.
    """

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """
        Record one duration (a value equal to a bound goes in that bound's bucket).
        """
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class WorkerStats:
    """
    Counters of one worker: tasks succeeded, failed, retried, dead-lettered,
    cancelled, timed out, requeued at shutdown, malformed and unknown; tasks
    running; the reactor's lag.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.started_seconds = clock.seconds()
        self.succeeded = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.cancelled = 0
        self.timed_out = 0
        self.requeued = 0
        self.malformed = 0
        self.unknown = 0
        self.duplicates = 0
        self.started_at: dict[str, float] = {}
        self.max_lag = 0.0
        self._last_tick: float | None = None
        #: (queue, task, outcome) -> deliveries; outcome is C{succeeded},
        #: C{retried}, C{dead_lettered} or C{requeued}.
        self.outcomes: dict[tuple[str, str, str], int] = {}
        #: (queue, task, reason) -> deliveries sent to the dead-letter queue.
        self.dead_letter_reasons: dict[tuple[str, str, str], int] = {}
        #: (queue, task) -> how long runs took, whatever their outcome.
        self.durations: dict[tuple[str, str], DurationHistogram] = {}

    def started(self, task: Task) -> None:
        """
        C{task} started running.
        """
        self.started_at[task.id] = self._clock.seconds()

    def finished(self, task: Task, queue: str | None = None) -> None:
        """
        C{task} stopped running (whatever the outcome); with C{queue}, its
        run time is added to the duration histogram of C{(queue, task.name)}.
        """
        started = self.started_at.pop(task.id, None)
        if queue is not None and started is not None:
            key = (queue, task.name)
            histogram = self.durations.get(key)
            if histogram is None:
                histogram = self.durations[key] = DurationHistogram()
            histogram.observe(max(0.0, self._clock.seconds() - started))

    def record(self, queue: str, task: str, outcome: str, reason: str | None = None) -> None:
        """
        Count what became of one delivery, by queue and task name (the
        totals such as L{succeeded} are counted separately).

        @param outcome: C{succeeded}, C{retried}, C{dead_lettered}, C{requeued}
            or C{duplicate} (an idempotent task that already ran).
        @param reason: for dead letters: C{malformed}, C{bad-headers},
            C{unknown-task}, C{bad-arguments}, C{failed}, C{cancelled},
            C{delivery-limit} or C{internal-error:<ExceptionType>}.
        """
        key = (queue, task, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if reason is not None:
            key = (queue, task, reason)
            self.dead_letter_reasons[key] = self.dead_letter_reasons.get(key, 0) + 1

    def start_ticking(self, now: float) -> None:
        """
        The lag timer starts now: its first tick is measured from here, so
        a block right after start-up is recorded too.
        """
        self._last_tick = now

    def tick(self, now: float, interval: float) -> float:
        """
        Record a timer tick expected every C{interval} seconds.

        @return: how late this tick was, in seconds.
        """
        last, self._last_tick = self._last_tick, now
        if last is None:
            return 0.0
        lag = max(0.0, now - last - interval)
        self.max_lag = max(self.max_lag, lag)
        return lag

    def uptime(self) -> float:
        """
        Seconds since the worker was created.
        """
        return float(self._clock.seconds() - self.started_seconds)

    def counts(self) -> dict[str, Any]:
        """
        All counters as a JSON-able dict.
        """
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "cancelled": self.cancelled,
            "timed_out": self.timed_out,
            "requeued": self.requeued,
            "malformed": self.malformed,
            "unknown": self.unknown,
            "duplicates": self.duplicates,
            "running": len(self.started_at),
            "max_reactor_lag": round(self.max_lag, 3),
        }
