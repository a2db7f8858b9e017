# -*- test-case-name: txmsg.test.test_redis_cache -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A Redis cache with TTLs, safe serializers and stampede protection (seeds S8,
S4).

    cache = Cache(redis, namespace="myapp")               # JSON values
    await cache.set("user:1", {"name": "Ada"}, ttl=3600)
    user = await cache.get("user:1")                      # None when missing
    user = await cache.get_or_compute("user:1", lambda: load_user(1), ttl=3600)

B{Serializers.}  JSON by default; C{"msgpack"} (needs the msgpack package);
C{"text"}/C{"bytes"}; C{"pickle"} only when named.  B{Pickle executes code}:
anyone who can write to your Redis (another app sharing it, an attacker who
reached it) can run arbitrary code in every process that reads a pickled
cache entry.  Use it only for a Redis nobody else can write to.  A JSON or
msgpack cache never unpickles anything: a pickled value found under its key
is just undecodable.

B{Undecodable values} (written by another app, another serializer, or an
older version) make L{Cache.get} fail with L{CacheDecodeError}, a clear error
the caller can handle; L{Cache.get_or_compute} logs it and treats the entry
as a miss (recomputes and overwrites it), so a bad entry never takes your
service down.

B{Stampede protection} in L{Cache.get_or_compute}: concurrent misses for one
key compute once.  In one process, concurrent callers share one computation
(they all get its result or its failure).  Across processes, the computing
process holds a L{Lock} on C{"<namespace>.lock:<key>"}; the others poll the
cache every C{lock_retry} seconds and return the value as soon as it is there.
If the holder dies, its lock expires after C{compute_timeout} and another
process computes.  If nothing arrives within C{lock_wait} seconds, a waiter
computes anyway (correct but duplicated work, logged).

B{Keys} are C{"<namespace>:<key>"}, so several apps can share one Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.redis._common import (
    as_bytes,
    call,
    handler_of,
    join_key,
    resolve_reactor,
    sleep,
)
from txmsg.redis.lock import Lock, LockNotOwned
from txmsg.serializers import SerializationError, Serializer, get_serializer

__all__ = ["Cache", "CacheDecodeError"]

_MISSING = object()


