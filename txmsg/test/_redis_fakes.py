# -*- test-case-name: txmsg.test.test_redis_protocol -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Fakes and RESP helpers shared by the Redis unit tests.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport

from txmsg.redis._protocol import PubSubProtocol


def bulk(value: bytes | str | int) -> bytes:
    """
    RESP encoding of one value: bulk string, or integer for C{int}.
    """
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        value = value.encode("utf-8")
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(*items: bytes | str | int) -> bytes:
    """
    RESP array of L{bulk} items.
    """
    return b"*%d\r\n" % len(items) + b"".join(bulk(i) for i in items)


def command(*args: bytes | str) -> bytes:
    """
    The bytes a client writes for a command.
    """
    return array(*args)


class FakeFactory:
    """
    Stands in for a txredisapi factory for a protocol built by hand.
    """

    def __init__(self, router: Any) -> None:
        self.router = router
        self.isLazy = True
        self.stopped_trying = 0

    def stopTrying(self) -> Deferred[None]:
        self.stopped_trying += 1
        return succeed(None)

    def connectionError(self, why: str) -> None:
        self.error = why


def connect_pubsub(
    router: Any, hiredis: bool = True, clock: Any = None
) -> tuple[Any, StringTransport]:
    """
    Build a L{txmsg.redis._protocol.PubSubProtocol} for C{router}, connected
    to a fresh StringTransport (a "new connection").
    """
    proto = PubSubProtocol(None, convertNumbers=False)
    if not hiredis:
        proto._reader = None
    if clock is not None:
        proto.callLater = clock.callLater
    proto.factory = FakeFactory(router)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport
