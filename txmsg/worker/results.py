# -*- test-case-name: txmsg.test.test_worker_results -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Task states and results in Redis, readable from any process.

Keys (every key of one task shares the hash tag C{{<task id>}}, so each
lives in one Redis Cluster slot)::

    txmsg:{<id>}:result   hash: the task's L{TaskState} fields, with a TTL
    txmsg:{<id>}:events   channel: each new status is published here
    txmsg:revoked         sorted set: revoked ids, scored by when they lapse
    txmsg:revoke          channel: every revoke is broadcast here

A status is written by one Lua script that reads the current status, checks
the transition (L{txmsg.worker.states}), writes the fields, renews the TTL
and publishes the new status: one round trip, atomic, so a terminal status
is never overwritten.  Values are JSON or plain text, never pickle.

Waiting (L{RedisResultStore.wait}) subscribes to the task's channel first
and reads the state second, so a result written between the two is not
missed, and reads it again each time the subscription is re-established
(after a reconnect or a Sentinel failover, publishes are not replayed); it
never polls.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import classImplements, implementer

from txmsg._waiters import Waiters
from txmsg.redis._common import Script, resolve_reactor
from txmsg.redis.service import RedisService
from txmsg.worker._lifecycle import one_line
from txmsg.worker.result_store import IResultStore, ITaskState
from txmsg.worker.states import (
    PENDING,
    REVOKE_FROM,
    REVOKED,
    STATUSES,
    TERMINAL,
    TaskState,
    allowed_from,
    decode_state,
    encode_fields,
)

__all__ = [
    "DEFAULT_TTL",
    "REVOKE_CHANNEL",
    "REVOKED_KEY",
    "RECORD",
    "RedisResultStore",
    "ResultTimeout",
    "events_channel",
    "result_key",
]

# TaskState (a pure module's value) is what task references read.
classImplements(TaskState, ITaskState)

#: Seconds a task's state is kept after its last change (24 hours).
DEFAULT_TTL = 86400
#: The sorted set of revoked task ids.
REVOKED_KEY = "txmsg:revoked"
#: The channel every revoke is broadcast on (the payload is the task id).
REVOKE_CHANNEL = "txmsg:revoke"


def result_key(task_id: str) -> str:
    """The hash holding task C{task_id}'s state."""
    return "txmsg:{" + task_id + "}:result"


def events_channel(task_id: str) -> str:
    """The channel task C{task_id}'s new statuses are published on."""
    return "txmsg:{" + task_id + "}:events"


def _lua_transitions() -> str:
    """
    The lifecycle's table (L{txmsg.worker.states.allowed_from}) as a Lua
    table literal: status -> " from1 from2 ... ".
    """
    rows = [
        "['{}'] = ' {} '".format(status, " ".join(sorted(allowed_from(status))))
        for status in STATUSES
    ]
    return "{" + ", ".join(rows) + "}"


# KEYS: the state hash (txmsg:{<id>}:result)   ARGV: new status, the
# statuses it may replace ("" for the lifecycle's rule, else space-separated,
# "none" for no state yet), TTL seconds, then field/value pairs.  Publishes
# the new status on txmsg:{<id>}:events.  Returns the status stored
# afterwards: the new one, or the current one when the change is refused.
RECORD = Script(
    "results.record",
    """
local current = redis.call('hget', KEYS[1], 'status') or 'none'
local allowed = ARGV[2]
if allowed == '' then
  allowed = ("""
    + _lua_transitions()
    + """)[ARGV[1]] or ''
else
  allowed = ' ' .. allowed .. ' '
end
if not string.find(allowed, ' ' .. current .. ' ', 1, true) then
  return current
end
redis.call('hset', KEYS[1], 'status', ARGV[1], unpack(ARGV, 4))
redis.call('expire', KEYS[1], ARGV[3])
redis.call('publish', string.sub(KEYS[1], 1, -7) .. 'events', ARGV[1])
return ARGV[1]
""",
)

# KEYS: the revoked set   ARGV: task id, until (epoch seconds), now
REVOKE = Script(
    "results.revoke",
    """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[3])
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
return 1
""",
)


class ResultTimeout(TimeoutError):
    """
    A task did not reach a terminal status within the time asked for.

    @ivar task_id: the task id.
    @ivar state: its state when the wait ended (L{None}: nothing stored).
    """

    def __init__(self, task_id: str, timeout: float, state: TaskState | None = None) -> None:
        status = state.status if state is not None else "nothing stored"
        super().__init__("task {} not finished within {:g}s ({})".format(task_id, timeout, status))
        self.task_id = task_id
        self.state = state


