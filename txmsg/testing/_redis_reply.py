# -*- test-case-name: txmsg.test.test_redis_lua -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The kinds of reply of the in-memory Redis (L{txmsg.testing.MemoryRedis}):
its command implementations return C{bytes} (a bulk string), L{Status} (a
status such as C{+OK}), C{int}, L{None} (a nil) or a list of these, and
raise L{ResponseError} for an error reply.  The Lua bridge converts these to
and from Lua values by the same rules as Redis.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OK", "ResponseError", "Status"]


class ResponseError(Exception):
    """
    Stands in for txredisapi's ResponseError (an error reply).
    """


class Status(bytes):
    """
    A status reply (C{+OK}, C{+PONG}), as opposed to a bulk string: a Lua
    script sees it as C{{ok = "OK"}}.
    """


OK = Status(b"OK")


def _b(v: Any) -> bytes:
    """A command argument as Redis receives it: bytes."""
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8")


def _score(s: float) -> bytes:
    """A sorted-set score as Redis writes it in replies: C{50}, not C{50.0}."""
    if s.is_integer() and abs(s) < 2**53:
        return b"%d" % s
    return repr(s).encode()


def _reply(v: Any) -> Any:
    """A reply as a client decoding responses sees it (text where it is UTF-8)."""
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    if isinstance(v, list):
        return [_reply(x) for x in v]
    return v
