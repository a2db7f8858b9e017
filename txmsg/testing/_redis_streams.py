# -*- test-case-name: txmsg.test.test_contract_redis,txmsg.test.test_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis Streams in the in-memory Redis (L{txmsg.testing.MemoryRedis}): the
commands the Redis Streams worker broker sends (C{XADD}, C{XLEN},
C{XRANGE}, C{XDEL}, C{XGROUP CREATE|DESTROY|DELCONSUMER}, C{XREADGROUP}
with C{BLOCK} on the clock, C{XACK}, C{XPENDING}, C{XCLAIM},
C{XAUTOCLAIM}), with Redis 7.0's replies and errors.  C{XREADGROUP} of
several streams only with C{>} (new entries); no C{NOACK}, no C{XINFO}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txmsg.testing._redis_reply import OK, ResponseError, _reply

__all__ = ["StreamCommands"]

_Id = tuple[int, int]


def _parse_id(raw: bytes, last: _Id | None = None) -> _Id:
    text = raw.decode()
    if text == "-":
        return (0, 0)
    if text == "+":
        return (2**64 - 1, 2**64 - 1)
    if text == "$" and last is not None:
        return last
    ms, _, seq = text.partition("-")
    try:
        return (int(ms), int(seq or 0))
    except ValueError:
        raise ResponseError("ERR Invalid stream ID specified as stream command argument") from None


def _id(i: _Id) -> bytes:
    return b"%d-%d" % i


class _Group:
    def __init__(self, last: _Id) -> None:
        self.last = last
        #: entry id -> [consumer, delivered at (ms), deliveries]
        self.pel: dict[_Id, list[Any]] = {}
        self.consumers: set[bytes] = set()


class _Stream:
    def __init__(self) -> None:
        self.entries: dict[_Id, list[bytes]] = {}
        self.last: _Id = (0, 0)
        self.groups: dict[bytes, _Group] = {}

    def __bool__(self) -> bool:  # an empty stream is still a key
        return True


