# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Connection-state bookkeeping shared by the command and pub/sub connections:
log lines, C{redis.connected}/C{redis.lost} events, waiters, and why a
connection could not be set up.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._sink import send_event
from txmsg._waiters import Waiters
from txmsg.events import IEventSink
from txmsg.redis._setup_failure import (
    RedisConnectionFailed,
    RedisRefused,
    describe_refusal,
    describe_setup_failure,
)

__all__ = [
    "ConnectionState",
    "RedisConnectionFailed",
    "RedisRefused",
    "describe_refusal",
    "describe_setup_failure",
]


class ConnectionState:
    """
    Whether a txredisapi pool has a usable connection; reports transitions.

    @ivar is_connected: C{True} while at least one connection is usable.
    @ivar connections: how many times it went from none to one.
    @ivar stopping: set by the owner while it closes the pool on purpose.
    @ivar failure: why the connection could not be set up (see L{failed}),
        or C{None}; cleared once a connection is usable.
    """

    log = Logger()

    def __init__(self, role: str, url: str, events: IEventSink | None = None) -> None:
        """
        @param role: C{"commands"} or C{"pubsub"}, in payloads and logs.
        @param url: the redacted URL.
        @param events: the event sink (see L{txmsg._sink.send_event}), or C{None}.
        """
        self.role = role
        self.url = url
        self.events = events
        self.is_connected = False
        self.stopping = False
        self.connections = 0
        self.failure: RedisConnectionFailed | None = None
        self._waiters: Waiters[None] = Waiters()

    def describe(self) -> str:
        """
        A short text for error messages: where, and connected or not (and
        why not, when an attempt failed).
        """
        if self.failure is not None and not self.is_connected:
            return str(self.failure)
        return "{} {}".format(self.url, "connected" if self.is_connected else "not connected")

    def when_connected(self) -> Deferred[None]:
        """
        A Deferred firing once a connection is usable (now, if one is).
        Callers should add their own timeout; L{fail_waiters} errbacks it,
        and it fails at once after a set-up failure (see L{failed}).
        """
        if self.is_connected:
            return succeed(None)
        if self.failure is not None:
            return fail(type(self.failure)(str(self.failure)))
        return self._waiters.wait()

    def fail_waiters(self, reason: Exception) -> None:
        """
        Errback every pending L{when_connected} (the service is stopping).
        """
        self._waiters.fail(reason)

    def failed(self, reason: str | Failure | BaseException) -> None:
        """
        A connection could not be set up: txredisapi gave up on it
        (C{reason} is its text: C{AUTH} or C{SELECT} failed, and it stops
        reconnecting) or it was lost (C{reason} is why).  When the user must
        fix the cause (see L{describe_setup_failure}), log it once, keep it
        for L{describe} and L{when_connected}, and errback every pending
        L{when_connected} with it at once instead of letting them time out.

        The first cause is kept until a connection is usable: what follows
        it (txredisapi's "Lost connection" after a failed TLS handshake, the
        other connections of the pool failing the same way) adds nothing.
        """
        error = describe_setup_failure(self.url, reason)
        if error is None or self.stopping:
            return
        if self.failure is None:
            self.failure = error
            self.log.error(
                "Redis {role} connection failed: {reason}", role=self.role, reason=str(error)
            )
        self.fail_waiters(self.failure)

    def connected(self, size: int) -> None:
        """
        The pool has its first usable connection.
        """
        self.is_connected = True
        self.failure = None
        self.connections += 1
        self.log.info("Redis {role} connection up: {url}", role=self.role, url=self.url)
        payload = {"url": self.url, "role": self.role, "connections": size}
        send_event(self.events, "redis.connected", payload, "txmsg.redis", self.log)
        self._waiters.fire(None)

    def lost(self) -> None:
        """
        The pool lost its last connection.
        """
        self.is_connected = False
        if self.stopping:
            self.log.info("Redis {role} connection closed: {url}", role=self.role, url=self.url)
        else:
            self.log.warn("Redis {role} connection lost: {url}", role=self.role, url=self.url)
        payload = {
            "url": self.url,
            "role": self.role,
            "connections": 0,
            "reason": "stopped" if self.stopping else "lost",
        }
        send_event(self.events, "redis.lost", payload, "txmsg.redis", self.log)
