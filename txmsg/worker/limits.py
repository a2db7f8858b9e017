# -*- test-case-name: txmsg.test.test_worker_limits -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Rate and concurrency limits of tasks, enforced across every worker through
Redis (L{txmsg.redis.limits}), checked just before a task runs.

  - C{@tasks.task(rate_limit="50/s")}: the task takes a start slot
    (L{RateLimit.reserve}).  Over the limit it is given the next free slot
    and put back to wait in the broker until then (an uncounted
    L{txmsg.worker.decisions.Delay}); when it comes back its slot is kept
    for it, so it runs without asking again: tasks wait once, in order.
  - C{@tasks.task(max_concurrency=2, concurrency_lease=30)}: the task takes
    one of N leased slots (L{ConcurrencyLimit}), held by C{<worker>:<task
    id>}.  Refused, it waits in the broker for a jittered backoff
    (L{BACKOFF}: 0.5 to 2 s, so that refused tasks do not come back in
    step) and asks again.  While it runs the lease is renewed every third of
    it on the worker's reactor; the slot is given back when the task ends
    (success, failure or cancel).  A worker killed outright leaves its
    slot held until the lease runs out.

A task is rate-limited first, then asks for a concurrency slot.  Tasks
without limits cost one attribute test (L{TaskSpec.limited}).  A Redis
error here is raised to the caller: the pipeline handles it like any
transient failure outside a task (retried after a delay through the broker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from txmsg.redis.limits import ConcurrencyLimit, Rate, RateLimit, parse_rate
from txmsg.worker.decisions import Delay, DeliveryFacts, delay

if TYPE_CHECKING:  # tasks imports this module for limit_options
    from txmsg.worker.tasks import TaskCatalog, TaskSpec

__all__ = ["BACKOFF", "Lease", "TaskLimits", "check_limits_redis", "limit_options"]

#: The wait (seconds) of a task refused a concurrency slot: from the first
#: to the second number, uniformly (jitter in [0, 1) picks where).
BACKOFF = (0.5, 2.0)


def limit_options(rate_limit: Any, max_concurrency: Any, concurrency_lease: Any) -> Rate | None:
    """
    Validate a task's limit options (C{@tasks.task(...)}).

    @return: the parsed rate, or L{None}.
    @raise ValueError: one line naming the option and what it accepts.
    """
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ValueError(
            "max_concurrency must be a whole number >= 1, not {!r}".format(max_concurrency)
        )
    if isinstance(concurrency_lease, bool) or not isinstance(concurrency_lease, (int, float)):
        raise ValueError(
            "concurrency_lease must be a number of seconds, not {!r}".format(concurrency_lease)
        )
    if not concurrency_lease >= 1:
        raise ValueError(
            "concurrency_lease must be at least 1 second, not {!r}".format(concurrency_lease)
        )
    if rate_limit is None:
        return None
    if not isinstance(rate_limit, str):
        raise ValueError("rate_limit must be a string like '100/s', not {!r}".format(rate_limit))
    return parse_rate(rate_limit)


def check_limits_redis(tasks: TaskCatalog, redis: Any) -> None:
    """
    Refuse limited tasks on a worker without Redis: the limits are shared
    by every worker and kept there.

    @raise ValueError: one line naming the first such task and its option.
    """
    if redis is not None:
        return
    for name in tasks.names():
        spec = tasks.get(name)
        if spec is None or not spec.limited:
            continue
        option = "rate_limit" if spec.rate_limit is not None else "max_concurrency"
        raise ValueError(
            "task {!r} has {} but this worker has no Redis (--redis): "
            "limits are kept in Redis".format(name, option)
        )


class Lease:
    """
    A concurrency slot held while one task runs: renewed every third of the
    lease on the reactor, given back by L{release}.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self, limit: ConcurrencyLimit, holder: str, clock: IReactorTime, log: Logger | None = None
    ) -> None:
        if log is not None:
            self.log = log
        self.limit = limit
        self.holder = holder
        self.clock = clock
        self._call: IDelayedCall | None = None
        self._schedule()

    def _schedule(self) -> None:
        self._call = self.clock.callLater(self.limit.lease / 3.0, self._renew)

    def _renew(self) -> None:
        self._call = None
        d = self.limit.renew(self.holder)
        d.addCallbacks(self._renewed, self._renew_failed)

    def _renewed(self, held: bool) -> None:
        if self._call is not None or not self.holder:
            return  # released meanwhile
        if held:
            self._schedule()
            return
        # Lost (the lease ran out: the reactor was blocked longer than it,
        # or Redis lost its data); another task may have the slot now.
        self.log.warn(
            "The concurrency slot of {holder} ran out before it was renewed; "
            "the task runs on without it",
            holder=self.holder,
        )

    def _renew_failed(self, failure: Any) -> None:
        self.log.warn(
            "Renewing the concurrency slot of {holder} failed ({error}); trying again",
            holder=self.holder,
            error=failure.getErrorMessage(),
        )
        self._renewed(True)

    async def release(self) -> None:
        """
        Stop renewing and give the slot back (a failure is logged: the
        lease frees it anyway).
        """
        holder, self.holder = self.holder, ""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        try:
            await self.limit.release(holder)
        except Exception as e:
            self.log.warn(
                "Releasing the concurrency slot of {holder} failed ({error}); "
                "it comes back when its lease runs out",
                holder=holder,
                error=str(e) or type(e).__name__,
            )


class TaskLimits:
    """
    The limits of a worker's tasks: one L{RateLimit} and one
    L{ConcurrencyLimit} per limited task, made when first needed.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self,
        redis: Any,
        worker_name: str,
        clock: IReactorTime,
        jitter: Callable[[], float],
    ) -> None:
        """
        @param redis: the worker's L{txmsg.redis.RedisService} (L{None}: no
            task may be limited; see L{check_limits_redis}).
        @param jitter: a number in [0, 1), picking the backoff in L{BACKOFF}.
        """
        self.redis = redis
        self.worker_name = worker_name
        self.clock = clock
        self.jitter = jitter
        self._rates: dict[str, RateLimit] = {}
        self._slots: dict[str, ConcurrencyLimit] = {}

    def backoff(self) -> float:
        """The wait of a task refused a concurrency slot."""
        low, high = BACKOFF
        return low + (high - low) * self.jitter()

    async def take(
        self, spec: TaskSpec, task_id: str, facts: DeliveryFacts
    ) -> Delay | Lease | None:
        """
        Ask the limits of C{spec} whether task C{task_id} may run now.

        @return: a L{Delay} (wait in the broker, then come back), a L{Lease}
            (run it, then L{Lease.release}), or L{None} (run it; no slot).
        @raise Exception: what Redis raised.
        """
        if spec.rate_limit is not None:
            rate = self._rates.get(spec.name)
            if rate is None:
                rate = self._rates[spec.name] = RateLimit(self.redis, spec.name, spec.rate_limit)
            wait = await rate.reserve(task_id)
            if wait > 0:
                return delay(facts, wait)
        if spec.max_concurrency is None:
            return None
        slots = self._slots.get(spec.name)
        if slots is None:
            slots = self._slots[spec.name] = ConcurrencyLimit(
                self.redis, spec.name, spec.max_concurrency, spec.concurrency_lease
            )
        holder = "{}:{}".format(self.worker_name, task_id)
        if not await slots.acquire(holder):
            return delay(facts, self.backoff())
        return Lease(slots, holder, self.clock, self.log)
