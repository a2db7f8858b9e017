# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The thread pool a worker's blocking tasks run in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["TaskThreads"]


class TaskThreads:
    """
    The worker's own thread pool (started and stopped with the worker), or
    one the caller passed in and starts and stops itself.

    @ivar pool: the thread pool (L{None} while the worker's own is stopped).
    """

    def __init__(self, reactor: IReactorTime, concurrency: int, pool: Any = None) -> None:
        """
        @param reactor: the reactor results are delivered on.
        @param concurrency: threads of the worker's own pool.
        @param pool: a thread pool that the caller starts and stops, or
            L{None} for the worker's own.
        """
        # the reactor also provides IReactorFromThreads (see txmsg._reactor)
        self._reactor = cast(IReactorFromThreads, reactor)
        self._concurrency = concurrency
        self._own = pool is None
        self.pool: Any = pool

    def start(self) -> None:
        """
        Start the worker's own pool.
        """
        if self._own:
            self.pool = ThreadPool(0, self._concurrency, "txmsg-worker")
            self.pool.start()

    def stop(self) -> None:
        """
        Stop the worker's own pool once its threads are done.
        """
        if self._own and self.pool is not None:
            self.pool.stop()
            self.pool = None

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Call C{function(*args, **kwargs)} in a pool thread.
        """
        return deferToThreadPool(self._reactor, self.pool, function, *args, **kwargs)
