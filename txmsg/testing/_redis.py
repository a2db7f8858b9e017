# -*- test-case-name: txmsg.test.test_contract_redis -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{MemoryRedisCore}, the body of L{txmsg.testing.MemoryRedis}: an in-memory
Redis on a clock, behind the interfaces txmsg's
Redis layer uses (a command handler with C{execute_command} and
txredisapi-style methods; a subscriber protocol driving L{PubSub}'s router
interface), so the real L{txmsg.redis.RedisService}, L{PubSub},
L{KeyExpiry}, L{ControlListener}, L{Cache}, L{Lock}, L{DelayQueue} and
L{ReliableQueue} run unmodified on it.  The data commands and Lua scripting
come from the primitives' unit-test store; this adds pub/sub with patterns,
keyspace expiry notifications driven by the clock, more commands,
connections that can be dropped, and the services.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from txmsg.testing._redis_reply import OK, ResponseError, Status
from txmsg.testing._redis_store import FakeRedis

__all__ = ["MemoryRedisCore", "MemoryRedisHandler"]


class _Expires(dict):
    """Expiry times that schedule active expiry on the clock when set."""

    owner: Any = None

    def __setitem__(self, key: bytes, when: float) -> None:
        super().__setitem__(key, when)
        if self.owner is not None:
            delay = max(0.0, when - self.owner.clock.seconds())
            self.owner.clock.callLater(delay, self.owner._active_expire, key, when)


def _tx_error(name: str, message: str) -> Exception:
    """
    An instance of txredisapi's exception class C{name}.  (txredisapi is
    imported here, not at the top: importing it installs the global
    reactor, which importing L{txmsg.testing} must not do.)
    """
    import txredisapi  # installs the global reactor when imported: see above

    error: Exception = getattr(txredisapi, name)(message)
    return error


