# -*- test-case-name: txmsg.test.test_contract_redis -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Everything Redis behind one C{MultiService}.

    redis = RedisService("redis://127.0.0.1:6379/0", events=registry)
    redis.setServiceParent(application)
    redis.subscribe("fm104.5", on_message, decode="text")
    redis.on_expired("order:*", cancel_order)
    await redis.publish("fm104.5", "hello")
    await redis.handler.hset("user:1", "name", "Ada")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txmsg.events import IEventSink
from txmsg.redis._delivery import Message, Subscription
from txmsg.redis.connection import RedisConnection
from txmsg.redis.control import ControlListener, Handler
from txmsg.redis.keyspace import ExpiredKey, KeyExpiry
from txmsg.redis.pubsub import PubSub, publish
from txmsg.redis.url import RedisURL, parse_redis_url
from txmsg.serializers import Serializer

__all__ = ["RedisService"]


class RedisService(MultiService):
    """
    A command connection (child C{"connection"}), a subscriber connection
    (child C{"pubsub"}) and, when used, key-expiry callbacks (child
    C{"expiry"}) and control listeners (C{"control:<name>"}).

    @ivar connection: the L{RedisConnection}.
    @ivar pubsub: the L{PubSub}.
    """

    def __init__(
        self,
        url: str | RedisURL | None = None,
        *,
        command_timeout: float = 5.0,
        poolsize: int = 1,
        decode_responses: bool = True,
        reactor: IReactorTime | None = None,
        events: IEventSink | None = None,
    ) -> None:
        """
        @param url: Redis URL; C{None} reads C{TXMSG_REDIS_URL}.
        @param command_timeout: deadline of every command, in seconds.
        @param poolsize: command connections.
        @param decode_responses: see L{RedisConnection}.
        @param reactor: the reactor (global one when C{None}).
        @param events: the event sink (connection events, C{event=} routes).
        """
        super().__init__()
        self.url = parse_redis_url(url)
        self.events = events
        self.connection = RedisConnection(
            self.url,
            poolsize=poolsize,
            command_timeout=command_timeout,
            decode_responses=decode_responses,
            reactor=reactor,
            events=events,
        )
        self.connection.setName("connection")
        self.connection.setServiceParent(self)
        self.pubsub = PubSub(self.url, reactor=reactor, events=events)
        self.pubsub.setName("pubsub")
        self.pubsub.setServiceParent(self)
        self._expiry: KeyExpiry | None = None

    @property
    def handler(self) -> Any:
        """
        The command handler (txredisapi's, with deadlines).
        """
        return self.connection.handler

    def when_connected(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fire once the command connection is usable (see
        L{RedisConnection.when_connected}).
        """
        return self.connection.when_connected(timeout)

    def publish(
        self, channel: str | bytes, message: Any, encode: str | Serializer = "auto"
    ) -> Deferred[int]:
        """
        PUBLISH (see L{txmsg.redis.publish}); fires with the receiver count.
        """
        return publish(self.connection, channel, message, encode)

    def subscribe(
        self,
        channel: str | bytes,
        callback: Callable[[Message], Any] | None = None,
        **kw: Any,
    ) -> Subscription:
        """
        See L{PubSub.subscribe}.
        """
        return self.pubsub.subscribe(channel, callback, **kw)

    def psubscribe(
        self,
        pattern: str | bytes,
        callback: Callable[[Message], Any] | None = None,
        **kw: Any,
    ) -> Subscription:
        """
        See L{PubSub.psubscribe}.
        """
        return self.pubsub.psubscribe(pattern, callback, **kw)

    @property
    def expiry(self) -> KeyExpiry:
        """
        The L{KeyExpiry} child, created on first use.
        """
        if self._expiry is None:
            self._expiry = KeyExpiry(self.pubsub, self.connection, events=self.events)
            self._expiry.setName("expiry")
            self._expiry.setServiceParent(self)
        return self._expiry

    def on_expired(
        self,
        pattern: str,
        callback: Callable[[ExpiredKey], Any] | None = None,
        **kw: Any,
    ) -> Any:
        """
        See L{KeyExpiry.on_expired}.
        """
        return self.expiry.on_expired(pattern, callback, **kw)

    def control_listener(
        self,
        name: str,
        handlers: Mapping[str, Handler] | None = None,
        *,
        status: Callable[[], Any] | None = None,
    ) -> ControlListener:
        """
        Add a L{ControlListener} for worker C{name} (child C{"control:<name>"}).
        """
        listener = ControlListener(name, self.pubsub, self.connection, handlers, status=status)
        listener.setName("control:" + name)
        listener.setServiceParent(self)
        return listener
