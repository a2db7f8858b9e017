# -*- test-case-name: txmsg.test.test_redis_delay_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A delay queue on a Redis sorted set (seed S11), claimed atomically.

    queue = DelayQueue(redis, "orders")
    await queue.schedule({"order": 42}, delay=30)        # or at=unix_time
    poller = queue.poller(handle)                         # a Service
    poller.setServiceParent(app)                          # or startService()

    async def handle(item):                               # DelayedItem
        ...  # return normally: acked; raise: retried with backoff, then dead

Items live in Redis until they are acknowledged (or dead-lettered), so they
survive restarts of every process.  Several pollers, in as many processes as
you like, share a queue: a claim is one Lua script that moves due items from
C{P:due} to C{P:processing} with a lease deadline, so each claim hands an
item to exactly one poller.  Then:

  - the handler succeeds: the item is deleted (ack);
  - the handler fails: it goes back to C{P:due} with a backoff delay, or,
    after C{max_attempts} claims (or when its payload cannot be decoded), to
    the dead-letter list C{P:dead} as a JSON envelope;
  - the poller dies, or the handler outlives the lease: the lease expires and
    the next claim (by any poller) puts it back in C{P:due} and claims it
    again, counting an attempt.

B{Guarantee}: at-least-once.  An item is delivered to one poller per claim,
never to two at the same time while its lease runs; it is delivered again
only after a failure or an expired lease, so make handlers idempotent and
keep them shorter than C{lease}.  Nothing scheduled is lost while Redis keeps
its data.  Due times are the pollers' clocks (unix time): keep hosts in NTP
sync; skew delays or advances delivery by the skew.

See L{DelayPoller} for how pollers sleep (until the next due time, not a fixed
interval).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from txmsg.redis import _delay_scripts as scripts
from txmsg.redis._common import as_bytes, handler_of, resolve_reactor
from txmsg.redis.slots import tagged_prefix
from txmsg.serializers import Serializer, get_serializer

__all__ = ["Claim", "DelayedItem", "DelayQueue", "DelayPoller"]


@dataclass(frozen=True)
class DelayedItem:
    """
    One claimed item.

    @ivar id: its id (a uuid hex unless given to L{DelayQueue.schedule}).
    @ivar payload: the decoded payload.
    @ivar attempts: how many times it has been claimed (1 the first time).
    @ivar due: when it was due (unix seconds).
    @ivar raw: the payload bytes as stored.
    """

    id: str
    payload: Any
    attempts: int
    due: float
    raw: bytes


@dataclass(frozen=True)
class Claim:
    """
    The result of one claim: the items (raw, not decoded) and when the next
    item is due / the next lease expires (C{None} when there is none).
    """

    items: list[tuple[str, bytes, int, float]]
    next_due: float | None
    next_lease: float | None


def _score(value: Any) -> float | None:
    if value in ("", b"", None):
        return None
    return float(as_bytes(value))


