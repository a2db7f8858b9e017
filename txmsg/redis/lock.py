# -*- test-case-name: txmsg.test.test_redis_lock -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A distributed lock on one Redis key, safe where the seed's were not.

    lock = Lock(redis, "order:42", ttl=10)
    async with lock:                      # waits (without blocking) up to 10 s
        ...                               # we own it for at most ttl seconds
    # or with Deferreds:
    lock.acquire(timeout=5).addCallback(lambda _: work()).addBoth(release)
    lock.run(work)                        # acquire, work(), release

How it works:

  - B{Acquire} is one atomic C{SET key token NX PX ttl}: the key and its
    expiry are written together, so a holder that crashes (even right after
    acquiring) cannot leave an immortal lock; it expires after C{ttl}.  (The
    seed's C{SETNX} then C{EXPIRE} leaves the key without expiry when the
    process dies between the two.)
  - B{Ownership} is a random 128-bit token per acquisition.  Release and
    extend are Lua scripts (C{EVALSHA}, with C{EVAL} on C{NOSCRIPT}) that
    compare the token and delete / C{PEXPIRE} in one step: a holder whose
    lock already expired cannot delete or extend the lock somebody else now
    holds; it gets L{LockNotOwned} instead.  (The seed's C{GETSET} scheme
    trusts client clocks and lets a late holder delete a stranger's lock.)
  - B{Waiting} retries every C{retry_interval} seconds with C{callLater} on
    the injected reactor: the reactor never blocks.  L{LockNotAcquired} after
    C{timeout}.
  - B{Auto-extension} (C{auto_extend=True}) renews the TTL every C{ttl/3}
    while held, on the injected clock; it stops on release, and when a renewal
    finds the lock gone (C{on_lost} is called, L{Lock.lost} becomes true).

Guarantee: while Redis is a single primary that does not lose writes, at most
one token owns the key at a time, and a holder owns it for at most C{ttl}
seconds after it sent the acquiring C{SET} unless it extends it.  A holder
paused longer than its TTL (GC, stopped process) may still run its critical
section after the lock passed to someone else; check L{Lock.release}'s
result (it raises L{LockNotOwned}) or use fencing if that matters.  Not a
Redlock: a failover to a replica that missed the C{SET} can grant the lock
twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txmsg.redis._common import (
    Script,
    call,
    handler_of,
    join_key,
    resolve_reactor,
    sleep,
)

__all__ = ["Lock", "LockError", "LockNotAcquired", "LockNotOwned"]

#: Delete KEYS[1] if it holds ARGV[1] (the owner's token); 1 if deleted.
#: Also the scheduler's lease release.
RELEASE_IF_HELD = Script(
    "lock.release",
    """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
""",
)

_EXTEND = Script(
    "lock.extend",
    """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
""",
)


class LockError(Exception):
    """
    Base class of the lock's errors.
    """


class LockNotAcquired(LockError):
    """
    The lock stayed held by someone else for the whole acquire timeout.
    """


class LockNotOwned(LockError):
    """
    Release or extend of a lock this object does not own (never acquired,
    already released, or expired and possibly taken by another owner).
    """


class Lock:
    """
    One named lock.  One L{Lock} object is one would-be holder: it is not
    re-entrant, and it can be acquired again after release.

    @ivar key: the Redis key (C{"<namespace>:<name>"}).
    @ivar ttl: lock lifetime in seconds.
    @ivar token: the owner token while held, else C{None}.
    @ivar lost: C{True} once auto-extension found the lock gone.
    """

    log = Logger()

    def __init__(
        self,
        redis: Any,
        name: str,
        *,
        ttl: float = 10.0,
        namespace: str = "lock",
        timeout: float | None = 10.0,
        retry_interval: float = 0.1,
        auto_extend: bool = False,
        extend_interval: float | None = None,
        on_lost: Callable[[Lock], Any] | None = None,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param redis: a L{RedisConnection}, L{RedisService} or command handler.
        @param name: the lock's name (key suffix).
        @param ttl: seconds the lock lives unless extended (> 0).
        @param namespace: key prefix, so several apps can share one Redis.
        @param timeout: default acquire timeout (C{None}: wait forever), used
            by C{async with} and L{run}.
        @param retry_interval: default seconds between attempts.
        @param auto_extend: renew the TTL while held.
        @param extend_interval: seconds between renewals (default C{ttl/3}).
        @param on_lost: called with this lock when a renewal finds it gone.
        @param reactor: the clock/reactor (global one when C{None}).
        """
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._redis = redis
        self.key = join_key(namespace, name)
        self.ttl = ttl
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.auto_extend = auto_extend
        self.extend_interval = extend_interval or ttl / 3.0
        self.on_lost = on_lost
        self._reactor = resolve_reactor(reactor, redis)
        self.token: str | None = None
        self.lost = False
        self.valid_until: float | None = None
        self._extender: LoopingCall | None = None

    def __repr__(self) -> str:
        return "<Lock {} {}>".format(self.key, "held" if self.token else "free")

    @property
    def held(self) -> bool:
        """
        C{True} between a successful acquire and release (as far as this
        object knows: the TTL may have run out meanwhile, see L{owned}).
        """
        return self.token is not None

    def try_acquire(self) -> Deferred[bool]:
        """
        One attempt: fires with C{True} if this object now holds the lock.
        """
        if self.token is not None:
            raise LockError(f"{self!r} is already held by this object")
        token = secrets.token_hex(16)
        started = self._reactor.seconds()
        d = handler_of(self._redis).execute_command(
            "SET", self.key, token, "NX", "PX", _ms(self.ttl)
        )

        def done(reply: Any) -> bool:
            if reply is None:
                return False
            self.token = token
            self.lost = False
            self.valid_until = started + self.ttl
            if self.auto_extend:
                self._start_extender()
            return True

        return d.addCallback(done)

    def acquire(
        self, timeout: float | None | object = ..., retry_interval: float | None = None
    ) -> Deferred[Lock]:
        """
        Acquire, retrying every C{retry_interval} seconds (a C{callLater}, the
        reactor keeps running) until C{timeout} seconds have passed.

        @param timeout: seconds; C{0} tries once; C{None} waits forever;
            default: the constructor's.
        @return: fires with this lock, or fails with L{LockNotAcquired}.
        """
        if timeout is ...:
            timeout = self.timeout
        interval = self.retry_interval if retry_interval is None else retry_interval
        return Deferred.fromCoroutine(self._acquire(timeout, interval))  # type: ignore[arg-type]

    async def _acquire(self, timeout: float | None, interval: float) -> Lock:
        deadline = None if timeout is None else self._reactor.seconds() + timeout
        while True:
            if await self.try_acquire():
                return self
            now = self._reactor.seconds()
            if deadline is not None and now >= deadline - 1e-6:
                raise LockNotAcquired(f"{self.key} still held by another owner after {timeout:g} s")
            wait = interval if deadline is None else min(interval, deadline - now)
            await sleep(self._reactor, wait)

    def release(self) -> Deferred[None]:
        """
        Release the lock if this object still owns it (atomic compare and
        delete).  Fails with L{LockNotOwned} when it does not (never acquired,
        or it expired: the critical section may have overlapped another
        holder's).
        """
        self._stop_extender()
        token, self.token = self.token, None
        self.valid_until = None
        if token is None:
            return fail(LockNotOwned(f"{self.key} is not held by this object"))
        d = RELEASE_IF_HELD(handler_of(self._redis), [self.key], [token])

        def done(deleted: Any) -> None:
            if not deleted:
                raise LockNotOwned(
                    f"{self.key} expired before release (and may be held by another owner now)"
                )

        return d.addCallback(done)

    def extend(self, ttl: float | None = None) -> Deferred[None]:
        """
        Reset the lock's remaining lifetime to C{ttl} seconds (default: the
        constructor's) if this object still owns it; L{LockNotOwned} if not.
        """
        token = self.token
        if token is None:
            return fail(LockNotOwned(f"{self.key} is not held by this object"))
        ttl = self.ttl if ttl is None else ttl
        started = self._reactor.seconds()
        d = _EXTEND(handler_of(self._redis), [self.key], [token, _ms(ttl)])

        def done(ok: Any) -> None:
            if not ok:
                if self.token == token:
                    self._mark_lost()
                raise LockNotOwned(f"{self.key} expired; it was not extended")
            if self.token == token:
                self.valid_until = started + ttl

        return d.addCallback(done)

    def owned(self) -> Deferred[bool]:
        """
        Ask Redis whether this object's token still owns the key.
        """
        token = self.token
        d = handler_of(self._redis).execute_command("GET", self.key)
        return d.addCallback(lambda v: token is not None and v == token)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Acquire (constructor timeout), call C{fn(*args, **kwargs)} (value,
        Deferred or coroutine), release; fires with C{fn}'s result.  If the
        lock was lost before release, fails with L{LockNotOwned} (unless C{fn}
        itself failed: that failure wins).
        """

        async def go() -> Any:
            async with self:
                return await call(fn, *args, **kwargs)

        return Deferred.fromCoroutine(go())

    async def __aenter__(self) -> Lock:
        return await self.acquire()

    async def __aexit__(self, kind: Any, value: Any, tb: Any) -> None:
        try:
            await self.release()
        except LockNotOwned:
            if kind is None:
                raise
            self.log.warn(
                "{key} was lost before release; the block raised {kind}",
                key=self.key,
                kind=kind.__name__,
            )

    # auto-extension

    def _start_extender(self) -> None:
        self._stop_extender()
        lc = LoopingCall(self._renew)
        lc.clock = self._reactor
        self._extender = lc
        lc.start(self.extend_interval, now=False).addErrback(
            lambda f: self.log.failure("Lock renewal loop failed", f)
        )

    def _stop_extender(self) -> None:
        lc, self._extender = self._extender, None
        if lc is not None and lc.running:
            lc.stop()

    def _renew(self) -> Deferred[None]:
        def failed(f: Any) -> None:
            if f.check(LockNotOwned):
                return None
            self.log.warn(
                "Could not renew {key} (will retry): {error}",
                key=self.key,
                error=f.getErrorMessage(),
            )

        return self.extend().addErrback(failed)

    def _mark_lost(self) -> None:
        self._stop_extender()
        self.token = None
        self.valid_until = None
        self.lost = True
        self.log.warn("Lock {key} was lost (expired while held)", key=self.key)
        if self.on_lost is not None:
            call(self.on_lost, self).addErrback(
                lambda f: self.log.failure("on_lost callback failed", f)
            )


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))
