# -*- test-case-name: txmsg.test.test_schedule_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{SchedulerService}: fires a L{txmsg.schedule.Schedule}'s ticks, exactly
once across any number of schedulers.

How a tick is fired exactly once:

  1. Only the holder of the lease fires (L{txmsg.schedule.leader}); it
     renews the lease every third of its TTL and stops firing when a
     renewal fails.
  2. The tick is sent with a deterministic task id (C{<entry>:<UTC time>})
     and the C{x-txmsg-once} header, with a publisher confirm; a worker with
     Redis runs each such id once (its idempotency keys), whoever sent it
     and however often.
  3. Only then does the leader record the tick as fired, in a script that
     checks its lease: a stalled leader that comes back is refused and steps
     down.  A leader that dies between 2 and 3 leaves the tick to its
     successor, which sends it again: the worker drops the copy (step 2).

So a tick is sent at least once and run at most once.  After downtime, an
entry fires once for all the ticks it missed (C{catch_up=True}: each one).
Without Redis there is no lease: the service fires alone and says so (run
one scheduler only, or ticks fire twice).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._lograte import should_log
from txmsg._reactor import maybe_global_reactor
from txmsg.schedule.entries import Entry, Schedule
from txmsg.schedule.leader import LeaderLease, NotLeader
from txmsg.schedule.ticks import due_ticks, next_tick, tick_task_id
from txmsg.worker._lifecycle import one_line
from txmsg.worker.client import TaskClient
from txmsg.worker.headers import ONCE_HEADER

__all__ = ["SchedulerService", "Sender", "default_owner", "task_sender"]

#: Seconds between attempts to send a tick the broker did not take.
RETRY_DELAY = 1.0

#: Sends one tick: C{sender(entry, task_id)} fires once the broker has it.
Sender = Callable[[Entry, str], Deferred[Any]]


def default_owner() -> str:
    """A scheduler name unique on this network: C{host.pid.random}."""
    return "{}.{}.{}".format(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:6])


def task_sender(client: TaskClient, default_queue: str = "tasks") -> Sender:
    """
    The scheduler's sender: each tick as a task with its deterministic id
    and the header that makes a worker run that id once.
    """

    def send(entry: Entry, task_id: str) -> Deferred[Any]:
        return client.submit(
            entry.task,
            entry.args,
            entry.kwargs,
            queue=entry.queue or default_queue,
            task_id=task_id,
            headers={ONCE_HEADER: 1},
        )

    return send