class DelayQueue:
    """
    The queue: scheduling, and the atomic operations pollers use.

    @ivar prefix: C{"<namespace>:{<name>}"}, the prefix of every key (the
        braces are a Redis Cluster hash tag: all keys share one slot).
    @ivar dead_key: the dead-letter list.
    """

    def __init__(
        self,
        redis: Any,
        name: str,
        *,
        namespace: str = "delay",
        serializer: str | Serializer = "json",
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param redis: a L{RedisConnection}, L{RedisService} or command handler.
        @param name: the queue's name.
        @param namespace: key prefix.
        @param serializer: payload codec (C{"json"} by default; C{"pickle"}
            only for data nobody else can write).
        @param reactor: the clock (global reactor when C{None}).
        """
        self._redis = redis
        self.name = name
        # one hash tag per queue: every script's keys share a Redis Cluster slot
        self.prefix = tagged_prefix(namespace, name)
        self.due_key = self.prefix + ":due"
        self.processing_key = self.prefix + ":processing"
        self.items_key = self.prefix + ":items"
        self.attempts_key = self.prefix + ":attempts"
        self.dead_key = self.prefix + ":dead"
        self.wake_channel = self.prefix + ":wake"
        self.serializer = get_serializer(serializer)
        self.reactor = resolve_reactor(reactor, redis)
        self._listeners: list[Callable[[float], None]] = []

    def __repr__(self) -> str:
        return f"<DelayQueue {self.prefix}>"

    @property
    def _handler(self) -> Any:
        return handler_of(self._redis)

    def schedule(
        self,
        payload: Any,
        *,
        at: float | None = None,
        delay: float | None = None,
        id: str | None = None,
    ) -> Deferred[str]:
        """
        Add an item due at unix time C{at}, or C{delay} seconds from now (now
        when neither is given).  Rescheduling an existing C{id} replaces it.

        @return: fires with the item id once Redis has it.
        """
        if at is not None and delay is not None:
            raise TypeError("give at= or delay=, not both")
        due = at if at is not None else self.reactor.seconds() + (delay or 0.0)
        item_id = id or uuid.uuid4().hex
        data = self.serializer.dumps(payload)
        d = scripts.SCHEDULE(
            self._handler,
            [self.due_key, self.items_key],
            [item_id, repr(float(due)), data, self.wake_channel],
        )

        def done(_: Any) -> str:
            self._notify(due)
            return item_id

        return d.addCallback(done)

    def claim(self, limit: int, lease: float) -> Deferred[Claim]:
        """
        Atomically take up to C{limit} due items into the processing set with
        a lease of C{lease} seconds (first putting back items whose lease
        expired).  Low level: L{DelayPoller} calls this.
        """
        now = self.reactor.seconds()
        d = scripts.CLAIM(
            self._handler,
            [self.due_key, self.processing_key, self.items_key, self.attempts_key],
            [repr(now), int(limit), repr(now + lease)],
        )

        def parse(reply: list[Any]) -> Claim:
            items = []
            for i in range(2, len(reply), 4):
                item_id = reply[i]
                if isinstance(item_id, bytes):
                    item_id = item_id.decode("utf-8")
                items.append(
                    (
                        item_id,
                        as_bytes(reply[i + 1]),
                        int(reply[i + 2]),
                        float(as_bytes(reply[i + 3])),
                    )
                )
            return Claim(items, _score(reply[0]), _score(reply[1]))

        return d.addCallback(parse)

    def decode(self, item_id: str, raw: bytes, attempts: int, due: float) -> DelayedItem:
        """
        Build a L{DelayedItem}; raises the serializer's error on bad payload.
        """
        return DelayedItem(item_id, self.serializer.loads(raw), attempts, due, raw)

    def settle(self, outcomes: Sequence[tuple[str, float | None]]) -> Deferred[list[bool]]:
        """
        Record the outcomes of claimed items in one Lua call (one round
        trip), in order: C{(id, None)} acks (deletes) a handled item;
        C{(id, delay)} puts it back, due in C{delay} seconds.  Fires with one
        flag per outcome: for an ack, whether the item was still there; for
        a retry, whether it was still claimed (C{False}: its lease had
        already expired, so it is back in the queue anyway).  Low level:
        L{DelayPoller} sends what settles in one reactor turn with one call.
        """
        if not outcomes:
            return succeed([])
        now = self.reactor.seconds()
        args: list[str] = []
        retried: list[float] = []
        for item_id, delay in outcomes:
            if delay is None:
                args += [item_id, ""]
            else:
                retried.append(now + delay)
                args += [item_id, repr(now + delay)]
        d = scripts.SETTLE(
            self._handler,
            [self.processing_key, self.due_key, self.items_key, self.attempts_key],
            args,
        )

        def done(reply: list[Any]) -> list[bool]:
            if retried:
                self._notify(min(retried))
            return [bool(int(n)) for n in reply]

        return d.addCallback(done)

    def ack(self, item_id: str) -> Deferred[bool]:
        """
        Delete a handled item; fires C{True} if it was still there.
        """
        return self.settle([(item_id, None)]).addCallback(lambda flags: flags[0])

    def retry(self, item_id: str, delay: float) -> Deferred[bool]:
        """
        Put a claimed item back, due in C{delay} seconds; C{False} if its
        lease had already expired (it is back in the queue anyway).
        """
        return self.settle([(item_id, delay)]).addCallback(lambda flags: flags[0])

    def dead_letter(self, item_id: str, raw: bytes, attempts: int, error: str) -> Deferred[bool]:
        """
        Move a claimed item to C{P:dead} as a JSON envelope C{{"id",
        "attempts", "error", "failed_at", "payload"}} (C{payload} is the
        stored text, or base64 with C{"payload_encoding": "base64"}).
        """
        envelope: dict[str, Any] = {
            "id": item_id,
            "attempts": attempts,
            "error": error,
            "failed_at": self.reactor.seconds(),
        }
        try:
            envelope["payload"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            envelope["payload"] = base64.b64encode(raw).decode("ascii")
            envelope["payload_encoding"] = "base64"
        d = scripts.DEAD(
            self._handler,
            [self.processing_key, self.items_key, self.attempts_key, self.dead_key],
            [item_id, json.dumps(envelope, separators=(",", ":"))],
        )
        return d.addCallback(bool)

    def move_due(
        self, list_key: str, limit: int = 100, kind: str = "list", levels: str | None = None
    ) -> Deferred[tuple[int, float | None]]:
        """
        Atomically move up to C{limit} due payloads to the Redis list
        C{list_key} (e.g. a L{ReliableQueue}'s C{key}); fires with C{(moved,
        next due time or None)}.  On Redis Cluster C{list_key} must share
        this queue's hash tag: a L{ReliableQueue} of the same name does.
        With C{kind="stream"}, C{list_key} is a stream and each payload its
        entry's fields and values, each as C{<length>:<bytes>} (what
        L{txmsg.redis.streams} schedules); C{levels}, its queue's
        max-priority key, sends each to the stream of its priority level.
        """
        d = scripts.MOVE(
            self._handler,
            [
                self.due_key,
                self.items_key,
                self.attempts_key,
                list_key,
                *([levels] if levels else []),
            ],
            [repr(self.reactor.seconds()), int(limit), kind],
        )
        return d.addCallback(lambda r: (int(r[0]), _score(r[1])))

    def counts(self) -> Deferred[dict[str, int]]:
        """
        Fires with C{{"due": n, "processing": n, "dead": n}} (C{due} counts
        scheduled items, due or not).
        """
        h = self._handler

        async def go() -> dict[str, int]:
            return {
                "due": int(await h.execute_command("ZCARD", self.due_key)),
                "processing": int(await h.execute_command("ZCARD", self.processing_key)),
                "dead": int(await h.execute_command("LLEN", self.dead_key)),
            }

        return Deferred.fromCoroutine(go())

    def poller(
        self, callback: Callable[[DelayedItem], Any] | None = None, **kw: Any
    ) -> DelayPoller:
        """
        A L{DelayPoller} for this queue (not started); see its parameters.
        """
        return DelayPoller(self, callback, **kw)

    def _notify(self, due: float) -> None:
        for listener in list(self._listeners):
            listener(due)

    def _listen(self, listener: Callable[[float], None]) -> None:
        self._listeners.append(listener)

    def _unlisten(self, listener: Callable[[float], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)


from txmsg.redis._delay_poller import DelayPoller  # noqa: E402
