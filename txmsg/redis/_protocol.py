# -*- test-case-name: txmsg.test.test_redis_protocol -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The subscriber protocol: txredisapi's C{SubscriberProtocol}, re-subscribing
on every connection and routing messages to a router (the L{PubSub} service).

This module imports txredisapi (which binds the global reactor at import
time); txmsg's services import it from C{startService} only.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import txredisapi

from txmsg.redis._factory import ObservedFactoryMixin, TLSFailureMixin

__all__ = ["PubSubFactory", "PubSubProtocol"]

_CONFIRMS = frozenset({b"subscribe", b"psubscribe"})
_UNCONFIRMS = frozenset({b"unsubscribe", b"punsubscribe"})
_NO_ROUTES: dict[bytes, Any] = {}


class PubSubProtocol(TLSFailureMixin, txredisapi.SubscriberProtocol):
    """
    A subscriber connection that asks its router for the subscriptions to
    (re-)establish each time it is connected and usable, and hands messages
    and confirmations to it.

    The router (C{factory.router}) must provide C{connection_ready(proto)},
    C{connection_lost(proto)}, C{message(channel, data)},
    C{pmessage(pattern, channel, data)}, C{confirmed(kind, name)} and
    C{unconfirmed(kind, name)}; names and payloads are C{bytes}.  It may
    also provide C{channel_routes}, a dict of channel -> list of objects with
    C{deliver_data(data)} and C{deliver_batch(payloads, channels=None)}: a
    channel with exactly one entry is then delivered straight from the parse
    loop (the hiredis fast path), without going through C{message}; and
    C{pattern_routes}, the same for patterns (batches only).
    """

    factory: Any

    def connectionMade(self) -> Any:
        d = super().connectionMade()
        # AUTH (when there is a password) has to finish first; without one,
        # this fires at once, before connectionMade returns.
        self.whenConnected().addCallback(self._resubscribe)
        return d

    def _resubscribe(self, _: Any) -> None:
        self.factory.router.connection_ready(self)

    def connectionLost(self, why: Any) -> None:
        try:
            super().connectionLost(why)
        finally:
            self.factory.router.connection_lost(self)

    def dataReceived(self, data: bytes, unpause: bool = False) -> Any:
        """
        Parse replies; messages go straight to the router.  With hiredis this
        is a lean loop (no number conversion or transaction bookkeeping,
        neither of which a subscriber connection needs).
        """
        reader = getattr(self, "_reader", None)
        if reader is None:
            return txredisapi.LineReceiver.dataReceived(self, data, unpause)
        router = self.factory.router
        # fast paths: a channel with exactly one subscription is delivered
        # from here, a piece's replies at once when they are all messages
        # for that channel; the router's message() handles the rest (several
        # subscriptions, unknown channels, routers without channel_routes)
        channels = getattr(router, "channel_routes", None) or _NO_ROUTES
        patterns = getattr(router, "pattern_routes", None) or _NO_ROUTES
        routes = (channels, patterns)
        size = len(data)
        if size <= _PIECE:
            if data:
                reader.feed(data)
            self._deliver_replies(list(iter(reader.gets, False)), router, routes)
            return None
        # A big read is fed in pieces, for speed (measurement: docs/benchmarks.md).
        for offset in range(0, size, _PIECE):
            reader.feed(data, offset, min(_PIECE, size - offset))
            self._deliver_replies(list(iter(reader.gets, False)), router, routes)
        return None

    def _deliver_replies(self, replies: list[Any], router: Any, routes: Any) -> None:
        if not replies:
            return
        channels = routes[0]
        if len(replies) > 1:
            kind, sole = _sole_subscriber(replies, routes)
            if kind == b"message":
                sole.deliver_batch(list(map(_ITEM2, replies)))
                return
            if kind == b"pmessage":
                sole.deliver_batch(list(map(_ITEM3, replies)), list(map(_ITEM2, replies)))
                return
        for res in replies:
            if type(res) is list:
                n = len(res)
                if n == 3 and res[0] == b"message":
                    subs = channels.get(res[1])
                    if subs is not None and len(subs) == 1:
                        subs[0].deliver_data(res[2])
                    else:
                        router.message(res[1], res[2])
                elif n == 4 and res[0] == b"pmessage":
                    router.pmessage(res[1], res[2], res[3])
                else:
                    self.replyReceived(res)
            else:
                self.replyReceived(res)

    def replyReceived(self, reply: Any) -> None:
        """
        Route messages and (un)subscribe confirmations; anything else goes to
        txredisapi's reply queue as usual.
        """
        if type(reply) is list and len(reply) in (3, 4):
            kind = reply[0]
            if isinstance(kind, str):
                kind = kind.encode()
            router = self.factory.router
            if len(reply) == 3:
                if kind == b"message":
                    router.message(reply[1], reply[2])
                    return
                if kind in _CONFIRMS:
                    router.confirmed(kind, _bytes(reply[1]))
                elif kind in _UNCONFIRMS:
                    router.unconfirmed(kind, _bytes(reply[1]))
            elif kind == b"pmessage":
                router.pmessage(reply[1], reply[2], reply[3])
                return
        super().replyReceived(reply)


_ITEM0, _ITEM1, _ITEM2, _ITEM3 = (itemgetter(i) for i in range(4))
_PIECE = 16 * 1024  # bytes fed to hiredis at a time (see dataReceived)
_BATCHED = {b"message": 0, b"pmessage": 1}  # kind -> index in routes
_NOT_BATCHED: tuple[None, None] = (None, None)


def _sole_subscriber(replies: list[Any], routes: tuple[Any, Any]) -> tuple[Any, Any]:
    """
    @param routes: (channel routes, pattern routes).
    @return: C{(kind, subscription)} to give C{replies} to as one batch when
        they are all C{message}s on one channel, or all C{pmessage}s for one
        pattern, that has exactly one subscription; else C{(None, None)}.
        The checks run in C (C{map}, C{set}).
    """
    try:
        kinds = set(map(_ITEM0, replies))
    except (TypeError, IndexError):
        # an int, nil, error or empty-array reply: not all messages
        return _NOT_BATCHED
    if len(kinds) != 1:
        return _NOT_BATCHED
    kind = kinds.pop()
    table = _BATCHED.get(kind) if type(kind) is bytes else None
    if table is None:
        return _NOT_BATCHED
    # a channel (message) or a pattern (pmessage): both are item 1
    names = set(map(_ITEM1, replies))
    if len(names) != 1:
        return _NOT_BATCHED
    subs = routes[table].get(names.pop())
    if subs is None or len(subs) != 1:
        return _NOT_BATCHED
    return kind, subs[0]


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


class PubSubFactory(ObservedFactoryMixin, txredisapi.RedisFactory):
    """
    A one-connection reconnecting factory for L{PubSubProtocol}: replies are
    bytes, numbers are never converted.

    @ivar router: receives connections, messages and confirmations.
    """

    protocol = PubSubProtocol

    def __init__(
        self,
        router: Any,
        password: str | None = None,
        username: str | None = None,
    ) -> None:
        super().__init__(
            None,
            None,
            1,
            isLazy=True,
            charset=None,
            password=password,
            convertNumbers=False,
            username=username,
        )
        self.router = router