class MemoryRedisCore(FakeRedis):
    """
    The data, pub/sub, expiry and failure injection of L{MemoryRedis}
    (which adds the factories of the services that connect to it).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        """
        @param clock: a C{Clock} (default: a new one).
        """
        super().__init__(clock)
        self.expires = _Expires()
        self.expires.owner = self
        self.config: dict[str, str] = {"notify-keyspace-events": ""}
        self.reconnect_delay = 1.0
        self.refusing = False
        self._subscribers: list[Any] = []
        self._connections: list[Any] = []

    # -- services -----------------------------------------------------------------

    def handler(self) -> MemoryRedisHandler:
        """A command handler always connected (no service needed)."""
        return MemoryRedisHandler(self, None)

    # -- failure injection -----------------------------------------------------------

    def drop_connections(self) -> None:
        """
        Drop every connection (commands and subscribers); they reconnect
        after C{reconnect_delay} seconds unless L{refuse_connections}.
        Subscriptions are re-established by L{PubSub}; messages published
        meanwhile are lost, as with a real Redis.
        """
        for conn in list(self._connections):
            conn._drop()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Keep dropped connections down (or let them come back)."""
        self.refusing = refuse

    def pause(self) -> None:
        """Hold every reply until L{resume} (commands then time out)."""
        self.paused = True

    def resume(self) -> None:
        """Deliver the held replies."""
        self.flush()

    def fail_commands(self, error: Exception | None) -> None:
        """Fail every command with C{error} (L{None}: stop failing)."""
        self.error = error

    # -- commands ---------------------------------------------------------------------

    def execute_command(self, *args: Any, **kw: Any) -> Deferred[Any]:
        """Run one command; an unknown one fails like Redis does."""
        name = str(args[0]).lower()
        if not hasattr(self, "_c_" + name):
            return fail(_tx_error("ResponseError", f"ERR unknown command '{name}'"))
        d = super().execute_command(*args, **kw)

        def convert(f: Any) -> Any:
            if f.check(ResponseError):
                return fail(_tx_error("ResponseError", str(f.value)))
            return f

        return d.addErrback(convert)

    def _alive(self, key: bytes) -> bool:
        exp = self.expires.get(key)
        if exp is not None and self.clock.seconds() >= exp and key in self.data:
            self._expired(key)
        return super()._alive(key)

    def _active_expire(self, key: bytes, when: float) -> None:
        if self.expires.get(key) == when and key in self.data:
            self._expired(key)

    def _expired(self, key: bytes) -> None:
        self.data.pop(key, None)
        dict.pop(self.expires, key, None)
        flags = self.config.get("notify-keyspace-events", "")
        if "E" in flags and ("x" in flags or "A" in flags):
            self._fanout(b"__keyevent@0__:expired", key)

    def _c_set(self, key: bytes, value: bytes, *opts: bytes) -> Any:
        up = [o.upper() for o in opts]
        alive = self._alive(key)
        if (b"NX" in up and alive) or (b"XX" in up and not alive):
            return None
        self.data[key] = value
        if b"KEEPTTL" not in up:
            dict.pop(self.expires, key, None)
        for flag, scale in ((b"EX", 1.0), (b"PX", 0.001)):
            if flag in up:
                self.expires[key] = self.clock.seconds() + int(opts[up.index(flag) + 1]) * scale
        return OK

    def _c_setex(self, key: bytes, seconds: bytes, value: bytes) -> Any:
        return self._c_set(key, value, b"EX", seconds)

    def _c_expire(self, key: bytes, seconds: bytes) -> int:
        return self._c_pexpire(key, str(int(seconds) * 1000).encode())

    def _c_pttl(self, key: bytes) -> int:
        if not self._alive(key):
            return -2
        exp = self.expires.get(key)
        return -1 if exp is None else int(round((exp - self.clock.seconds()) * 1000))

    def _c_ttl(self, key: bytes) -> int:
        ms = self._c_pttl(key)
        return ms if ms < 0 else int(round(ms / 1000.0))

    def _c_persist(self, key: bytes) -> int:
        return 1 if self._alive(key) and dict.pop(self.expires, key, None) else 0

    def _c_time(self) -> list[bytes]:
        """TIME: the clock's seconds and microseconds."""
        micros = int(round(self.clock.seconds() * 1_000_000))
        return [str(micros // 1_000_000).encode(), str(micros % 1_000_000).encode()]

    def _c_zremrangebyscore(self, key: bytes, lo: bytes, hi: bytes) -> int:
        gone = self._c_zrangebyscore(key, lo, hi)
        return self._c_zrem(key, *gone) if gone else 0

    def _c_incrby(self, key: bytes, amount: bytes) -> int:
        value = int(self._c_get(key) or 0) + int(amount)
        self.data[key] = str(value).encode()
        return value

    def _c_incr(self, key: bytes) -> int:
        return self._c_incrby(key, b"1")

    def _c_decr(self, key: bytes) -> int:
        return self._c_incrby(key, b"-1")

    def _c_mget(self, *keys: bytes) -> list:
        return [self._c_get(k) for k in keys]

    def _c_keys(self, pattern: bytes) -> list:
        return sorted(
            k
            for k in list(self.data)
            if self._alive(k) and fnmatchcase(k.decode("utf-8", "replace"), pattern.decode())
        )

    def _c_ping(self, *args: bytes) -> Any:
        return args[0] if args else Status(b"PONG")

    def _pop(self, key: bytes, left: bool) -> Any:
        lst = self._get(key, list)
        if not lst:
            return None
        v = lst.pop(0 if left else -1)
        self._put(key, lst)
        return v

    def _c_lpop(self, key: bytes) -> Any:
        return self._pop(key, True)

    def _c_rpop(self, key: bytes) -> Any:
        return self._pop(key, False)

    def _c_brpoplpush(self, src: bytes, dst: bytes, timeout: bytes) -> Any:
        return self._c_blmove(src, dst, b"RIGHT", b"LEFT", timeout)

    def _c_sismember(self, key: bytes, member: bytes) -> int:
        return int(member in self._get(key, set))

    def _c_scard(self, key: bytes) -> int:
        return len(self._get(key, set))

    def _c_config(self, action: bytes, name: bytes, *value: bytes) -> Any:
        key = name.decode()
        if action.upper() == b"GET":
            return [name, self.config.get(key, "").encode()] if key in self.config else []
        self.config[key] = value[0].decode() if value else ""
        return OK

    # -- pub/sub ---------------------------------------------------------------------

    def _c_publish(self, channel: bytes, message: bytes) -> int:
        return self._fanout(channel, message)

    def _fanout(self, channel: bytes, message: bytes) -> int:
        self.published.append((channel, message))
        receivers = 0
        for sub in list(self._subscribers):
            receivers += sub.receive(channel, message)
        return receivers


class MemoryRedisHandler:
    """
    The command handler: C{execute_command(*args)}, and txredisapi-style
    methods (C{get}, C{set(key, value, expire=...)}, C{delete}, C{hgetall},
    C{smembers}, C{publish}...; any other name is sent as that command).
    Replies are decoded like C{decode_responses=True}.
    """

    def __init__(self, redis: MemoryRedisCore, connection: Any) -> None:
        self._redis = redis
        self._connection = connection

    def execute_command(self, *args: Any, **kw: Any) -> Deferred[Any]:
        """Send one command (held while the connection is down)."""
        conn = self._connection
        if conn is not None and not conn.up:
            return conn._hold(args)
        return self._redis.execute_command(*args)

    def set(
        self,
        key: Any,
        value: Any,
        expire: int | None = None,
        pexpire: int | None = None,
        only_if_not_exists: bool = False,
        only_if_exists: bool = False,
    ) -> Deferred[Any]:
        """SET with txredisapi's keyword options."""
        args: list = ["SET", key, value]
        if expire is not None:
            args += ["EX", expire]
        if pexpire is not None:
            args += ["PX", pexpire]
        if only_if_not_exists:
            args.append("NX")
        if only_if_exists:
            args.append("XX")
        return self.execute_command(*args)

    def delete(self, *keys: Any) -> Deferred[Any]:
        """DEL."""
        return self.execute_command("DEL", *_flat(keys))

    def hgetall(self, key: Any) -> Deferred[Any]:
        """HGETALL as a dict."""
        d = self.execute_command("HGETALL", key)
        return d.addCallback(lambda r: dict(zip(r[::2], r[1::2], strict=False)))

    def smembers(self, key: Any) -> Deferred[Any]:
        """SMEMBERS as a set."""
        return self.execute_command("SMEMBERS", key).addCallback(set)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def command(*args: Any) -> Deferred[Any]:
            return self.execute_command(name.upper(), *_flat(args))

        return command


def _flat(args: tuple) -> list:
    out: list = []
    for a in args:
        out.extend(a if isinstance(a, (list, tuple)) else [a])
    return out
