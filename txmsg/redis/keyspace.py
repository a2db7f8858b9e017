# -*- test-case-name: txmsg.test.test_redis_keyspace -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Callbacks on expired keys, from Redis keyspace notifications.

    expiry = KeyExpiry(pubsub, connection)
    expiry.startService()
    expiry.on_expired("order:*", cancel_order)          # db of the connection URL
    await connection.handler.set("order:42", "unpaid", expire=1800)

Built on the C{__keyevent@<db>__:expired} channel.  When a callback is
registered, and again after every reconnect of the subscriber connection,
the server's C{notify-keyspace-events} is checked and C{E} and C{x} are added
to the flags already there (C{CONFIG SET}); when the server forbids CONFIG
(managed Redis, ACLs, renamed command) a clear warning says what to set.

Guarantees (Redis's, not ours to improve): a notification is sent B{at most
once} and only to clients connected at that moment (none is replayed after a
reconnect), and B{possibly late}: Redis expires keys lazily on access and by
sampling, so the event may come well after the TTL ran out.  Use it to
trigger work that tolerates that (cancel unpaid orders, refresh caches), with
a periodic sweep as a safety net where a miss matters.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.logger import Logger

from txmsg.events import IEventSink
from txmsg.redis._delivery import Message, Subscription

__all__ = ["ExpiredKey", "KeyExpiry", "merge_notify_flags"]

_FLAG = "notify-keyspace-events"


class ExpiredKey(NamedTuple):
    """
    One expired key, as handed to callbacks.

    @ivar key: the key name (UTF-8, surrogate escapes for other bytes).
    @ivar db: the database number.
    @ivar raw: the key name as received.
    """

    key: str
    db: int
    raw: bytes


def merge_notify_flags(current: str) -> str | None:
    """
    The C{notify-keyspace-events} value that adds key-event notifications of
    expirations (C{E} and C{x}) to C{current}, or C{None} when C{current}
    already has them.
    """
    flags = current or ""
    has_x = "x" in flags or "A" in flags
    if "E" in flags and has_x:
        return None
    out = flags
    if "E" not in out:
        out += "E"
    if not has_x:
        out += "x"
    return out


class _Registration:
    """
    One C{on_expired} callback; L{cancel} removes it.
    """

    def __init__(
        self,
        owner: KeyExpiry,
        db: int,
        pattern: str,
        callback: Callable[[ExpiredKey], Any],
    ) -> None:
        self.owner = owner
        self.db = db
        self.pattern = pattern
        self.callback = callback

    def cancel(self) -> None:
        """
        Stop calling this callback.  Idempotent.
        """
        self.owner._remove(self)


