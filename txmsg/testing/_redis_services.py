# -*- test-case-name: txmsg.test.test_contract_redis -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The real L{RedisConnection}, L{PubSub} and L{RedisService}, connected to a
L{MemoryRedis} instead of a server: connections that
can drop and come back, commands held while down, and a subscriber feeding
L{PubSub}'s router interface.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed

from txmsg.events import IEventSink
from txmsg.redis._deadline import DeadlineProxy
from txmsg.redis.connection import RedisConnection
from txmsg.redis.pubsub import PubSub
from txmsg.redis.service import RedisService
from txmsg.testing._redis import MemoryRedisCore, MemoryRedisHandler, _tx_error
from txmsg.testing._redis_reply import _b

__all__ = ["MemoryPubSub", "MemoryRedis", "MemoryRedisConnection", "MemoryRedisService"]

_URL = "redis://memory-redis:6379/0"


class _Link:
    """A connection's up/down state, held commands and reconnection."""

    up = False

    def __init__(self, redis: MemoryRedisCore, state: Any, on_up: Any, on_down: Any) -> None:
        self.redis = redis
        self.state = state
        self._on_up = on_up
        self._on_down = on_down
        self._held: list = []
        self._retry: Any = None
        self.closed = False

    def connect(self) -> None:
        self._retry = None
        if self.closed:
            return
        if self.redis.refusing:
            self._retry = self.redis.clock.callLater(self.redis.reconnect_delay, self.connect)
            return
        self.up = True
        self.redis._connections.append(self)
        self.state.connected(1)
        self._on_up()
        held, self._held = self._held, []
        for d, args in held:
            self.redis.execute_command(*args).chainDeferred(d)

    def _hold(self, args: tuple) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(lambda d: self._held.remove((d, args)))
        self._held.append((d, args))
        return d

    def _drop(self) -> None:
        if not self.up:
            return
        self.up = False
        self.redis._connections.remove(self)
        self._on_down()
        self.state.lost()
        if not self.closed:
            self._retry = self.redis.clock.callLater(self.redis.reconnect_delay, self.connect)

    def disconnect(self) -> Deferred[None]:
        self.closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._drop()
        held, self._held = self._held, []
        for d, _ in held:
            d.errback(_tx_error("ConnectionError", "Not connected"))
        return succeed(None)


class MemoryRedisConnection(RedisConnection):
    """A real L{RedisConnection} whose pool is a L{MemoryRedis} link."""

    def __init__(self, redis: MemoryRedisCore, **kw: Any) -> None:
        kw.setdefault("reactor", redis.clock)
        super().__init__(_URL, **kw)
        self.memory = redis

    def startService(self) -> None:
        """Connect to the memory Redis (at once)."""
        Service.startService(self)
        self.state.stopping = False
        link = _Link(self.memory, self.state, lambda: None, lambda: None)
        self._factory = link
        self._handler = DeadlineProxy(
            MemoryRedisHandler(self.memory, link),
            self.command_timeout,
            self.reactor,
            self.state.describe,
        )
        link.connect()


class _Subscriber:
    """A subscriber connection's subscriptions, feeding a L{PubSub} router."""

    def __init__(self, redis: MemoryRedisCore, router: Any) -> None:
        self.redis = redis
        self.router = router
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()

    def _confirm(self, kind: bytes, names: list, add: bool) -> Deferred[Any]:
        table = self.patterns if kind.startswith(b"p") else self.channels
        for name in names:
            name = _b(name)
            (table.add if add else table.discard)(name)
            method = self.router.confirmed if add else self.router.unconfirmed
            self.redis.clock.callLater(0, self._if_live, method, kind, name)
        return succeed(None)

    def _if_live(self, method: Any, *args: Any) -> None:
        if self in self.redis._subscribers:
            method(*args)

    def subscribe(self, names: list) -> Deferred[Any]:
        return self._confirm(b"subscribe", names, True)

    def psubscribe(self, names: list) -> Deferred[Any]:
        return self._confirm(b"psubscribe", names, True)

    def unsubscribe(self, names: list) -> Deferred[Any]:
        return self._confirm(b"unsubscribe", names, False)

    def punsubscribe(self, names: list) -> Deferred[Any]:
        return self._confirm(b"punsubscribe", names, False)

    def receive(self, channel: bytes, message: bytes) -> int:
        n = 0
        clock = self.redis.clock
        if channel in self.channels:
            n += 1
            clock.callLater(0, self._if_live, self.router.message, channel, message)
        for pattern in self.patterns:
            if fnmatchcase(channel.decode("utf-8", "replace"), pattern.decode("utf-8", "replace")):
                n += 1
                clock.callLater(0, self._if_live, self.router.pmessage, pattern, channel, message)
        return n


class MemoryPubSub(PubSub):
    """A real L{PubSub} whose subscriber connection is a L{MemoryRedis} link."""

    def __init__(self, redis: MemoryRedisCore, **kw: Any) -> None:
        kw.setdefault("reactor", redis.clock)
        super().__init__(_URL, **kw)
        self.memory = redis
        self._sub: _Subscriber | None = None

    def startService(self) -> None:
        """Connect the subscriber (at once)."""
        Service.startService(self)
        self.state.stopping = False
        self._factory = _Link(self.memory, self.state, self._up, self._down)
        self._factory.connect()

    def _up(self) -> None:
        self._sub = _Subscriber(self.memory, self)
        self.memory._subscribers.append(self._sub)
        self.connection_ready(self._sub)

    def _down(self) -> None:
        sub, self._sub = self._sub, None
        if sub in self.memory._subscribers:
            self.memory._subscribers.remove(sub)
        self.connection_lost(sub)


class MemoryRedisService(RedisService):
    """A real L{RedisService} whose connections are L{MemoryRedis} links."""

    def __init__(
        self,
        redis: MemoryRedisCore,
        *,
        events: IEventSink | None = None,
        command_timeout: float = 5.0,
    ) -> None:
        super().__init__(_URL, reactor=redis.clock, events=events, command_timeout=command_timeout)
        self.memory = redis
        for child in (self.connection, self.pubsub):
            child.disownServiceParent()
        self.connection = MemoryRedisConnection(
            redis, events=events, command_timeout=command_timeout
        )
        self.connection.setName("connection")
        self.connection.setServiceParent(self)
        self.pubsub = MemoryPubSub(redis, events=events)
        self.pubsub.setName("pubsub")
        self.pubsub.setServiceParent(self)


class MemoryRedis(MemoryRedisCore):
    """
    An in-memory Redis driven by a clock (strings with TTL, lists, sets,
    sorted sets, hashes, pub/sub with patterns, keyspace expiry events, the
    txmsg primitives' Lua scripts).

    Make services with L{service} (or L{txmsg.testing.memory_redis}); inject
    failures with L{drop_connections}, L{refuse_connections}, L{pause} and
    L{fail_commands}.

    @ivar config: C{CONFIG} values (C{notify-keyspace-events} starts empty,
        as on a stock server).
    @ivar published: C{(channel, message)} bytes pairs, every PUBLISH.
    """

    def service(
        self, events: IEventSink | None = None, command_timeout: float = 5.0
    ) -> MemoryRedisService:
        """A new (not started) L{txmsg.redis.RedisService} on this Redis."""
        return MemoryRedisService(self, events=events, command_timeout=command_timeout)

    def connection(
        self, events: IEventSink | None = None, command_timeout: float = 5.0
    ) -> MemoryRedisConnection:
        """A new (not started) L{txmsg.redis.RedisConnection} on this Redis."""
        return MemoryRedisConnection(self, events=events, command_timeout=command_timeout)
