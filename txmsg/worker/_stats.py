# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's running counters.
"""

from __future__ import annotations

from typing import Any

from txmsg.worker.envelope import Task


class WorkerStats:
    """
    Counters of one worker: tasks succeeded, failed, retried, dead-lettered,
    cancelled, timed out, requeued at shutdown, malformed and unknown; tasks
    running; the reactor's lag.
    """

    def __init__(self, clock: Any) -> None:
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

    def started(self, task: Task) -> None:
        """
        C{task} started running.
        """
        self.started_at[task.id] = self._clock.seconds()

    def finished(self, task: Task) -> None:
        """
        C{task} stopped running (whatever the outcome).
        """
        self.started_at.pop(task.id, None)

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