class CacheDecodeError(SerializationError):
    """
    A cached value could not be decoded with the cache's serializer.

    @ivar key: the full Redis key.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode cache entry {key!r}: {reason}")
        self.key = key


class Cache:
    """
    Key/value cache in Redis.

    @ivar namespace: key prefix.
    @ivar serializer: the codec.
    """

    log = Logger()

    def __init__(
        self,
        redis: Any,
        *,
        namespace: str = "cache",
        serializer: str | Serializer = "json",
        default_ttl: float | None = None,
        compute_timeout: float = 30.0,
        lock_wait: float = 10.0,
        lock_retry: float = 0.05,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param redis: a L{RedisConnection}, L{RedisService} or command handler.
        @param namespace: key prefix (C{""}: none).
        @param serializer: C{"json"} (default), C{"msgpack"}, C{"text"},
            C{"bytes"}, C{"pickle"} (executes code from whoever can write to
            Redis; trusted deployments only) or a serializer object.
        @param default_ttl: seconds, when L{set} gets none (C{None}: no expiry).
        @param compute_timeout: TTL of the cross-process compute lock.
        @param lock_wait: how long a waiter waits for another process's
            computation before computing itself.
        @param lock_retry: seconds between a waiter's checks.
        @param reactor: the clock (global reactor when C{None}).
        """
        self._redis = redis
        self.namespace = namespace
        self.serializer = get_serializer(serializer)
        self.default_ttl = default_ttl
        self.compute_timeout = compute_timeout
        self.lock_wait = lock_wait
        self.lock_retry = lock_retry
        self._reactor = resolve_reactor(reactor, redis)
        self._lock_namespace = (namespace + ".lock") if namespace else "lock"
        self._inflight: dict[str, list[Deferred[Any]]] = {}
        self.computations = 0

    def __repr__(self) -> str:
        return f"<Cache {self.namespace} {self.serializer.name}>"

    def key(self, key: str) -> str:
        """
        The Redis key of cache entry C{key}.
        """
        return join_key(self.namespace, key)

    @property
    def _handler(self) -> Any:
        return handler_of(self._redis)

    def _decode(self, key: str, raw: Any) -> Any:
        try:
            return self.serializer.loads(as_bytes(raw))
        except Exception as e:
            raise CacheDecodeError(self.key(key), f"{type(e).__name__}: {e}") from e

    def _lookup(self, key: str) -> Deferred[Any]:
        """
        The decoded value, or C{_MISSING}.
        """
        d = self._handler.execute_command("GET", self.key(key))
        return d.addCallback(lambda raw: _MISSING if raw is None else self._decode(key, raw))

    def get(self, key: str, default: Any = None) -> Deferred[Any]:
        """
        Fires with the cached value, or C{default} when there is none; fails
        with L{CacheDecodeError} when the stored bytes do not decode.
        """
        return self._lookup(key).addCallback(lambda v: default if v is _MISSING else v)

    def set(self, key: str, value: Any, ttl: float | None = None) -> Deferred[None]:
        """
        Store C{value} for C{ttl} seconds (default: C{default_ttl}; C{None}:
        no expiry).  Fails with L{SerializationError} if it cannot be encoded.
        """
        try:
            data = self.serializer.dumps(value)
        except Exception as e:
            return fail(e)
        ttl = self.default_ttl if ttl is None else ttl
        args: list[Any] = ["SET", self.key(key), data]
        if ttl is not None:
            if ttl <= 0:
                return fail(ValueError("ttl must be positive"))
            args += ["PX", max(1, int(round(ttl * 1000)))]
        return self._handler.execute_command(*args).addCallback(lambda _: None)

    def delete(self, key: str) -> Deferred[bool]:
        """
        Remove an entry; fires C{True} if it existed.
        """
        return self._handler.execute_command("DEL", self.key(key)).addCallback(bool)

    def get_or_compute(
        self, key: str, compute: Callable[[], Any], ttl: float | None = None
    ) -> Deferred[Any]:
        """
        Read-through: the cached value, or C{compute()} (a value, Deferred or
        coroutine) stored for C{ttl} seconds and returned.  Concurrent misses
        for one key compute once (see the module docs).
        """
        waiters = self._inflight.get(key)
        d: Deferred[Any] = Deferred()
        if waiters is not None:
            waiters.append(d)
            return d
        self._inflight[key] = [d]

        def share(result: Any) -> None:
            for w in self._inflight.pop(key, []):
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(result)

        Deferred.fromCoroutine(self._get_or_compute(key, compute, ttl)).addBoth(share)
        return d

    async def _cached(self, key: str) -> Any:
        try:
            return await self._lookup(key)
        except CacheDecodeError as e:
            self.log.warn("Ignoring undecodable cache entry: {error}", error=e)
            return _MISSING

    async def _get_or_compute(self, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        value = await self._cached(key)
        if value is not _MISSING:
            return value
        lock = Lock(
            self._redis,
            key,
            namespace=self._lock_namespace,
            ttl=self.compute_timeout,
            reactor=self._reactor,
        )
        deadline = self._reactor.seconds() + self.lock_wait
        while not await lock.try_acquire():
            if self._reactor.seconds() >= deadline:
                self.log.warn(
                    "No value for {key} after waiting {wait} s for another process; computing",
                    key=self.key(key),
                    wait=self.lock_wait,
                )
                return await self._compute_and_store(key, compute, ttl)
            await sleep(self._reactor, self.lock_retry)
            value = await self._cached(key)
            if value is not _MISSING:
                return value
        try:
            value = await self._cached(key)  # filled while we took the lock?
            if value is not _MISSING:
                return value
            return await self._compute_and_store(key, compute, ttl)
        finally:
            try:
                await lock.release()
            except LockNotOwned:
                self.log.warn(
                    "Computing {key} outlived compute_timeout; others may have computed too",
                    key=self.key(key),
                )
            except Exception:
                self.log.failure("Could not release the compute lock of {key}", key=self.key(key))

    async def _compute_and_store(
        self, key: str, compute: Callable[[], Any], ttl: float | None
    ) -> Any:
        self.computations += 1
        value = await call(compute)
        await self.set(key, value, ttl)
        return value