class KeyExpiry(Service):
    """
    An C{IService} calling back on expired keys matching glob patterns.

    @ivar notifications_enabled: C{True}/C{False} once checked, else C{None}.
    """

    log = Logger()

    def __init__(
        self,
        pubsub: Any,
        connection: Any,
        *,
        configure: bool = True,
        events: IEventSink | None = None,
    ) -> None:
        """
        @param pubsub: the L{txmsg.redis.PubSub} to listen with.
        @param connection: a L{txmsg.redis.RedisConnection} (for CONFIG).
        @param configure: enable the notifications if they are off; with
            C{False} only check and warn.
        @param events: event sink for C{event=} routes.
        """
        self.pubsub = pubsub
        self.connection = connection
        self.configure = configure
        self.events = events
        self.notifications_enabled: bool | None = None
        self._by_db: dict[int, list[_Registration]] = {}
        self._subs: dict[int, Subscription] = {}
        pubsub.add_connect_hook(self._connected)

    def on_expired(
        self,
        pattern: str,
        callback: Callable[[ExpiredKey], Any] | None = None,
        *,
        db: int | None = None,
        event: str | None = None,
    ) -> _Registration:
        """
        Call C{callback(ExpiredKey)} when a key matching C{pattern} (an
        fnmatch-style glob: C{*}, C{?}, C{[abc]}) expires in C{db}.

        @param db: database number; the connection URL's db when C{None}.
        @param event: also (or instead) dispatch C{event} to the event sink
            with the L{ExpiredKey} as payload.
        @return: a registration with C{cancel()}.
        """
        if event is not None:
            callback = self._route(event, callback)
        if callback is None or not callable(callback):
            raise TypeError("on_expired needs a callable or an event name")
        if db is None:
            db = self.connection.url.db
        reg = _Registration(self, db, pattern, callback)
        regs = self._by_db.setdefault(db, [])
        regs.append(reg)
        if db not in self._subs:
            self._subs[db] = self.pubsub.subscribe(f"__keyevent@{db}__:expired", self._receiver(db))
            if self.pubsub.ready:
                # the connect hooks have run already: check now (otherwise
                # _connected does it when the connection is ready)
                self.ensure_notifications()
        return reg

    def _route(self, event: str, callback: Any) -> Callable[[ExpiredKey], Any]:
        events = self.events
        if events is None:
            raise ValueError("event= needs a KeyExpiry created with an events sink")

        def dispatch(expired: ExpiredKey) -> Any:
            d = events.dispatch(event, expired, source="redis:expired")
            if callback is not None:
                callback(expired)
            return d

        return dispatch

    def _remove(self, reg: _Registration) -> None:
        regs = self._by_db.get(reg.db, [])
        if reg in regs:
            regs.remove(reg)
        if not regs and reg.db in self._subs:
            self._subs.pop(reg.db).cancel()
            self._by_db.pop(reg.db, None)

    def _receiver(self, db: int) -> Callable[[Message], Any]:
        def received(message: Message) -> Any:
            expired = ExpiredKey(message.raw.decode("utf-8", "surrogateescape"), db, message.raw)
            waits = []
            for reg in list(self._by_db.get(db, ())):
                if fnmatchcase(expired.key, reg.pattern):
                    d = maybeDeferred(reg.callback, expired)
                    d.addErrback(
                        lambda f, p: self.log.failure(
                            "Expired-key callback for {pattern} failed", f, pattern=p
                        ),
                        reg.pattern,
                    )
                    waits.append(d)
            if waits:
                return gatherResults(waits)
            return None

        return received

    def stopService(self) -> Any:
        """
        Stop listening (registrations are kept for a restart).
        """
        super().stopService()
        for sub in self._subs.values():
            sub.cancel()
        self._subs.clear()
        return None

    def startService(self) -> None:
        """
        Listen for every registered db.
        """
        super().startService()
        for db in self._by_db:
            if db not in self._subs:
                self._subs[db] = self.pubsub.subscribe(
                    f"__keyevent@{db}__:expired", self._receiver(db)
                )

    def _connected(self) -> Any:
        if self._by_db:
            return self.ensure_notifications()
        return None

    def ensure_notifications(self) -> Deferred[bool]:
        """
        Check C{notify-keyspace-events} and enable C{Ex} when allowed; fires
        with whether expiry notifications are on.  Never fails: problems are
        logged as warnings.
        """
        return Deferred.fromCoroutine(self._ensure())

    async def _ensure(self) -> bool:
        url = self.connection.url.redacted()
        handler = self.connection.handler
        try:
            reply = await handler.execute_command("CONFIG", "GET", _FLAG)
            current = _config_value(reply)
            wanted = merge_notify_flags(current)
            if wanted is None:
                self.notifications_enabled = True
                return True
            if not self.configure:
                self.log.warn(
                    "Redis at {url} has notify-keyspace-events={current!r}: "
                    "expired-key callbacks will not fire. Set it to include "
                    "'Ex' (configure=False, so txmsg did not change it).",
                    url=url,
                    current=current,
                )
                self.notifications_enabled = False
                return False
            await handler.execute_command("CONFIG", "SET", _FLAG, wanted)
            self.log.info(
                "Enabled expired-key notifications on {url}: "
                "notify-keyspace-events {old!r} -> {new!r}",
                url=url,
                old=current,
                new=wanted,
            )
            self.notifications_enabled = True
            return True
        except Exception as e:
            self.log.warn(
                "Cannot enable expired-key notifications on Redis at {url}: "
                "CONFIG failed ({error}). Expired-key callbacks will NOT fire "
                "unless the server already has notify-keyspace-events with 'E' "
                "and 'x' (e.g. 'notify-keyspace-events Ex' in redis.conf, or "
                "the equivalent setting of your managed Redis).",
                url=url,
                error=str(e) or type(e).__name__,
            )
            self.notifications_enabled = False
            return False


def _config_value(reply: Any) -> str:
    """
    The value out of a CONFIG GET reply (C{[name, value]}).
    """
    if isinstance(reply, (list, tuple)) and len(reply) >= 2:
        value = reply[1]
    else:
        value = ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)
