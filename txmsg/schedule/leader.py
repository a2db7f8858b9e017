# -*- test-case-name: txmsg.test.test_schedule_leader -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Leader election for schedulers: a lease in Redis with a fencing token.

Any number of schedulers may run; the one holding the lease fires the
ticks.  The lease is one key holding C{<owner>|<token>} with a TTL; whoever
takes it over gets a new, larger token (C{INCR} on a second key, in the same
script).  Every write a leader makes (recording the ticks it fired) is
checked against the lease in the same Lua script: a leader that stalled past
its lease and comes back finds someone else's token there, and its writes
are refused (L{NotLeader}).  What it may still have sent in that window is
caught by the task ids: each tick's id is deterministic, and the worker runs
an id once (see L{txmsg.schedule.service}).

Both keys and the tick record share the hash tag C{{schedule:<name>}}, so a
script's keys live in one Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from txmsg.redis._common import Script, handler_of
from txmsg.redis.lock import RELEASE_IF_HELD

__all__ = ["LeaderLease", "NotLeader", "schedule_keys"]

_ACQUIRE = Script(
    "schedule.acquire",
    """
local current = redis.call('get', KEYS[1])
if current then
  local owner, token = string.match(current, '^(.*)|(%d+)$')
  if owner == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
""",
)

_COVER = Script(
    "schedule.cover",
    """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return -1
end
local current = tonumber(redis.call('hget', KEYS[2], ARGV[2]) or '-1')
if tonumber(ARGV[3]) > current then
  redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
  return 1
end
return 0
""",
)


def schedule_keys(name: str) -> tuple[str, str, str]:
    """
    The Redis keys of schedule C{name}: the lease, the fencing counter, and
    the hash of how far each entry's ticks were fired.
    """
    tag = "txmsg:{{schedule:{}}}".format(name)
    return tag + ":leader", tag + ":fence", tag + ":covered"


class NotLeader(Exception):
    """
    This scheduler's lease is gone: another scheduler took over.
    """


class LeaderLease:
    """
    One scheduler's claim on the lease of one schedule.

    @ivar token: the fencing token while this owner holds the lease, else 0.
    """

    def __init__(self, redis: Any, schedule: str, owner: str, ttl: float = 10.0) -> None:
        """
        @param redis: a L{txmsg.redis.RedisService}, connection or handler.
        @param schedule: the schedule's name (schedulers of one schedule
            compete; different schedules do not).
        @param owner: this scheduler's unique name (no C{|}).
        @param ttl: seconds the lease lasts without renewal.
        """
        if "|" in owner:
            raise ValueError("owner names may not contain '|'")
        self.redis = redis
        self.owner = owner
        self.ttl = ttl
        self.token = 0
        self._leader, self._fence, self._covered = schedule_keys(schedule)

    @property
    def _value(self) -> str:
        return "{}|{}".format(self.owner, self.token)

    def acquire(self) -> Deferred[int]:
        """
        Take the lease, or renew it when this owner holds it.

        @return: a Deferred firing with the fencing token (0: someone else
            holds the lease).
        """

        def got(token: Any) -> int:
            self.token = int(token)
            return self.token

        ttl_ms = max(1, int(self.ttl * 1000))
        d = _ACQUIRE(handler_of(self.redis), [self._leader, self._fence], [self.owner, ttl_ms])
        return d.addCallback(got)

    def release(self) -> Deferred[Any]:
        """Give the lease up now (a clean stop), if this owner holds it."""
        if not self.token:
            return succeed(None)
        value, self.token = self._value, 0
        return RELEASE_IF_HELD(handler_of(self.redis), [self._leader], [value])

    def read_covered(self) -> Deferred[dict[str, float]]:
        """How far each entry's ticks were fired: C{{entry: instant}}."""

        def parse(reply: Any) -> dict[str, float]:
            return {_text(k): float(v) for k, v in (reply or {}).items()}

        d: Deferred[Any] = handler_of(self.redis).hgetall(self._covered)
        return d.addCallback(parse)

    def cover(self, entry: str, instant: float) -> Deferred[None]:
        """
        Record that C{entry}'s ticks up to C{instant} were fired, if this
        owner still holds the lease.

        @raise NotLeader: (in the Deferred) when it does not.
        """

        def checked(reply: Any) -> None:
            if int(reply) < 0:
                self.token = 0
                raise NotLeader("lost the scheduler lease before recording " + entry)

        d = _COVER(
            handler_of(self.redis),
            [self._leader, self._covered],
            [self._value, entry, repr(instant)],
        )
        return d.addCallback(checked)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
