# -*- test-case-name: txmsg.test.test_redis_protocol -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis pub/sub that survives reconnects.

    pubsub = PubSub("redis://127.0.0.1:6379/0")
    pubsub.startService()
    sub = pubsub.subscribe("fm104.5", on_message, decode="text")
    await sub.when_active()
    pat = pubsub.psubscribe("orders.*", on_order, decode="json")
    pubsub.subscribe("news", event="news.received")   # into the event registry
    sub.cancel()

The service owns one subscriber connection (txredisapi's own reconnecting
factory, not wrapped again) and the set of I{desired} channels and patterns.
Every time a connection becomes usable, the protocol asks for that set and
subscribes to all of it, so subscriptions come back after a Redis restart
without the caller doing anything.  Messages published while disconnected
are lost: Redis pub/sub is at-most-once.

See L{txmsg.redis._delivery} for the delivery model (per-subscription order,
bounded queues, isolation of slow and failing callbacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor
from txmsg.events import IEventSink
from txmsg.redis._delivery import Message, Subscription, SubscriptionCancelled
from txmsg.redis._state import ConnectionState
from txmsg.redis.url import RedisURL, parse_redis_url
from txmsg.serializers import Serializer, get_serializer

__all__ = ["Message", "PubSub", "Subscription", "SubscriptionCancelled", "publish"]


def encode_payload(message: Any, encode: str | Serializer = "auto") -> bytes:
    """
    Encode a message for PUBLISH.

    @param encode: C{"auto"} (C{bytes} unchanged, C{str} as UTF-8, anything
        else as JSON) or any serializer name/object of L{txmsg.serializers}.
    """
    if encode == "auto":
        if isinstance(message, bytes):
            return message
        if isinstance(message, str):
            return message.encode("utf-8")
        encode = "json"
    return get_serializer(encode).dumps(message)


def publish(
    handler: Any, channel: str | bytes, message: Any, encode: str | Serializer = "auto"
) -> Deferred[int]:
    """
    PUBLISH C{message} on C{channel}; fires with the number of receivers.

    @param handler: a command handler, e.g. C{RedisConnection.handler} (which
        carries the deadline) or a L{txmsg.redis.RedisConnection}.
    @param encode: see L{encode_payload}.
    """
    handler = getattr(handler, "handler", handler)
    try:
        payload = encode_payload(message, encode)
    except Exception as e:
        return fail(e)
    return handler.publish(channel, payload)


class PubSub(Service):
    """
    An C{IService} holding the desired subscriptions and a reconnecting
    subscriber connection that (re-)establishes them.

    @ivar url: the parsed L{RedisURL}.
    @ivar state: the L{ConnectionState} of the subscriber connection.
    @ivar stats: C{unrouted}: messages for which no subscription was found.
    @ivar channel_routes: channel (bytes) -> its subscriptions; read by the
        subscriber protocol's fast path, do not modify.
    @ivar pattern_routes: the same for patterns.
    """

    log = Logger()

    def __init__(
        self,
        url: str | RedisURL | None = None,
        *,
        connect_timeout: float = 5.0,
        reactor: IReactorTime | None = None,
        events: IEventSink | None = None,
    ) -> None:
        """
        @param url: Redis URL; C{None} reads C{TXMSG_REDIS_URL}.
        @param connect_timeout: TCP connect timeout, in seconds.
        @param reactor: the reactor (global one when C{None}).
        @param events: event sink: connection events and C{event=} routes.
        """
        self.url = parse_redis_url(url)
        self.connect_timeout = connect_timeout
        self.events = events
        self._reactor = reactor
        self.state = ConnectionState("pubsub", self.url.redacted(), events)
        self.stats = {"unrouted": 0}
        self._channels: dict[bytes, list[Subscription]] = {}
        # read by PubSubProtocol's parse loop (the same dict, never replaced)
        self.channel_routes = self._channels
        self._patterns: dict[bytes, list[Subscription]] = {}
        self.pattern_routes = self._patterns
        self._proto: Any = None
        self._factory: Any = None
        self._hooks: list[Callable[[], Any]] = []

    # service --------------------------------------------------------------

    def startService(self) -> None:
        """
        Start the subscriber connection.
        """
        super().startService()
        # txredisapi (under _protocol) installs the global reactor when imported
        from txmsg.redis._protocol import PubSubFactory

        reactor = maybe_global_reactor(self._reactor)
        self.state.stopping = False
        factory = PubSubFactory(self, self.url.password, self.url.username)
        factory.state = self.state
        self._factory = factory
        self.log.info("Subscribing through Redis at {url}", url=self.url.redacted())
        factory.startConnecting(self.url.endpoint(reactor, self.connect_timeout))

    def stopService(self) -> Deferred[None]:
        """
        Close the subscriber connection; pending C{when_active} waiters
        errback.  The desired subscriptions are kept for a later restart.
        """
        super().stopService()
        self.state.stopping = True
        self.state.fail_waiters(SubscriptionCancelled("pub/sub service stopped"))
        for subs in list(self._channels.values()) + list(self._patterns.values()):
            for sub in subs:
                sub._fail_waiters(SubscriptionCancelled("pub/sub service stopped"))
        factory, self._factory = self._factory, None
        if factory is None:
            return succeed(None)
        return maybeDeferred(factory.disconnect).addCallback(lambda _: None)

    @property
    def ready(self) -> bool:
        """
        Whether a subscriber connection is usable now (its subscriptions were
        sent and the connect hooks have run); C{state.is_connected} can lag
        behind it by a moment.
        """
        return self._proto is not None

    def add_connect_hook(self, hook: Callable[[], Any]) -> None:
        """
        Call C{hook()} each time the subscriber connection becomes usable,
        after the subscriptions were sent (e.g. to check server settings).
        """
        self._hooks.append(hook)

    # subscriptions ----------------------------------------------------------

    def subscribe(
        self,
        channel: str | bytes,
        callback: Callable[[Message], Any] | None = None,
        *,
        event: str | None = None,
        decode: str | Serializer = "bytes",
        concurrency: int = 1,
        max_queued: int = 10000,
        data_only: bool = False,
    ) -> Subscription:
        """
        Call C{callback(message)} for every message on C{channel}, from now
        on and after every reconnect.

        @param callback: receives a L{Message}; may return a Deferred or a
            coroutine (see the delivery model in the module docs).
        @param event: instead of (or besides) a callback, dispatch each
            message to the event sink under this name, with the L{Message}
            as payload and source C{"redis:<channel>"}.
        @param decode: C{"bytes"}, C{"text"}, C{"json"}, C{"msgpack"},
            C{"pickle"} (trusted data only) or a serializer object.
        @param concurrency: callbacks in flight at once (1 keeps order).
        @param max_queued: messages kept waiting; more are dropped, counted.
        @param data_only: call C{callback(data)} with just the decoded
            payload instead of a L{Message}: the leanest path, for
            high-rate channels (not with C{event=}).
        @return: the L{Subscription}; C{await sub.when_active()} to know
            Redis confirmed it, C{sub.cancel()} to stop.
        """
        return self._add(
            channel, callback, event, False, decode, concurrency, max_queued, data_only
        )

    def psubscribe(
        self,
        pattern: str | bytes,
        callback: Callable[[Message], Any] | None = None,
        *,
        event: str | None = None,
        decode: str | Serializer = "bytes",
        concurrency: int = 1,
        max_queued: int = 10000,
        data_only: bool = False,
    ) -> Subscription:
        """
        Like L{subscribe}, for a glob-style pattern (PSUBSCRIBE); the
        L{Message} carries the pattern and the actual channel.
        """
        return self._add(pattern, callback, event, True, decode, concurrency, max_queued, data_only)

    def _route_to_events(
        self, event: str, callback: Callable[[Message], Any] | None
    ) -> Callable[[Message], Any]:
        events = self.events
        if events is None:
            raise ValueError("event= needs a PubSub created with an events sink")

        def dispatch(message: Message) -> Any:
            d = events.dispatch(event, message, source="redis:" + message.channel)
            if callback is not None:
                callback(message)
            return d

        return dispatch

    def _add(
        self,
        name: str | bytes,
        callback: Callable[[Message], Any] | None,
        event: str | None,
        is_pattern: bool,
        decode: str | Serializer,
        concurrency: int,
        max_queued: int,
        data_only: bool = False,
    ) -> Subscription:
        if event is not None:
            if data_only:
                raise ValueError("event= dispatches Message objects: it cannot be data_only")
            callback = self._route_to_events(event, callback)
        if callback is None:
            raise TypeError("subscribe needs a callback or an event name")
        sub = Subscription(
            name,
            callback,
            is_pattern=is_pattern,
            decode=decode,
            concurrency=concurrency,
            max_queued=max_queued,
            data_only=data_only,
            on_cancel=self._remove,
        )
        table = self._patterns if is_pattern else self._channels
        existing = table.get(sub.key)
        if existing:
            existing.append(sub)
            if existing[0].active:
                sub._confirmed()
            return sub
        table[sub.key] = [sub]
        proto = self._proto
        if proto is not None:
            send = proto.psubscribe if is_pattern else proto.subscribe
            self._send(send, [sub.key], "subscribe to")
        return sub

    def _remove(self, sub: Subscription) -> None:
        table = self._patterns if sub.is_pattern else self._channels
        subs = table.get(sub.key)
        if not subs or sub not in subs:
            return
        subs.remove(sub)
        if subs:
            return
        del table[sub.key]
        proto = self._proto
        if proto is not None:
            send = proto.punsubscribe if sub.is_pattern else proto.unsubscribe
            self._send(send, [sub.key], "unsubscribe from")

    def _send(self, method: Callable[[list[bytes]], Any], names: list[bytes], what: str) -> None:
        try:
            d = method(names)
        except Exception:
            self.log.failure("Could not {what} {names}", what=what, names=names)
            return
        # txredisapi fires these with whichever confirmation comes next
        # (docs/design.md, "txredisapi"): the result is ignored, confirmations are tracked
        # from the replies themselves.
        d.addErrback(self._send_failed, what, names)

    def _send_failed(self, failure: Failure, what: str, names: list[bytes]) -> None:
        from txredisapi import ConnectionError  # installs the global reactor when imported

        if failure.check(ConnectionError):
            # the connection went away: its subscriptions went with it, and
            # the next connection subscribes to the desired set anyway
            return
        self.log.failure("Could not {what} {names}", failure, what=what, names=names)

    def subscriptions(self) -> list[Subscription]:
        """
        Every current subscription (channels, then patterns).
        """
        return [s for subs in self._channels.values() for s in subs] + [
            s for subs in self._patterns.values() for s in subs
        ]

    # router interface (called by PubSubProtocol) ---------------------------

    def connection_ready(self, proto: Any) -> None:
        """
        A subscriber connection is usable: subscribe it to everything desired.
        """
        self._proto = proto
        if self._channels:
            self._send(proto.subscribe, list(self._channels), "subscribe to")
        if self._patterns:
            self._send(proto.psubscribe, list(self._patterns), "subscribe to")
        self.log.info(
            "Subscribed to {channels} channels and {patterns} patterns",
            channels=len(self._channels),
            patterns=len(self._patterns),
        )
        for hook in self._hooks:
            try:
                maybeDeferred(hook).addErrback(lambda f: self.log.failure("Connect hook failed", f))
            except Exception:  # pragma: no cover - maybeDeferred catches
                self.log.failure("Connect hook failed")

    def connection_lost(self, proto: Any) -> None:
        """
        The subscriber connection is gone: nothing is active until the next.
        """
        if self._proto is proto:
            self._proto = None
        for subs in list(self._channels.values()) + list(self._patterns.values()):
            for sub in subs:
                sub.active = False

    def confirmed(self, kind: bytes, name: bytes) -> None:
        """
        Redis confirmed a (p)subscribe of C{name}.
        """
        table = self._patterns if kind == b"psubscribe" else self._channels
        for sub in table.get(name, ()):
            if not sub.active:
                sub._confirmed()

    def unconfirmed(self, kind: bytes, name: bytes) -> None:
        """
        Redis confirmed a (p)unsubscribe of C{name}.
        """
        table = self._patterns if kind == b"punsubscribe" else self._channels
        if name in table and self._proto is not None:
            # re-subscribed while the unsubscribe was in flight
            send = self._proto.psubscribe if kind == b"punsubscribe" else self._proto.subscribe
            for sub in table[name]:
                sub.active = False
            self._send(send, [name], "subscribe to")

    def message(self, channel: bytes, data: bytes) -> None:
        """
        A message on a subscribed channel.
        """
        subs = self._channels.get(channel)
        if not subs:
            self.stats["unrouted"] += 1
            return
        if len(subs) == 1:
            sub = subs[0]
            sub.deliver(sub.name, data, None)
            return
        for sub in list(subs):
            sub.deliver(sub.name, data, None)

    def pmessage(self, pattern: bytes, channel: bytes, data: bytes) -> None:
        """
        A message matching a subscribed pattern.
        """
        subs = self._patterns.get(pattern)
        if not subs:
            self.stats["unrouted"] += 1
            return
        for sub in list(subs):
            sub.deliver(channel, data, sub.name)
