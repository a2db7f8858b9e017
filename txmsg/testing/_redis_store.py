# -*- test-case-name: txmsg.test.test_redis_lock -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The in-memory Redis store behind L{txmsg.testing.MemoryRedis} and the
primitives' unit tests: the commands they send
through C{execute_command}, key expiry on a L{Clock}, blocking BLMOVE,
streams (L{txmsg.testing._redis_streams}), and
EVAL/EVALSHA/SCRIPT, which run txmsg's real Lua scripts in an embedded Lua
(L{txmsg.testing._redis_lua}) whose C{redis.call} runs the commands here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from txmsg.testing._redis_lua import LuaScripts, LuaUnavailable
from txmsg.testing._redis_reply import OK, ResponseError, _b, _reply, _score
from txmsg.testing._redis_streams import StreamCommands

__all__ = ["FakeRedis", "ResponseError"]


class FakeRedis(StreamCommands):
    """
    Single-process Redis stand-in.  Set C{paused = True} to hold every reply
    until L{flush}; set C{error} to fail every command with it.

    @ivar calls: every command sent, as tuples.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, float] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.published: list[tuple[bytes, bytes]] = []
        self.paused = False
        self.error: Exception | None = None
        self._held: list[tuple[Deferred[Any], Any]] = []
        self._blocked: list[list[Any]] = []
        self.scripts = LuaScripts(self._command)

    # plumbing

    def execute_command(self, *args: Any, **kw: Any) -> Deferred[Any]:
        self.calls.append(args)
        if self.error is not None:
            return fail(self.error)
        name = str(args[0]).upper()
        try:
            result = getattr(self, "_c_" + name.lower())(*[_b(a) for a in args[1:]])
        except (ResponseError, LuaUnavailable) as e:
            return fail(e)
        finally:
            # Clients blocked in BLMOVE are served once the whole command
            # (a script, too) has run, as in Redis.
            self._serve_blocked()
        if isinstance(result, Deferred):
            return result
        if self.paused:
            d: Deferred[Any] = Deferred()
            self._held.append((d, _reply(result)))
            return d
        return succeed(_reply(result))

    def flush(self) -> None:
        """
        Deliver every held reply.
        """
        self.paused = False
        held, self._held = self._held, []
        for d, r in held:
            d.callback(r)

    def names(self) -> list[str]:
        """
        The command names sent so far.
        """
        return [str(c[0]).upper() for c in self.calls]

    def _command(self, name: str) -> Callable[..., Any] | None:
        """The implementation of command C{name} (lower case), if any."""
        method: Callable[..., Any] | None = getattr(self, "_c_" + name, None)
        return method

    def _alive(self, key: bytes) -> bool:
        exp = self.expires.get(key)
        if exp is not None and self.clock.seconds() >= exp:
            self.data.pop(key, None)
            self.expires.pop(key, None)
        return key in self.data

    def _get(self, key: bytes, kind: type) -> Any:
        if self._alive(key):
            return self.data[key]
        return kind()

    def _put(self, key: bytes, value: Any) -> None:
        if value:
            self.data[key] = value
        else:
            self.data.pop(key, None)
            self.expires.pop(key, None)

    def raw(self, key: str) -> Any:
        """
        The stored value of C{key} (None when absent/expired).
        """
        k = _b(key)
        return self.data.get(k) if self._alive(k) else None

    # strings and keys

    def _c_get(self, key: bytes) -> Any:
        return self.data[key] if self._alive(key) else None

    def _c_set(self, key: bytes, value: bytes, *opts: bytes) -> Any:
        opts_l = [o.upper() for o in opts]
        if b"NX" in opts_l and self._alive(key):
            return None
        self.data[key] = value
        self.expires.pop(key, None)
        if b"PX" in opts_l:
            ms = int(opts[opts_l.index(b"PX") + 1])
            self.expires[key] = self.clock.seconds() + ms / 1000.0
        return OK

    def _c_del(self, *keys: bytes) -> int:
        n = 0
        for k in keys:
            if self._alive(k):
                n += 1
                self._put(k, None)
        return n

    def _c_exists(self, *keys: bytes) -> int:
        return sum(1 for k in keys if self._alive(k))

    def _c_pexpire(self, key: bytes, ms: bytes) -> int:
        if not self._alive(key):
            return 0
        self.expires[key] = self.clock.seconds() + int(ms) / 1000.0
        return 1

    def _c_publish(self, channel: bytes, message: bytes) -> int:
        self.published.append((channel, message))
        return 0

    # lists (index 0 = left)

    def _c_lpush(self, key: bytes, *values: bytes) -> int:
        lst = self._get(key, list)
        for v in values:
            lst.insert(0, v)
        self._put(key, lst)
        return len(lst)

    def _c_rpush(self, key: bytes, *values: bytes) -> int:
        lst = self._get(key, list)
        lst.extend(values)
        self._put(key, lst)
        return len(lst)

    def _c_llen(self, key: bytes) -> int:
        return len(self._get(key, list))

    def _c_lrange(self, key: bytes, start: bytes, stop: bytes) -> list[bytes]:
        lst = self._get(key, list)
        s, e = int(start), int(stop)
        return lst[s : (None if e == -1 else e + 1)]

    def _c_lrem(self, key: bytes, count: bytes, value: bytes) -> int:
        lst = self._get(key, list)
        n = int(count)
        at = [i for i, v in enumerate(lst) if v == value]
        gone = at[n:] if n < 0 else at[:n] if n > 0 else at
        for i in reversed(gone):
            del lst[i]
        self._put(key, lst)
        return len(gone)

    def _c_lmove(self, src: bytes, dst: bytes, wherefrom: bytes, whereto: bytes) -> Any:
        lst = self._get(src, list)
        if not lst:
            return None
        v = lst.pop(0 if wherefrom.upper() == b"LEFT" else -1)
        self._put(src, lst)
        out = self._get(dst, list)
        if whereto.upper() == b"LEFT":
            out.insert(0, v)
        else:
            out.append(v)
        self._put(dst, out)
        return v

    def _c_blmove(self, src: bytes, dst: bytes, wf: bytes, wt: bytes, timeout: bytes) -> Any:
        if self._get(src, list):
            return succeed(_reply(self._c_lmove(src, dst, wf, wt)))
        record: list[Any] = []

        def cancel(d: Deferred[Any]) -> None:
            self._unblock(record)

        d: Deferred[Any] = Deferred(cancel)
        record.extend([d, src, dst, wf, wt, None])
        if float(timeout) > 0:

            def expire() -> None:
                record[5] = None
                self._unblock(record)
                d.callback(None)

            record[5] = self.clock.callLater(float(timeout), expire)
        self._blocked.append(record)
        return d

    def _unblock(self, record: list[Any]) -> None:
        if record in self._blocked:
            self._blocked.remove(record)
        timer, record[5] = record[5], None
        if timer is not None and timer.active():
            timer.cancel()

    def _serve_blocked(self) -> None:
        for record in list(self._blocked):
            d, src, dst, wf, wt, _ = record
            if self._get(src, list):
                self._unblock(record)
                d.callback(_reply(self._c_lmove(src, dst, wf, wt)))

    # sets, hashes, zsets

    def _c_sadd(self, key: bytes, *members: bytes) -> int:
        s = self._get(key, set)
        n = len(set(members) - s)
        s.update(members)
        self._put(key, s)
        return n

    def _c_srem(self, key: bytes, *members: bytes) -> int:
        s = self._get(key, set)
        n = len(s & set(members))
        s.difference_update(members)
        self._put(key, s)
        return n

    def _c_smembers(self, key: bytes) -> list[bytes]:
        return sorted(self._get(key, set))

    def _c_hset(self, key: bytes, *pairs: bytes) -> int:
        h = self._get(key, dict)
        n = 0
        for f, v in zip(pairs[::2], pairs[1::2], strict=True):
            n += f not in h
            h[f] = v
        self._put(key, h)
        return n

    def _c_hget(self, key: bytes, field: bytes) -> Any:
        return self._get(key, dict).get(field)

    def _c_hsetnx(self, key: bytes, field: bytes, value: bytes) -> int:
        h = self._get(key, dict)
        if field in h:
            return 0
        h[field] = value
        self._put(key, h)
        return 1

    def _c_hexists(self, key: bytes, field: bytes) -> int:
        return int(field in self._get(key, dict))

    def _c_hlen(self, key: bytes) -> int:
        return len(self._get(key, dict))

    def _c_hgetall(self, key: bytes) -> list[bytes]:
        return [x for kv in sorted(self._get(key, dict).items()) for x in kv]

    def _c_hdel(self, key: bytes, *fields: bytes) -> int:
        h = self._get(key, dict)
        n = sum(1 for f in fields if h.pop(f, None) is not None)
        self._put(key, h)
        return n

    def _c_hincrby(self, key: bytes, field: bytes, amount: bytes) -> int:
        h = self._get(key, dict)
        value = int(h.get(field, b"0")) + int(amount)
        h[field] = b"%d" % value
        self._put(key, h)
        return value

    def _c_zcard(self, key: bytes) -> int:
        return len(self._get(key, dict))

    def _c_zadd(self, key: bytes, *pairs: bytes) -> int:
        z = self._get(key, dict)
        n = 0
        for s, m in zip(pairs[::2], pairs[1::2], strict=True):
            n += m not in z
            z[m] = float(s)
        self._put(key, z)
        return n

    def _c_zrem(self, key: bytes, *members: bytes) -> int:
        z = self._get(key, dict)
        n = sum(1 for m in members if z.pop(m, None) is not None)
        self._put(key, z)
        return n

    def _c_zscore(self, key: bytes, member: bytes) -> Any:
        s = self._get(key, dict).get(member)
        return None if s is None else _score(s)

    def _sorted(self, key: bytes) -> list[tuple[bytes, float]]:
        """A sorted set's members with their scores, in Redis's order."""
        z = self._get(key, dict)
        return sorted(z.items(), key=lambda t: (t[1], t[0]))

    @staticmethod
    def _listing(items: list[tuple[bytes, float]], opts: tuple[bytes, ...]) -> list[bytes]:
        """Members, each followed by its score with WITHSCORES."""
        if b"WITHSCORES" in (o.upper() for o in opts):
            return [x for m, score in items for x in (m, _score(score))]
        return [m for m, _ in items]

    def _c_zrange(self, key: bytes, start: bytes, stop: bytes, *opts: bytes) -> list[bytes]:
        items = self._sorted(key)
        s, e = int(start), int(stop)
        return self._listing(items[s : (None if e == -1 else e + 1)], opts)

    def _c_zrangebyscore(self, key: bytes, lo: bytes, hi: bytes, *opts: bytes) -> list[bytes]:
        def within(score: float, bound: bytes, low: bool) -> bool:
            open_ = bound.startswith(b"(")
            b = float(bound[1:] if open_ else bound)
            if low:
                return score > b if open_ else score >= b
            return score < b if open_ else score <= b

        items = [
            (m, s) for m, s in self._sorted(key) if within(s, lo, True) and within(s, hi, False)
        ]
        up = [o.upper() for o in opts]
        if b"LIMIT" in up:
            offset, count = (int(x) for x in opts[up.index(b"LIMIT") + 1 : up.index(b"LIMIT") + 3])
            items = items[offset:] if count < 0 else items[offset : offset + count]
        return self._listing(items, opts)

    # scripts (L{txmsg.testing._redis_lua})

    def _c_eval(self, source: bytes, numkeys: bytes, *rest: bytes) -> Any:
        return self.scripts.eval(source, numkeys, *rest)

    def _c_evalsha(self, sha: bytes, numkeys: bytes, *rest: bytes) -> Any:
        return self.scripts.evalsha(sha, numkeys, *rest)

    def _c_script(self, action: bytes, *args: bytes) -> Any:
        what = action.upper()
        if what == b"LOAD":
            return self.scripts.load(*args)
        if what == b"EXISTS":
            return self.scripts.exists(*args)
        if what == b"FLUSH":
            return self.scripts.flush()
        raise ResponseError("ERR unknown subcommand '{}'".format(action.decode()))