class StreamCommands:
    """
    Mixin of L{txmsg.testing._redis_store.FakeRedis}: the stream commands.
    """

    clock: Any
    data: dict[bytes, Any]
    _get: Any
    _put: Any
    _alive: Any

    def _stream(self, key: bytes, create: bool = False) -> _Stream | None:
        if self._alive(key):
            value = self.data[key]
            if not isinstance(value, _Stream):
                raise ResponseError(
                    "WRONGTYPE Operation against a key holding the wrong kind of value"
                )
            return value
        if create:
            stream = _Stream()
            self._put(key, stream)
            return stream
        return None

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _group(self, key: bytes, group: bytes, command: str) -> tuple[_Stream, _Group]:
        stream = self._stream(key)
        g = stream.groups.get(group) if stream is not None else None
        if stream is None or g is None:
            raise ResponseError(
                "NOGROUP No such key '{}' or consumer group '{}' in {} with GROUP option".format(
                    key.decode(), group.decode(), command
                )
            )
        return stream, g

    def _c_xadd(self, key: bytes, *rest: bytes) -> Any:
        args = list(rest)
        maxlen = None
        if args and args[0].upper() == b"MAXLEN":
            args.pop(0)
            if args[0] in (b"~", b"="):
                args.pop(0)
            maxlen = int(args.pop(0))
        wanted = args.pop(0)
        if not args or len(args) % 2:
            raise ResponseError("ERR wrong number of arguments for 'xadd' command")
        stream = self._stream(key, create=True)
        assert stream is not None
        if wanted == b"*":
            ms = self._now_ms()
            new = (ms, 0) if ms > stream.last[0] else (stream.last[0], stream.last[1] + 1)
        else:
            new = _parse_id(wanted)
            if new <= stream.last:
                raise ResponseError(
                    "ERR The ID specified in XADD is equal or smaller than the target "
                    "stream top item"
                )
        stream.entries[new] = list(args)
        stream.last = new
        if maxlen is not None:
            while len(stream.entries) > maxlen:
                del stream.entries[next(iter(stream.entries))]
        self._serve_streams()
        return _id(new)

    def _c_xlen(self, key: bytes) -> int:
        stream = self._stream(key)
        return 0 if stream is None else len(stream.entries)

    def _c_xdel(self, key: bytes, *ids: bytes) -> int:
        stream = self._stream(key)
        if stream is None:
            return 0
        return sum(stream.entries.pop(_parse_id(i), None) is not None for i in ids)

    def _c_xrange(self, key: bytes, start: bytes, end: bytes, *opts: bytes) -> list[Any]:
        stream = self._stream(key)
        if stream is None:
            return []
        lo, hi = _parse_id(start), _parse_id(end)
        limit = int(opts[1]) if len(opts) >= 2 and opts[0].upper() == b"COUNT" else None
        out = [[_id(i), list(f)] for i, f in stream.entries.items() if lo <= i <= hi]
        return out[:limit] if limit is not None else out

    def _c_xgroup(self, action: bytes, key: bytes, group: bytes, *rest: bytes) -> Any:
        action = action.upper()
        if action == b"CREATE":
            mkstream = any(r.upper() == b"MKSTREAM" for r in rest[1:])
            stream = self._stream(key, create=mkstream)
            if stream is None:
                raise ResponseError(
                    "ERR The XGROUP subcommand requires the key to exist. Note that for "
                    "CREATE you may want to use the MKSTREAM option to create an empty stream "
                    "automatically."
                )
            if group in stream.groups:
                raise ResponseError("BUSYGROUP Consumer Group name already exists")
            stream.groups[group] = _Group(_parse_id(rest[0], stream.last))
            return OK
        if action == b"DESTROY":
            stream = self._stream(key)
            return int(stream is not None and stream.groups.pop(group, None) is not None)
        if action == b"DELCONSUMER":
            _, g = self._group(key, group, "XGROUP")
            name = rest[0]
            mine = [i for i, p in g.pel.items() if p[0] == name]
            for i in mine:
                del g.pel[i]
            g.consumers.discard(name)
            return len(mine)
        raise ResponseError("ERR unknown subcommand '{}'".format(action.decode()))

    def _c_xreadgroup(self, *args: bytes) -> Any:
        opts = [a.upper() for a in args]
        group, consumer = args[1], args[2]
        count = int(args[opts.index(b"COUNT") + 1]) if b"COUNT" in opts else None
        block = int(args[opts.index(b"BLOCK") + 1]) if b"BLOCK" in opts else None
        at = opts.index(b"STREAMS")
        names = args[at + 1 :]
        keys = list(names[: len(names) // 2])
        if len(keys) > 1:
            for key in keys:
                self._group(key, group, "XREADGROUP")[1].consumers.add(consumer)
            return self._read_new(keys, group, consumer, count, block)
        key, wanted = keys[0], names[1]
        stream, g = self._group(key, group, "XREADGROUP")
        g.consumers.add(consumer)
        if wanted != b">":
            start = _parse_id(wanted)
            mine = sorted(i for i, p in g.pel.items() if p[0] == consumer and i > start)
            entries = [[_id(i), stream.entries.get(i)] for i in mine[:count]]
            return [[key, entries]]
        return self._read_new(keys, group, consumer, count, block)

    def _deliver_all(
        self, keys: list[bytes], group: bytes, consumer: bytes, count: int | None
    ) -> Any:
        out: list[Any] = []
        for key in keys:
            stream = self._stream(key)
            g = stream.groups.get(group) if stream is not None else None
            if stream is not None and g is not None:
                out += self._deliver(key, stream, g, consumer, count) or []
        return out or None

    def _read_new(
        self,
        keys: list[bytes],
        group: bytes,
        consumer: bytes,
        count: int | None,
        block: int | None,
    ) -> Any:
        got = self._deliver_all(keys, group, consumer, count)
        if got is not None or block is None:
            return got
        d: Deferred[Any] = Deferred(lambda d: self._stream_waiters.remove(waiter))
        waiter = [d, keys, group, consumer, count, None]
        if block > 0:

            def expire() -> None:
                waiter[5] = None
                if waiter in self._stream_waiters:
                    self._stream_waiters.remove(waiter)
                d.callback(None)

            waiter[5] = self.clock.callLater(block / 1000.0, expire)
        self._stream_waiters.append(waiter)
        return d

    @property
    def _stream_waiters(self) -> list[list[Any]]:
        waiters = self.__dict__.setdefault("_waiting_readers", [])
        return waiters

    def _deliver(
        self, key: bytes, stream: _Stream, g: _Group, consumer: bytes, count: int | None
    ) -> Any:
        new = [i for i in stream.entries if i > g.last][:count]
        if not new:
            return None
        now = self._now_ms()
        for i in new:
            g.pel[i] = [consumer, now, 1]
        g.last = new[-1]
        return [[key, [[_id(i), list(stream.entries[i])] for i in new]]]

    def _serve_streams(self) -> None:
        for waiter in list(self._stream_waiters):
            d, keys, group, consumer, count, timer = waiter
            got = self._deliver_all(keys, group, consumer, count)
            if got is not None:
                self._stream_waiters.remove(waiter)
                if timer is not None and timer.active():
                    timer.cancel()
                self.clock.callLater(0, d.callback, _reply(got))

    def _c_xack(self, key: bytes, group: bytes, *ids: bytes) -> int:
        stream = self._stream(key)
        g = stream.groups.get(group) if stream is not None else None
        if g is None:
            return 0
        return sum(g.pel.pop(_parse_id(i), None) is not None for i in ids)

    def _c_xpending(self, key: bytes, group: bytes, *rest: bytes) -> Any:
        _, g = self._group(key, group, "XPENDING")
        ids = sorted(g.pel)
        if not rest:
            if not ids:
                return [0, None, None, None]
            per: dict[bytes, int] = {}
            for i in ids:
                per[g.pel[i][0]] = per.get(g.pel[i][0], 0) + 1
            counts = [[c, str(n).encode()] for c, n in sorted(per.items())]
            return [len(ids), _id(ids[0]), _id(ids[-1]), counts]
        lo, hi, count = _parse_id(rest[0]), _parse_id(rest[1]), int(rest[2])
        who = rest[3] if len(rest) > 3 else None
        now = self._now_ms()
        out = []
        for i in ids:
            consumer, at, n = g.pel[i]
            if lo <= i <= hi and (who is None or consumer == who):
                out.append([_id(i), consumer, now - at, n])
        return out[:count]

    def _claim_one(self, g: _Group, i: _Id, consumer: bytes, justid: bool) -> None:
        entry = g.pel[i]
        entry[0], entry[1] = consumer, self._now_ms()
        if not justid:
            entry[2] += 1
        g.consumers.add(consumer)

    def _c_xclaim(
        self, key: bytes, group: bytes, consumer: bytes, idle: bytes, *rest: bytes
    ) -> Any:
        stream, g = self._group(key, group, "XCLAIM")
        justid = any(r.upper() == b"JUSTID" for r in rest)
        ids = [_parse_id(r) for r in rest if r.upper() != b"JUSTID"]
        now, out = self._now_ms(), []
        for i in ids:
            if i in g.pel and now - g.pel[i][1] >= int(idle):
                if i not in stream.entries:
                    del g.pel[i]
                    continue
                self._claim_one(g, i, consumer, justid)
                out.append(_id(i) if justid else [_id(i), list(stream.entries[i])])
        return out

    def _c_xautoclaim(
        self, key: bytes, group: bytes, consumer: bytes, idle: bytes, start: bytes, *rest: bytes
    ) -> Any:
        stream, g = self._group(key, group, "XAUTOCLAIM")
        opts = [r.upper() for r in rest]
        count = int(rest[opts.index(b"COUNT") + 1]) if b"COUNT" in opts else 100
        justid = b"JUSTID" in opts
        now, claimed, deleted = self._now_ms(), [], []
        scanned = [i for i in sorted(g.pel) if i >= _parse_id(start)]
        following = b"0-0"
        for n, i in enumerate(scanned):
            if n >= count:
                following = _id(i)
                break
            if now - g.pel[i][1] < int(idle):
                continue
            if i not in stream.entries:
                del g.pel[i]
                deleted.append(_id(i))
                continue
            self._claim_one(g, i, consumer, justid)
            claimed.append(_id(i) if justid else [_id(i), list(stream.entries[i])])
        return [following, claimed, deleted]
