# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The shutdown grace period: running tasks get C{grace} seconds to finish;
then (or at a second SIGTERM/SIGINT) they are cancelled, and the worker's
decision step requeues them (counted: they may have had side effects).
Tasks that have not started yet (waiting for a thread) are cancelled at
once and handed back uncounted.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.logger import Logger

from txmsg.worker.tasks import TaskContext

__all__ = ["GracePeriod"]


class GracePeriod:
    """
    Cancel the running tasks when the grace period ends.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self, reactor: IReactorTime, running: Callable[[], dict[str, TaskContext]]
    ) -> None:
        self.reactor = reactor
        self.running = running
        self._call: IDelayedCall | None = None

    def start(self, grace: float, handle_signals: bool = False) -> None:
        """
        Start the grace period; with C{handle_signals}, a second SIGTERM or
        SIGINT ends it at once.
        """
        self._call = self.reactor.callLater(grace, self.expire)
        # Tasks still waiting for a thread do not start now: they go back to
        # the broker at once, uncounted; the grace period is for the others.
        waiting = [c for c in self.running().values() if not c.started]
        for context in waiting:
            context.cancel("shutdown")
        if waiting:
            self.log.info("Handing back {n} task(s) that had not started", n=len(waiting))
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    signal.signal(signum, self._second_signal)
                except ValueError:  # not the main thread
                    return

    def _second_signal(self, signum: int, frame: Any) -> None:
        self.log.warn("Second signal: stopping now")
        cast(IReactorFromThreads, self.reactor).callFromThread(self.expire)

    def cancel(self) -> None:
        """
        Nothing is left running: stop the timer.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def expire(self) -> None:
        """
        End the grace period now: cancel every running task.
        """
        self.cancel()
        running = self.running()
        if running:
            self.log.warn(
                "Grace period over: cancelling {n} running task(s); they are requeued",
                n=len(running),
            )
        for context in list(running.values()):
            context.cancel("shutdown")