@implementer(IResultStore)
class RedisResultStore:
    """
    Task states in Redis (see the module docs for the keys).

    @ivar redis: the L{txmsg.redis.RedisService} (commands and pub/sub).
    @ivar ttl: seconds a state is kept after its last change.
    @ivar revoke_ttl: seconds a revoke is remembered.
    """

    log = Logger(namespace="txmsg.worker.results")

    def __init__(
        self,
        redis: RedisService,
        *,
        ttl: int = DEFAULT_TTL,
        revoke_ttl: int | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param redis: a L{txmsg.redis.RedisService} (started by its owner).
        @param ttl: seconds a state is kept after its last change.
        @param revoke_ttl: seconds a revoke is remembered (default: C{ttl}).
        @param clock: timestamps and wait timeouts (default: the reactor of
            C{redis}).
        """
        if ttl < 1:
            raise ValueError("the results TTL must be at least 1 second")
        self.redis = redis
        self.ttl = int(ttl)
        self.revoke_ttl = int(revoke_ttl if revoke_ttl is not None else ttl)
        self.clock = resolve_reactor(clock, redis)

    def now(self) -> float:
        """The current time, for timestamps."""
        return float(self.clock.seconds())

    # -- writing -----------------------------------------------------------------

    def record(
        self,
        task_id: str,
        status: str,
        *,
        may_replace: frozenset[str] | None = None,
        **fields: Any,
    ) -> Deferred[str]:
        """
        Set the status of C{task_id} (and C{fields}, see
        L{txmsg.worker.states.TaskState}) if the lifecycle allows it.

        @param may_replace: the statuses it may replace (default: the
            lifecycle's rule for C{status}).
        @return: a Deferred firing with the status stored afterwards: the
            new one, or the one that was kept because the change was not
            allowed (e.g. C{"succeeded"}).
        @raise TypeError: at once, when C{result} is not JSON-serializable.
        """
        if may_replace is None:
            allowed_from(status)  # an unknown status fails here, not in Redis
            replace = ""
        else:
            replace = " ".join(sorted(may_replace))
        args = [status, replace, str(self.ttl)]
        args += encode_fields(**fields)
        d: Deferred[Any] = RECORD(self.redis.handler, [result_key(task_id)], args)
        return d.addCallback(_text)

    def pending(self, task_id: str, task: str, **fields: Any) -> Deferred[str]:
        """
        Record that C{task_id} (task C{task}) was submitted: call before
        publishing it.
        """
        return self.record(task_id, PENDING, task=task, created=self.now(), **fields)

    def submitted(self, task_id: str, task: str) -> None:
        """
        Record C{pending} for a task being published, without waiting: the
        write goes before the publish on this store's connection, so this
        store reads C{pending} at once; should a worker's write reach Redis
        first, the lifecycle refuses the late C{pending}.  A failure is
        logged.
        """

        def failed(failure: Failure) -> None:
            self.log.warn(
                "Could not record task {id} as pending: {error}",
                id=task_id,
                error=one_line(failure),
            )

        self.pending(task_id, task).addErrback(failed)

    async def _revoke(self, task_id: str) -> None:
        now = self.now()
        await REVOKE(
            self.redis.handler, [REVOKED_KEY], [task_id, repr(now + self.revoke_ttl), repr(now)]
        )
        # Only a task that is not running is marked now; a running one is
        # marked by the worker that cancels it.
        await self.record(task_id, REVOKED, may_replace=REVOKE_FROM, finished=now)
        await self.redis.publish(REVOKE_CHANNEL, task_id.encode("utf-8"), encode="bytes")

    def revoke(self, task_id: str) -> Deferred[None]:
        """
        See L{IResultStore.revoke}: the id goes into L{REVOKED_KEY} (for
        workers that start later), its status becomes C{revoked} unless it
        is running or finished, and the revoke is broadcast on
        L{REVOKE_CHANNEL} (running copies are cancelled by their workers).
        """
        return Deferred.fromCoroutine(self._revoke(task_id))

    def revoked(self) -> Deferred[dict[str, float]]:
        """
        The ids revoked and not lapsed yet: id -> when the revoke lapses.
        """
        d: Deferred[Any] = self.redis.handler.execute_command(
            "ZRANGEBYSCORE", REVOKED_KEY, repr(self.now()), "+inf", "WITHSCORES"
        )

        def pairs(reply: Any) -> dict[str, float]:
            items = list(reply or [])
            return {_text(k): float(v) for k, v in zip(items[::2], items[1::2], strict=False)}

        return d.addCallback(pairs)

    # -- reading -----------------------------------------------------------------

    def status(self, task_id: str) -> Deferred[TaskState | None]:
        """
        See L{IResultStore.status}.
        """
        d: Deferred[Any] = self.redis.handler.execute_command("HGETALL", result_key(task_id))
        return d.addCallback(lambda reply: decode_state(task_id, _hash(reply)))

    def wait(self, task_id: str, timeout: float | None = None) -> Deferred[TaskState]:
        """
        See L{IResultStore.wait}: subscribe to the task's channel, then
        read its state; read again after each terminal status published.
        """
        last: list[TaskState | None] = [None]
        d = Deferred.fromCoroutine(self._wait(task_id, last))
        if timeout is not None:
            d.addTimeout(
                timeout,
                self.clock,
                onTimeoutCancel=lambda result, t: _timed_out(task_id, timeout, last[0]),
            )
        return d

    async def _wait(self, task_id: str, last: list[TaskState | None]) -> TaskState:
        signal: Waiters[None] = Waiters(self.clock)
        seen = [0]

        def published(data: Any) -> None:
            if _text(data) in TERMINAL:
                seen[0] += 1
                signal.fire(None)

        def resubscribed(_: Any) -> None:
            # A status published while the subscriber reconnected (a
            # restart, a Sentinel failover) was not delivered: read again.
            seen[0] += 1
            signal.fire(None)
            sub.when_resubscribed().addCallbacks(resubscribed, lambda _: None)

        sub = self.redis.subscribe(events_channel(task_id), published, data_only=True)
        try:
            await sub.when_active()
            sub.when_resubscribed().addCallbacks(resubscribed, lambda _: None)
            while True:
                count = seen[0]
                state = last[0] = await self.status(task_id)
                if state is not None and state.done:
                    return state
                if seen[0] == count:
                    await signal.wait()
        finally:
            sub.cancel()


def _timed_out(task_id: str, timeout: float, state: TaskState | None) -> TaskState:
    raise ResultTimeout(task_id, timeout, state)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _hash(reply: Any) -> dict[Any, Any]:
    if isinstance(reply, dict):
        return reply
    items = list(reply or [])
    return dict(zip(items[::2], items[1::2], strict=False))
