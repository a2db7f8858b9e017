# -*- test-case-name: txmsg.test.test_redis_lock -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Small helpers shared by the Redis primitives (cache, lock, delay queue, list
queue): resolving the command handler and the clock, key names, Lua scripts
run with EVALSHA and an EVAL fallback, calling user code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor
from txmsg.redis._deadline import RedisCommandTimeout
from txmsg.redis.connection import RedisConnection, RedisNotRunning
from txmsg.redis.service import RedisService

__all__ = [
    "Script",
    "as_bytes",
    "call",
    "handler_of",
    "is_redis_unavailable",
    "join_key",
    "resolve_reactor",
    "sleep",
]


def is_redis_unavailable(failure: Failure) -> bool:
    """
    Whether C{failure} says Redis was out of reach (a restart, a Sentinel
    failover): a command with no reply in time, no connection, or a
    connection lost with the command in flight.  txredisapi's
    C{ConnectionError} is matched by name: importing txredisapi here would
    install the global reactor.
    """
    if failure.check(RedisCommandTimeout, RedisNotRunning, ConnectionClosed) is not None:
        return True
    return any(
        c.__module__ == "txredisapi" and c.__name__ == "ConnectionError"
        for c in getattr(failure.type, "__mro__", ())
    )


def handler_of(redis: Any) -> Any:
    """
    The command handler to use now: C{redis.handler} for a L{RedisConnection}
    or L{RedisService} (looked up at every call, so a restarted service is
    picked up), else C{redis} itself (a handler, or a test fake).
    """
    if isinstance(redis, (RedisConnection, RedisService)):
        return redis.handler
    return redis


def resolve_reactor(reactor: IReactorTime | None, redis: Any = None) -> IReactorTime:
    """
    C{reactor} if given; else the reactor of a L{RedisConnection}; else the
    global reactor (imported late).
    """
    if reactor is not None:
        return reactor
    if isinstance(redis, RedisService):
        redis = redis.connection
    if isinstance(redis, RedisConnection):
        return redis.reactor
    return maybe_global_reactor(None)


def join_key(namespace: str, *parts: str) -> str:
    """
    C{"ns:part1:part2"}; an empty namespace adds no prefix.
    """
    return ":".join(([namespace] if namespace else []) + list(parts))


def as_bytes(value: Any) -> bytes:
    """
    A Redis bulk reply as bytes.  txmsg connections decode valid UTF-8 to
    C{str} (strictly), so encoding it back gives the exact stored bytes.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """
    Call user code that may return a value, a Deferred or a coroutine; always
    a Deferred (a synchronous exception becomes a failed Deferred).
    """

    def run() -> Any:
        result = fn(*args, **kwargs)
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            return Deferred.fromCoroutine(result)
        return result

    return maybeDeferred(run)


def sleep(clock: IReactorTime, seconds: float) -> Deferred[None]:
    """
    A Deferred firing after C{seconds} on C{clock}; cancelling it cancels the
    timer.  Never blocks the reactor.
    """
    return deferLater(clock, max(0.0, seconds), lambda: None)


def _is_noscript(error: BaseException) -> bool:
    # txredisapi raises ResponseError("NOSCRIPT No matching script...") from
    # execute_command (ScriptDoesNotExist only from its own evalsha()).
    return type(error).__name__ == "ScriptDoesNotExist" or str(error).lstrip("('\"").startswith(
        "NOSCRIPT"
    )


class Script:
    """
    A Lua script run with C{EVALSHA}, falling back to C{EVAL} (which also
    loads it) when the server answers C{NOSCRIPT} (first use, after a
    restart or C{SCRIPT FLUSH}).

    @ivar name: a short name for logs and tests.
    @ivar source: the Lua source.
    @ivar sha: its SHA1, as EVALSHA wants it.
    """

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"

    def __call__(
        self, handler: Any, keys: Sequence[str], args: Sequence[Any] = ()
    ) -> Deferred[Any]:
        """
        Run the script on C{handler}; fires with its reply.
        """
        tail = (len(keys), *keys, *args)
        d: Deferred[Any] = handler.execute_command("EVALSHA", self.sha, *tail)

        def fallback(failure: Any) -> Any:
            if _is_noscript(failure.value):
                return handler.execute_command("EVAL", self.source, *tail)
            return failure

        return d.addErrback(fallback)
