# -*- test-case-name: txmsg.test.test_ops_health -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Reactor lag: how late a timer that should fire every C{interval} seconds
actually fires.  A reactor blocked by a slow call (a blocking task not
declared C{blocking=True}, a huge JSON document) shows up here first.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from txmsg._reactor import maybe_global_reactor

__all__ = ["ReactorLagMonitor"]


class ReactorLagMonitor(Service):
    """
    Tick every C{interval} seconds on the reactor and measure the lag.

    @ivar lag: the lag of the last tick, in seconds.
    @ivar max_lag: the largest lag seen.
    @ivar ticks: ticks so far.
    """

    def __init__(self, interval: float = 1.0, reactor: IReactorTime | None = None) -> None:
        """
        @param interval: seconds between ticks.
        @param reactor: provides C{seconds} and C{callLater} (default: the
            global reactor, resolved when started).
        """
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.interval = interval
        self._reactor = reactor
        self.lag = 0.0
        self.max_lag = 0.0
        self.ticks = 0
        self.started_at: float | None = None
        self._last: float | None = None
        self._loop: LoopingCall | None = None

    def _clock(self) -> Any:
        self._reactor = maybe_global_reactor(self._reactor)
        return self._reactor

    def seconds(self) -> float:
        """
        The reactor's current time.
        """
        return float(self._clock().seconds())

    def uptime(self) -> float:
        """
        Seconds since the monitor started (0 before).
        """
        if self.started_at is None:
            return 0.0
        return self.seconds() - self.started_at

    def startService(self) -> None:
        """
        Start ticking.
        """
        super().startService()
        clock = self._clock()
        self.started_at = self._last = clock.seconds()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        """
        Stop ticking.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> None:
        now = self._clock().seconds()
        last, self._last = self._last, now
        if last is not None:
            self.lag = max(0.0, now - last - self.interval)
            self.max_lag = max(self.max_lag, self.lag)
        self.ticks += 1
