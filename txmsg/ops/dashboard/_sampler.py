# -*- test-case-name: txmsg.test.test_dashboard_sampler -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{QueueSampler}: every few seconds, read the worker roster and the figures
of each work queue and its dead-letter queue, and keep them in a
L{QueueHistory} per queue.  Pages, charts and C{/metrics} all read this
cache, so a page view costs the broker nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txmsg._reactor import maybe_global_reactor
from txmsg.ops.dashboard._history import QueueHistory, QueueSample
from txmsg.ops.dashboard._stats import StatsUnavailable
from txmsg.worker.retry import dead_letter_queue_name

__all__ = ["QueueSampler", "is_work_queue"]

_RETRY = re.compile(r"\.retry\.\d+ms$")


def is_work_queue(name: str) -> bool:
    """
    Whether C{name} is a work queue (not a dead-letter, retry, delay-level,
    reply or server-named queue).
    """
    return not (
        name.endswith(".dead")
        or _RETRY.search(name)
        or name.startswith(("amq.", "txmsg.reply", "txmsg.delay."))
        or not name
    )


class QueueSampler(Service):
    """
    Samples the queues and the workers every C{interval} seconds.

    @ivar histories: a L{QueueHistory} per work queue seen.
    @ivar workers: the workers as the roster last showed them.
    @ivar error: why the last sample was incomplete, or L{None}.
    @ivar sampled_at: POSIX time of the last sample, or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        stats: Any,
        *,
        queues: Iterable[str] = (),
        workers: Callable[[], Any] | None = None,
        interval: float = 5.0,
        history: float = 3600.0,
        clock: IReactorTime | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """
        @param stats: a L{PassiveDeclareStats} or L{ManagementStats}.
        @param queues: work queues always shown (others come from the
            workers' queues, or from the management API's list).
        @param workers: returns (a Deferred of) the workers' status dicts.
        @param interval: seconds between samples.
        @param history: seconds of history kept per queue.
        @param clock: the reactor's clock.
        @param now: POSIX time, for the samples' timestamps.
        """
        self.stats = stats
        self.queues = list(queues)
        self._workers = workers
        self.interval = interval
        self.size = max(2, int(history / interval) + 1)
        self.clock = maybe_global_reactor(clock)
        self._now = now
        self.histories: dict[str, QueueHistory] = {}
        self.workers: list[dict[str, Any]] = []
        self.error: str | None = None
        self.sampled_at: float | None = None
        self._loop: LoopingCall | None = None
        for name in self.queues:
            self.history(name)
        self._busy = False
        self._next: list[Deferred[None]] = []

    def startService(self) -> None:
        """
        Sample now and every C{interval} seconds.
        """
        super().startService()
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("Queue sampler stopped", f)
        )

    def stopService(self) -> Deferred[None] | None:
        """
        Stop sampling.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return super().stopService()

    def _tick(self) -> None:
        if not self._busy:
            self.sample_now()

    def history(self, queue: str) -> QueueHistory:
        """
        The history of C{queue} (created empty and sampled from now on).
        """
        if queue not in self.histories:
            self.histories[queue] = QueueHistory(queue, self.size)
        return self.histories[queue]

    def watch(self, queue: str) -> None:
        """
        Sample C{queue} from now on.
        """
        if queue not in self.queues:
            self.queues.append(queue)

    def sample_now(self) -> Deferred[None]:
        """
        Take a sample now.  While one is under way, a new one follows it,
        so the figures the returned Deferred fires after are never older
        than this call.
        """
        waiter: Deferred[None] = Deferred()
        self._next.append(waiter)
        if not self._busy:
            self._start()
        return waiter

    def _start(self) -> None:
        self._busy = True
        waiters, self._next = self._next, []

        def done(result: object) -> None:
            self._busy = False
            for w in waiters:
                w.callback(None)
            if self._next:
                self._start()

        d = Deferred.fromCoroutine(self._sample())
        d.addErrback(lambda f: self.log.failure("Dashboard sample failed", f))
        d.addBoth(done)

    async def _sample(self) -> None:
        problems = []
        if self._workers is not None:
            try:
                self.workers = list(await maybeDeferred(self._workers))
            except Exception as e:
                problems.append("worker roster: {}".format(e or type(e).__name__))
        names = set(self.queues) | set(self.histories)
        for w in self.workers:
            names.update(q for q in w.get("queues", ()) if isinstance(q, str))
        wanted = sorted(n for n in names if is_work_queue(n))
        try:
            figures = await self.stats.sample(wanted + [dead_letter_queue_name(n) for n in wanted])
        except StatsUnavailable as e:
            problems.append(str(e))
            figures = None
        now = self._now()
        if figures is not None:
            if self.stats.lists_queues:
                wanted = sorted(set(wanted) | {n for n in figures if is_work_queue(n)})
            for name in wanted:
                s = figures.get(name)
                dead = figures.get(dead_letter_queue_name(name))
                self.history(name).add(
                    QueueSample(
                        time=now,
                        ready=None if s is None else s.ready,
                        unacked=None if s is None else s.unacked,
                        consumers=None if s is None else s.consumers,
                        dead=None if dead is None else dead.ready,
                        in_rate=None if s is None else s.in_rate,
                        out_rate=None if s is None else s.out_rate,
                    )
                )
            self.sampled_at = now
        if problems and self.error != "; ".join(problems):
            self.log.warn("Dashboard sample incomplete: {problems}", problems="; ".join(problems))
        self.error = "; ".join(problems) or None

    def overview(self) -> dict[str, Any]:
        """
        The newest figures of every queue and the workers, JSON-able.
        """
        return {
            "queues": [self.histories[n].summary() for n in sorted(self.histories)],
            "workers": self.workers,
            "sampled_at": self.sampled_at,
            "interval": self.interval,
            "error": self.error,
        }
