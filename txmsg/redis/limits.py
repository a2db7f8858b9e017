# -*- test-case-name: txmsg.test.test_redis_limits -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Limits shared by every worker, kept in Redis: a rate (L{RateLimit}) and a
number of concurrent runs (L{ConcurrencyLimit}).

Both read the time from Redis (C{TIME}), so that workers with different
clocks agree, and both answer in one round trip (one Lua script).

B{Rate} (C{"100/s"}, C{"30/m"}, C{"1000/h"}): GCRA with reservations.  The
limit is one start every C{period / count}; the script keeps the
theoretical arrival time (TAT) of the next free slot.  A task that asks
when the slot is free runs now; otherwise it is I{given} the next free slot
(TAT moves on by one interval) and told how long to wait for it: the
worker puts it back to wait in the broker for that long, and when it
returns, its reservation (kept in a sorted set by task id) lets it run
without asking again.  So over-limit tasks wait exactly once, in order, and
the slots are used back to back: the achieved rate is the limit, not a
fraction of it lost to tasks retrying at random.

B{Concurrency} (C{max_concurrency=N}): a semaphore with leases.  Each
holder is a member of a sorted set scored by its lease expiry; acquiring
drops expired holders first, so the slots of a worker that died
(SIGKILL) come back when their leases run out.  A running holder renews
its lease (L{ConcurrencyLimit.renew}) every third of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from txmsg.redis._common import Script, handler_of

__all__ = ["ConcurrencyLimit", "Rate", "RateLimit", "parse_rate"]

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")

# KEYS: tat, reserved.  ARGV: interval ms, task id, grace ms.
# Returns the ms to wait (0: run now).
_RESERVE = Script(
    "limits.reserve",
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local grace = tonumber(ARGV[3])
redis.call('zremrangebyscore', KEYS[2], '-inf', now - 3600000)
local slot = redis.call('zscore', KEYS[2], ARGV[2])
if slot then
  slot = tonumber(slot)
  if slot - now > grace then
    return slot - now
  end
  redis.call('zrem', KEYS[2], ARGV[2])
  return 0
end
local tat = tonumber(redis.call('get', KEYS[1]) or '0')
if tat < now then
  tat = now
end
redis.call('set', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
if tat - now <= grace then
  return 0
end
redis.call('zadd', KEYS[2], tat, ARGV[2])
redis.call('pexpire', KEYS[2], tat - now + 3600000)
return tat - now
""",
)

# KEYS: holders.  ARGV: holder, limit, lease ms.  Returns 1 if held, else 0.
_ACQUIRE = Script(
    "limits.acquire",
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zscore', KEYS[1], ARGV[1]) or
   redis.call('zcard', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('zadd', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('pexpire', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
""",
)

# KEYS: holders.  ARGV: holder, lease ms.  Returns 1 if still held.
_RENEW = Script(
    "limits.renew",
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('zscore', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  return 0
end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
""",
)


@dataclass(frozen=True)
class Rate:
    """
    A rate limit: C{count} starts per C{period} seconds.
    """

    count: float
    period: float

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.period / self.count

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIODS.items()}[self.period]
        return "{:g}/{}".format(self.count, unit)


def parse_rate(text: str) -> Rate:
    """
    C{"100/s"}, C{"30/m"}, C{"1000/h"} (also fractional counts, C{"0.5/s"}).

    @raise ValueError: naming the accepted forms.
    """
    match = _RATE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            "rate limit {!r} must look like 100/s, 30/m or 1000/h (a positive count)".format(text)
        )
    return Rate(float(match.group(1)), _PERIODS[match.group(2)])


class RateLimit:
    """
    One task's rate, shared by all workers.
    """

    def __init__(self, redis: Any, name: str, rate: Rate, grace: float = 0.005) -> None:
        """
        @param redis: a L{txmsg.redis.RedisService}, connection or handler.
        @param name: what is limited (the task name); part of the keys.
        @param rate: the limit.
        @param grace: a reservation this close (seconds) runs now.
        """
        self.redis = redis
        self.rate = rate
        self.grace = grace
        tag = "txmsg:{{rate:{}}}".format(name)
        self.keys = [tag + ":tat", tag + ":reserved"]

    def reserve(self, task_id: str) -> Deferred[float]:
        """
        Take a start for C{task_id}: the Deferred fires with 0 (run now) or
        the seconds to wait (wait that long in the broker, then ask again
        with the same id: the slot is kept for it).
        """
        interval_ms = max(1, int(round(self.rate.interval * 1000)))
        d = _RESERVE(
            handler_of(self.redis),
            self.keys,
            [interval_ms, task_id, int(self.grace * 1000)],
        )
        return d.addCallback(lambda ms: int(ms) / 1000.0)


class ConcurrencyLimit:
    """
    At most C{limit} holders at once across all workers, each for at most
    C{lease} seconds unless renewed.
    """

    def __init__(self, redis: Any, name: str, limit: int, lease: float = 30.0) -> None:
        """
        @param redis: a L{txmsg.redis.RedisService}, connection or handler.
        @param name: what is limited (the task name); part of the key.
        @param limit: holders at once (at least 1).
        @param lease: seconds a holder keeps its slot without renewing.
        """
        if limit < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.redis = redis
        self.limit = limit
        self.lease = lease
        self.key = "txmsg:{{concurrency:{}}}:holders".format(name)

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    def acquire(self, holder: str) -> Deferred[bool]:
        """Take a slot for C{holder}; fires with whether it got one."""
        d = _ACQUIRE(handler_of(self.redis), [self.key], [holder, self.limit, self._lease_ms])
        return d.addCallback(lambda r: bool(int(r)))

    def renew(self, holder: str) -> Deferred[bool]:
        """Extend C{holder}'s lease; fires with whether it still held it."""
        d = _RENEW(handler_of(self.redis), [self.key], [holder, self._lease_ms])
        return d.addCallback(lambda r: bool(int(r)))

    def release(self, holder: str) -> Deferred[Any]:
        """Give C{holder}'s slot back."""
        d: Deferred[Any] = handler_of(self.redis).execute_command("ZREM", self.key, holder)
        return d
