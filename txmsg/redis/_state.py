# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Connection-state bookkeeping shared by the command and pub/sub connections:
log lines, C{redis.connected}/C{redis.lost} events, and waiters.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from txmsg._sink import send_event
from txmsg._waiters import Waiters

__all__ = ["ConnectionState", "RedisRefused", "describe_refusal"]


class RedisRefused(Exception):
    """
    Redis refused to set up the connection (a wrong password or user name,
    a database that does not exist).  Not transient: the connection is not
    retried.
    """


_TXREDISAPI_PREFIX = "Redis error: "
_AUTH_PREFIX = "could not auth: "


def describe_refusal(url: str, why: str) -> str:
    """
    One line for a refused connection set-up.

    @param url: the redacted URL.
    @param why: txredisapi's text (C{"Redis error: could not auth: WRONGPASS ..."}).
    """
    text = why[len(_TXREDISAPI_PREFIX) :] if why.startswith(_TXREDISAPI_PREFIX) else why
    text = " ".join(text.split())
    if text.startswith(_AUTH_PREFIX):
        return (
            "Redis at {} refused the login: {}; check the user name and password "
            "in the Redis URL".format(url, text[len(_AUTH_PREFIX) :].rstrip("."))
        )
    return "Redis at {} refused the connection: {}".format(url, text)


__all__ = ["ConnectionState"]


class ConnectionState:
    """
    Whether a txredisapi pool has a usable connection; reports transitions.

    @ivar is_connected: C{True} while at least one connection is usable.
    @ivar connections: how many times it went from none to one.
    @ivar stopping: set by the owner while it closes the pool on purpose.
    """

    log = Logger()

    def __init__(self, role: str, url: str, events: Any = None) -> None:
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
        self.refusal: str | None = None
        self._waiters: Waiters[None] = Waiters()

    def describe(self) -> str:
        """
        A short text for error messages: where, and connected or not.
        """
        if self.refusal is not None and not self.is_connected:
            return self.refusal
        return "{} {}".format(self.url, "connected" if self.is_connected else "not connected")

    def when_connected(self) -> Deferred[None]:
        """
        A Deferred firing once a connection is usable (now, if one is).
        Callers should add their own timeout; L{fail_waiters} errbacks it.
        """
        if self.is_connected:
            return succeed(None)
        if self.refusal is not None:
            return fail(RedisRefused(self.refusal))
        return self._waiters.wait()

    def fail_waiters(self, reason: Exception) -> None:
        """
        Errback every pending L{when_connected} (the service is stopping).
        """
        self._waiters.fail(reason)

    def refused(self, why: str) -> None:
        """
        Redis refused the connection set-up (txredisapi then stops
        reconnecting): log it once and fail the waiters with
        L{RedisRefused}.

        @param why: txredisapi's description.
        """
        first = self.refusal is None
        self.refusal = describe_refusal(self.url, why)
        if first:
            self.log.error("{refusal}", refusal=self.refusal)
        self.fail_waiters(RedisRefused(self.refusal))

    def connected(self, size: int) -> None:
        """
        The pool has its first usable connection.
        """
        self.is_connected = True
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
