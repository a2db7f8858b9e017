# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Connection-state bookkeeping shared by the command and pub/sub connections:
log lines, C{redis.connected}/C{redis.lost} events, and waiters.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

__all__ = ["ConnectionState", "RedisConnectionFailed", "emit"]


class RedisConnectionFailed(ConnectionError):
    """
    A connection to Redis was made but could not be used (a TLS handshake
    failed, ...); the message says why in one line, without the password.
    """


def emit(events: Any, name: str, payload: Any, source: str, log: Logger) -> None:
    """
    Dispatch C{name} to the C{events} sink if there is one; a failing sink is
    logged, never raised.
    """
    if events is None:
        return
    try:
        d = events.dispatch(name, payload, source=source)
    except Exception:
        log.failure("Event sink failed to take {event}", event=name)
        return
    if isinstance(d, Deferred):
        d.addErrback(lambda f: log.failure("Event {event} failed", f, event=name))


class ConnectionState:
    """
    Whether a txredisapi pool has a usable connection; reports transitions.

    @ivar is_connected: C{True} while at least one connection is usable.
    @ivar connections: how many times it went from none to one.
    @ivar stopping: set by the owner while it closes the pool on purpose.
    @ivar failure: the one-line reason the last connection attempt failed
        (see L{failed}), or C{None}; cleared once a connection is usable.
    """

    log = Logger()

    def __init__(self, role: str, url: str, events: Any = None) -> None:
        """
        @param role: C{"commands"} or C{"pubsub"}, in payloads and logs.
        @param url: the redacted URL.
        @param events: the event sink (see L{emit}), or C{None}.
        """
        self.role = role
        self.url = url
        self.events = events
        self.is_connected = False
        self.stopping = False
        self.connections = 0
        self.failure: str | None = None
        self._waiters: list[Deferred[None]] = []

    def describe(self) -> str:
        """
        A short text for error messages: where, and connected or not (and
        why not, when an attempt failed).
        """
        if self.is_connected:
            return f"{self.url} connected"
        if self.failure is not None:
            return f"{self.url} not connected: {self.failure}"
        return f"{self.url} not connected"

    def when_connected(self) -> Deferred[None]:
        """
        A Deferred firing once a connection is usable (now, if one is).
        Callers should add their own timeout; L{fail_waiters} errbacks it.
        """
        if self.is_connected:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(d)
        return d

    def fail_waiters(self, reason: Exception) -> None:
        """
        Errback every pending L{when_connected} (the service is stopping).
        """
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(reason)

    def failed(self, message: str) -> None:
        """
        A connection attempt failed for a reason the user must fix (a TLS
        verification failure, ...): log C{message} once (again only when it
        changes) and errback every pending L{when_connected} with
        L{RedisConnectionFailed} at once instead of letting them time out.

        @param message: one line naming the cause and the fix.
        """
        if self.stopping:
            return
        if message != self.failure:
            self.log.error(
                "Redis {role} connection failed: {reason}", role=self.role, reason=message
            )
        self.failure = message
        self.fail_waiters(RedisConnectionFailed(message))

    def connected(self, size: int) -> None:
        """
        The pool has its first usable connection.
        """
        self.is_connected = True
        self.failure = None
        self.connections += 1
        self.log.info("Redis {role} connection up: {url}", role=self.role, url=self.url)
        payload = {"url": self.url, "role": self.role, "connections": size}
        emit(self.events, "redis.connected", payload, "txmsg.redis", self.log)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

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
        emit(self.events, "redis.lost", payload, "txmsg.redis", self.log)
