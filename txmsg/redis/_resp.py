# -*- test-case-name: txmsg.test.test_redis_sentinel -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Just enough RESP (the Redis protocol) for the few commands txmsg sends
outside txredisapi: asking a Sentinel where the master is, and asking a
server its role.  Pure: bytes in, values out.

Replies are untrusted (a wrong port may answer anything): lengths and
nesting are bounded, and anything unexpected raises L{RESPError}.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Incomplete", "RESPError", "ReplyError", "encode_command", "parse_reply"]

#: Longest bulk string accepted (a Sentinel's replies are short).
MAX_BULK = 64 * 1024
#: Most elements in one array.
MAX_ARRAY = 1024
#: Deepest nesting of arrays.
MAX_DEPTH = 4


class RESPError(ValueError):
    """The bytes are not a RESP reply txmsg accepts."""


class Incomplete(Exception):
    """More bytes are needed to finish the reply."""


class ReplyError(Exception):
    """The server answered with an error reply (C{-ERR ...})."""


def encode_command(*args: str | bytes | int) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\r\n", pos)
    if end < 0:
        if len(data) - pos > MAX_BULK:
            raise RESPError("reply line too long")
        raise Incomplete()
    return data[pos:end], end + 2


def _int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise RESPError(f"bad length {text[:20]!r}") from None


def _parse(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise Incomplete()
    kind, line_start = data[pos : pos + 1], pos + 1
    line, pos = _line(data, line_start)
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return ReplyError(line.decode("utf-8", "replace")), pos
    if kind == b":":
        return _int(line), pos
    if kind == b"$":
        size = _int(line)
        if size == -1:
            return None, pos
        if not 0 <= size <= MAX_BULK:
            raise RESPError(f"bulk length {size} out of range")
        if len(data) < pos + size + 2:
            raise Incomplete()
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise RESPError("bulk string not terminated")
        return data[pos : pos + size], pos + size + 2
    if kind == b"*":
        count = _int(line)
        if count == -1:
            return None, pos
        if not 0 <= count <= MAX_ARRAY:
            raise RESPError(f"array length {count} out of range")
        if depth >= MAX_DEPTH:
            raise RESPError("arrays nested too deep")
        items = []
        for _ in range(count):
            item, pos = _parse(data, pos, depth + 1)
            items.append(item)
        return items, pos
    raise RESPError(f"unknown reply type {kind!r}")


def parse_reply(data: bytes) -> tuple[Any, bytes]:
    """
    Parse the first reply in C{data}.

    @return: C{(value, rest)}: simple and bulk strings as C{bytes}, integers
        as C{int}, nil as L{None}, arrays as lists, an error reply as a
        L{ReplyError} instance (returned, not raised).
    @raise Incomplete: when C{data} holds only part of a reply.
    @raise RESPError: when C{data} is not an acceptable reply.
    """
    value, pos = _parse(data, 0, 0)
    return value, data[pos:]
