# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's timers: the reactor-lag check, and the heartbeat that keeps
the worker's entry in the Redis worker registry (L{txmsg.worker.roster}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txmsg.worker._lifecycle import one_line
from txmsg.worker._stats import WorkerStats
from txmsg.worker.roster import register_worker

__all__ = ["WorkerTimers"]


class WorkerTimers:
    """
    Start and stop the lag check and (with Redis) the heartbeat.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self,
        clock: IReactorTime,
        stats: WorkerStats,
        status: Callable[[], dict[str, Any]],
        *,
        name: str,
        redis: Any = None,
        heartbeat: float = 5.0,
        lag_warning: float = 0.5,
    ) -> None:
        self.clock = clock
        self.stats = stats
        self.status = status
        self.name = name
        self.redis = redis
        self.heartbeat = heartbeat
        self.lag_warning = lag_warning
        self._loops: list[LoopingCall] = []

    def start(self) -> None:
        """
        Start the timers.
        """
        self.stats.start_ticking(self.clock.seconds())
        self._start(self.check_lag, 1.0)
        if self.redis is not None:
            self._start(self.beat, self.heartbeat, now=True)

    def stop(self) -> None:
        """
        Stop the timers.
        """
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

    def _start(self, function: Callable[[], Any], interval: float, now: bool = False) -> None:
        loop = LoopingCall(function)
        loop.clock = self.clock
        self._loops.append(loop)
        loop.start(interval, now=now).addErrback(
            lambda f: self.log.failure("Worker timer failed", f)
        )

    def check_lag(self) -> None:
        """
        Warn when the reactor was late for this tick.
        """
        lag = self.stats.tick(self.clock.seconds(), 1.0)
        if lag > self.lag_warning:
            self.log.warn(
                "The reactor was {lag:.2f}s late: something blocks it (a blocking call in a "
                "task not declared blocking=True?)",
                lag=lag,
            )

    def beat(self) -> Deferred[None]:
        """
        Store the worker's status in the registry.
        """
        d = maybeDeferred(
            register_worker, self.redis.handler, self.status(), ttl=self.heartbeat * 3
        )
        return d.addErrback(
            lambda f: self.log.warn("Worker heartbeat failed: {reason}", reason=one_line(f))
        )
