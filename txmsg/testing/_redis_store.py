# -*- test-case-name: txmsg.test.test_redis_lock -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The in-memory Redis store behind L{txmsg.testing.MemoryRedis} and the
primitives' unit tests: the commands they send
through C{execute_command}, key expiry on a L{Clock}, blocking BLMOVE, and
the Lua scripts (EVALSHA/EVAL) re-implemented in Python.  The Lua itself is
exercised against the real server by the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from txmsg.redis import _delay_scripts as ds
from txmsg.redis import _list_scripts as ls
from txmsg.redis import lock as lock_module


class ResponseError(Exception):
    """
    Stands in for txredisapi's ResponseError (an error reply).
    """


def _b(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8")


def _score(s: float) -> bytes:
    """A sorted-set score as Redis writes it in replies: C{50}, not C{50.0}."""
    if s.is_integer() and abs(s) < 2**53:
        return b"%d" % s
    return repr(s).encode()


def _reply(v: Any) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    if isinstance(v, list):
        return [_reply(x) for x in v]
    return v


class FakeRedis:
    """
    Single-process Redis stand-in.  Set C{paused = True} to hold every reply
    until L{flush}; set C{error} to fail every command with it.

    @ivar calls: every command sent, as tuples.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, float] = {}
        self.loaded: set[str] = set()
        self.calls: list[tuple[Any, ...]] = []
        self.published: list[tuple[bytes, bytes]] = []
        self.paused = False
        self.error: Exception | None = None
        self._held: list[tuple[Deferred[Any], Any]] = []
        self._blocked: list[list[Any]] = []
        self._scripts: dict[str, Callable[[list[bytes], list[bytes]], Any]] = {
            lock_module._RELEASE.sha: self._s_release,
            lock_module._EXTEND.sha: self._s_extend,
            ds.SCHEDULE.sha: self._s_schedule,
            ds.CLAIM.sha: self._s_claim,
            ds.ACK.sha: self._s_ack,
            ds.RETRY.sha: self._s_retry,
            ds.DEAD.sha: self._s_dead,
            ds.MOVE.sha: self._s_move,
            ls.RECOVER.sha: self._s_recover,
            ls.FAIL.sha: self._s_fail,
            ls.REQUEUE.sha: self._s_requeue,
        }
        self._sources = {
            s.source: s.sha
            for s in (
                lock_module._RELEASE,
                lock_module._EXTEND,
                ds.SCHEDULE,
                ds.CLAIM,
                ds.ACK,
                ds.RETRY,
                ds.DEAD,
                ds.MOVE,
                ls.RECOVER,
                ls.FAIL,
                ls.REQUEUE,
            )
        }

    # plumbing

    def execute_command(self, *args: Any, **kw: Any) -> Deferred[Any]:
        self.calls.append(args)
        if self.error is not None:
            return fail(self.error)
        name = str(args[0]).upper()
        try:
            result = getattr(self, "_c_" + name.lower())(*[_b(a) for a in args[1:]])
        except ResponseError as e:
            return fail(e)
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
        return b"OK"

    def _c_del(self, *keys: bytes) -> int:
        n = 0
        for k in keys:
            if self._alive(k):
                n += 1
                self._put(k, None)
        return n

    def _c_exists(self, key: bytes) -> int:
        return int(self._alive(key))

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
        self._serve_blocked()
        return len(lst)

    def _c_rpush(self, key: bytes, *values: bytes) -> int:
        lst = self._get(key, list)
        lst.extend(values)
        self._put(key, lst)
        self._serve_blocked()
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
        assert n == 1, "fake supports LREM count 1 only"
        if value in lst:
            lst.remove(value)
            self._put(key, lst)
            return 1
        return 0

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

    def _c_zcard(self, key: bytes) -> int:
        return len(self._get(key, dict))

    def _zrange(
        self, key: bytes, lo: float, hi: float, limit: int | None = None
    ) -> list[tuple[bytes, float]]:
        z = self._get(key, dict)
        items = sorted(((s, m) for m, s in z.items()), key=lambda t: (t[0], t[1]))
        out = [(m, s) for s, m in items if lo <= s <= hi]
        return out if limit is None else out[:limit]

    # the scripts

    def _c_evalsha(self, sha: bytes, numkeys: bytes, *rest: bytes) -> Any:
        name = sha.decode()
        if name not in self.loaded:
            raise ResponseError("NOSCRIPT No matching script. Please use EVAL.")
        n = int(numkeys)
        return self._scripts[name](list(rest[:n]), list(rest[n:]))

    def _c_eval(self, source: bytes, numkeys: bytes, *rest: bytes) -> Any:
        sha = self._sources[source.decode()]
        self.loaded.add(sha)
        return self._c_evalsha(sha.encode(), numkeys, *rest)

    def _s_release(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._c_get(keys[0]) == args[0]:
            return self._c_del(keys[0])
        return 0

    def _s_extend(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._c_get(keys[0]) == args[0]:
            return self._c_pexpire(keys[0], args[1])
        return 0

    def _zadd(self, key: bytes, score: float, member: bytes) -> None:
        z = self._get(key, dict)
        z[member] = score
        self._put(key, z)

    def _zrem(self, key: bytes, member: bytes) -> int:
        z = self._get(key, dict)
        if member in z:
            del z[member]
            self._put(key, z)
            return 1
        return 0

    def _hset(self, key: bytes, field: bytes, value: Any) -> None:
        h = self._get(key, dict)
        h[field] = value
        self._put(key, h)

    def _hdel(self, key: bytes, field: bytes) -> None:
        h = self._get(key, dict)
        h.pop(field, None)
        self._put(key, h)

    def _first_score(self, key: bytes) -> bytes:
        items = self._zrange(key, float("-inf"), float("inf"), 1)
        return _score(items[0][1]) if items else b""

    def _s_schedule(self, keys: list[bytes], args: list[bytes]) -> int:
        self._hset(keys[1], args[0], args[2])
        self._zadd(keys[0], float(args[1]), args[0])
        if args[3]:
            first = self._zrange(keys[0], float("-inf"), float("inf"), 1)
            if first and first[0][0] == args[0]:
                self.published.append((args[3], args[1]))
        return 1

    def _s_claim(self, keys: list[bytes], args: list[bytes]) -> list[Any]:
        due, proc, items, attempts = keys
        now = float(args[0])
        for m, _ in self._zrange(proc, float("-inf"), now, 1000):
            self._zrem(proc, m)
            self._zadd(due, now, m)
        out: list[Any] = [b"", b""]
        limit = int(args[1])
        if limit > 0:
            for m, s in self._zrange(due, float("-inf"), now, limit):
                self._zrem(due, m)
                payload = self._get(items, dict).get(m)
                if payload is not None:
                    self._zadd(proc, float(args[2]), m)
                    a = self._get(attempts, dict)
                    a[m] = a.get(m, 0) + 1
                    self._put(attempts, a)
                    out += [m, payload, a[m], _score(s)]
                else:
                    self._hdel(attempts, m)
        out[0] = self._first_score(due)
        out[1] = self._first_score(proc)
        return out

    def _s_ack(self, keys: list[bytes], args: list[bytes]) -> int:
        n = self._zrem(keys[0], args[0]) + self._zrem(keys[1], args[0])
        self._hdel(keys[2], args[0])
        self._hdel(keys[3], args[0])
        return n

    def _s_retry(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._zrem(keys[0], args[0]):
            self._zadd(keys[1], float(args[1]), args[0])
            return 1
        return 0

    def _s_dead(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._zrem(keys[0], args[0]):
            self._hdel(keys[1], args[0])
            self._hdel(keys[2], args[0])
            self._c_rpush(keys[3], args[1])
            return 1
        return 0

    def _s_move(self, keys: list[bytes], args: list[bytes]) -> list[Any]:
        due, items, attempts, lst = keys
        ids = self._zrange(due, float("-inf"), float(args[0]), int(args[1]))
        for m, _ in ids:
            self._zrem(due, m)
            payload = self._get(items, dict).get(m)
            if payload is not None:
                self._c_lpush(lst, payload)
            self._hdel(items, m)
            self._hdel(attempts, m)
        return [len(ids), self._first_score(due)]

    def _s_recover(self, keys: list[bytes], args: list[bytes]) -> int:
        hb, proc, queue, consumers = keys
        force = args[2] == b"1"
        if not force and self._alive(hb):
            return -1
        n = 0
        while n < int(args[1]) and self._c_lmove(proc, queue, b"LEFT", b"RIGHT") is not None:
            n += 1
        if not self._get(proc, list) and not force:
            self._c_srem(consumers, args[0])
        self._serve_blocked()
        return n

    def _s_fail(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._c_lrem(keys[0], b"1", args[0]):
            self._c_rpush(keys[1], args[0])
            return 1
        return 0

    def _s_requeue(self, keys: list[bytes], args: list[bytes]) -> int:
        if self._c_lrem(keys[0], b"1", args[0]):
            self._c_lpush(keys[1], args[0])
            return 1
        return 0
