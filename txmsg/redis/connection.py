# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis command connection: a service owning txredisapi's own reconnecting
pool, with a deadline on every command.

    conn = RedisConnection("redis://127.0.0.1:6379/0")
    conn.setServiceParent(app)            # or conn.startService()
    await conn.when_connected(timeout=5)
    await conn.handler.set("k", b"\\x00bytes")
    value = await conn.handler.get("k")

C{handler} is txredisapi's own handler (every Redis command txredisapi has:
strings, hashes, lists, sets, zsets, C{multi()}, C{pipeline()}...) seen
through a L{DeadlineProxy}.  Types are explicit:

  - replies: with C{decode_responses=True} (default) bulk replies are C{str}
    when they are valid UTF-8 and C{bytes} otherwise; with
    C{decode_responses=False} every bulk reply is C{bytes}.  Numbers are never
    converted (C{"00123"} stays C{"00123"}); integer replies are C{int}.
  - arguments: C{bytes} are sent unchanged, C{str} as UTF-8, C{int} in
    decimal, C{float} with C{repr}; C{None}/C{True}/C{False} raise
    C{TypeError} instead of being stored as the text C{"None"}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txmsg._reactor import maybe_global_reactor
from txmsg.events import IEventSink
from txmsg.redis._deadline import DeadlineProxy, RedisCommandTimeout
from txmsg.redis._state import ConnectionState, RedisConnectionFailed
from txmsg.redis.url import RedisURL, parse_redis_url

__all__ = [
    "RedisCommandTimeout",
    "RedisConnection",
    "RedisConnectionFailed",
    "RedisNotRunning",
]


class RedisNotRunning(Exception):
    """
    The Redis service is not started (or was stopped).
    """


class RedisConnection(Service):
    """
    An C{IService} owning a pool of reconnecting txredisapi connections.

    txredisapi reconnects by itself (one C{ClientService} per pool slot, with
    backoff); this service starts it on an endpoint built on the injected
    reactor, reports C{redis.connected}/C{redis.lost} to C{events}, and
    stops it with C{factory.disconnect()}.

    @ivar url: the parsed L{RedisURL}.
    @ivar state: the L{ConnectionState} (C{state.is_connected}).
    """

    log = Logger()

    def __init__(
        self,
        url: str | RedisURL | None = None,
        *,
        poolsize: int = 1,
        command_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        decode_responses: bool = True,
        reactor: IReactorTime | None = None,
        events: IEventSink | None = None,
    ) -> None:
        """
        @param url: Redis URL; C{None} reads C{TXMSG_REDIS_URL}.
        @param poolsize: connections in the pool.
        @param command_timeout: deadline of every command, in seconds.
        @param connect_timeout: TCP connect timeout, in seconds.
        @param decode_responses: C{False} makes every bulk reply C{bytes}.
        @param reactor: the reactor (global one when C{None}).
        @param events: event sink for C{redis.connected}/C{redis.lost}.
        """
        self.url = parse_redis_url(url)
        self.poolsize = poolsize
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.decode_responses = decode_responses
        self.events = events
        self._reactor = reactor
        self.state = ConnectionState("commands", self.url.redacted(), events)
        self._factory: Any = None
        self._handler: DeadlineProxy | None = None

    @property
    def reactor(self) -> Any:
        """
        The reactor in use (resolved late).
        """
        self._reactor = maybe_global_reactor(self._reactor)
        return self._reactor

    def _build_factory(self) -> Any:
        # txredisapi (under _factory) installs the global reactor when imported
        from txmsg.redis._factory import CommandFactory

        url = self.url
        factory = CommandFactory(
            f"{url.host or url.path or url.service}:{url.port or 0}",
            url.db,
            self.poolsize,
            True,
            charset="utf-8" if self.decode_responses else None,
            password=url.password,
            convertNumbers=False,
            username=url.username,
        )
        factory.state = self.state
        return factory

    def startService(self) -> None:
        """
        Start connecting (and reconnecting) the pool.
        """
        super().startService()
        self.state.stopping = False
        self._factory = self._build_factory()
        self._handler = DeadlineProxy(
            self._factory.handler,
            self.command_timeout,
            self.reactor,
            self.state.describe,
        )
        self.log.info("Connecting to Redis at {url}", url=self.url.redacted())
        self._factory.startConnecting(self.url.endpoint(self.reactor, self.connect_timeout))

    def stopService(self) -> Deferred[None]:
        """
        Stop reconnecting, close every connection; fires when closed.  Pending
        commands errback.
        """
        super().stopService()
        self.state.stopping = True
        self.state.fail_waiters(RedisNotRunning("Redis connection stopped"))
        factory, self._factory = self._factory, None
        self._handler = None
        if factory is None:
            return succeed(None)
        return maybeDeferred(factory.disconnect).addCallback(lambda _: None)

    @property
    def handler(self) -> Any:
        """
        The txredisapi handler for ordinary commands, every command with a
        deadline (L{DeadlineProxy}).

        @raise RedisNotRunning: when the service is not running.
        """
        if self._handler is None:
            raise RedisNotRunning(f"RedisConnection for {self.url.redacted()} is not running")
        return self._handler

    @property
    def raw_handler(self) -> Any:
        """
        The txredisapi handler itself, without deadlines (for code that
        manages its own, e.g. long blocking pops).
        """
        return self.handler.target

    def when_connected(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fire once a connection is usable.

        @param timeout: seconds before failing with L{RedisCommandTimeout};
            C{None} waits until connected or stopped.
        """
        d = self.state.when_connected()
        if timeout is not None and not d.called:

            def timedOut(result: Any, _t: float) -> Any:
                raise RedisCommandTimeout(
                    f"no Redis connection within {timeout:g} s ({self.state.describe()})"
                )

            d.addTimeout(timeout, self.reactor, onTimeoutCancel=timedOut)
        return d