class SchedulerService(Service):
    """
    Fire the ticks of C{schedule} through C{sender}.

    @ivar leading: whether this scheduler holds the lease now.
    @ivar covered: C{{entry: instant}}, how far each entry's ticks were
        fired (as this scheduler knows it).
    @ivar fired: how many ticks this scheduler sent.
    """

    log = Logger(namespace="txmsg.schedule")

    def __init__(
        self,
        schedule: Schedule,
        sender: Sender,
        redis: Any = None,
        *,
        name: str = "default",
        owner: str | None = None,
        lease: float = 10.0,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param schedule: the entries.
        @param sender: sends one tick (see L{Sender}).
        @param redis: a L{txmsg.redis.RedisService} for the lease and the
            record of fired ticks; L{None}: fire alone, nothing recorded.
        @param name: the schedule's name: schedulers of the same name share
            one lease and one record.
        @param owner: this scheduler's unique name (default: L{default_owner}).
        @param lease: seconds the lease lasts; a dead leader's successor
            takes over at most this long after it died.
        """
        self.schedule = schedule
        self.sender = sender
        self.redis = redis
        self.schedule_name = name
        self.owner = owner or default_owner()
        self.lease_seconds = lease
        self._reactor = reactor
        self.lease = LeaderLease(redis, name, self.owner, lease) if redis is not None else None
        self.leading = False
        self.covered: dict[str, float] = {}
        self.fired = 0
        self._call: IDelayedCall | None = None
        self._renew_at = 0.0
        self._running_pass: Deferred[None] | None = None
        self._retry_at = 0.0
        self._failures = 0

    @property
    def clock(self) -> IReactorTime:
        """The reactor this service schedules on."""
        return maybe_global_reactor(self._reactor)

    def startService(self) -> None:
        """Start competing for the lease and firing."""
        super().startService()
        if self.lease is None:
            self.log.warn(
                "Scheduler {owner} runs without Redis: no lease, no failover; "
                "run only one such scheduler, or ticks fire twice",
                owner=self.owner,
            )
        self.log.info(
            "Scheduler {owner} started with {count} entries: {names}",
            owner=self.owner,
            count=len(self.schedule),
            names=", ".join(e.name for e in self.schedule) or "(none)",
        )
        self._wake(0)

    def stopService(self) -> Deferred[None]:
        """Stop firing; give the lease up so another scheduler takes over at once."""
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        pending = self._running_pass

        async def stop() -> None:
            if pending is not None:
                await pending
            if self.lease is not None and self.leading:
                self.leading = False
                try:
                    await self.lease.release()
                except Exception as e:
                    self.log.warn("Could not release the scheduler lease: {error}", error=e)

        return ensureDeferred(stop())

    def _wake(self, delay: float) -> None:
        if not self.running:
            return
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = self.clock.callLater(max(0.0, delay), self._pass)

    def _pass(self) -> None:
        self._call = None
        d = ensureDeferred(self.run_once())
        self._running_pass = d

        def done(result: Any) -> None:
            self._running_pass = None
            if hasattr(result, "value"):
                self.log.failure("Scheduler pass failed", result)
            self._wake(self._sleep_seconds())

        d.addBoth(done)

    def _sleep_seconds(self) -> float:
        now = self.clock.seconds()
        wake = self._renew_at if self.lease is not None else now + 60.0
        if self._retry_at > now:
            return min(wake, self._retry_at) - now
        if self.leading or self.lease is None:
            for entry in self.schedule:
                wake = min(wake, next_tick(entry, self.covered.get(entry.name, now)))
        return wake - now

    async def run_once(self) -> None:
        """
        One pass: renew (or try to take) the lease, then fire what is due.
        """
        now = self.clock.seconds()
        if self.lease is not None:
            await self._renew(now)
            if not self.leading:
                return
        for entry in self.schedule:
            covered = self.covered.setdefault(entry.name, now)
            for tick in due_ticks(entry, covered, self.clock.seconds()):
                task_id = tick_task_id(entry.name, tick)
                try:
                    await self.fire(entry, task_id)
                    if self.lease is not None:
                        await self.lease.cover(entry.name, tick)
                except NotLeader:
                    self._step_down("another scheduler took the lease over")
                    return
                except Exception as e:
                    # The tick stays due: the next pass (after RETRY_DELAY)
                    # sends it again under the same id.
                    self._retry_at = self.clock.seconds() + RETRY_DELAY
                    self._failures += 1
                    if should_log(self._failures):
                        self.log.warn(
                            "Could not fire {id} (retrying every {delay:g} s): {error}",
                            id=task_id,
                            delay=RETRY_DELAY,
                            error=one_line(Failure(e)),
                        )
                    return
                self.covered[entry.name] = tick

    async def _renew(self, now: float) -> None:
        assert self.lease is not None
        try:
            token = await self.lease.acquire()
        except Exception as e:
            if self.leading:
                self._step_down("cannot renew the lease: {}".format(e))
            self._renew_at = now + self.lease_seconds / 3
            return
        self._renew_at = now + self.lease_seconds / 3
        if token and not self.leading:
            record = await self.lease.read_covered()
            self.covered = {e.name: record.get(e.name, now) for e in self.schedule}
            self.leading = True
            self.log.info(
                "Scheduler {owner} is the leader (fencing token {token})",
                owner=self.owner,
                token=token,
            )
        elif not token and self.leading:
            self._step_down("another scheduler holds the lease")

    def _step_down(self, why: str) -> None:
        if self.leading:
            self.log.warn("Scheduler {owner} stops leading: {why}", owner=self.owner, why=why)
        self.leading = False

    async def fire(self, entry: Entry, task_id: str) -> None:
        """Send one tick of C{entry} with id C{task_id}."""
        await self.sender(entry, task_id)
        self.fired += 1
        self.log.info("Fired {entry} as task {id}", entry=entry.name, id=task_id)
