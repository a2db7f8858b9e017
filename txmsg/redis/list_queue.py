# -*- test-case-name: txmsg.test.test_redis_list_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A reliable work queue on a Redis list (seed S7), at-least-once.

    queue = ReliableQueue(redis, "emails")
    await queue.push({"to": "ada@example.com"})
    consumer = queue.consume(send_email)                  # blocking pops
    consumer = queue.consume(send_email, mode="burst")    # drain, then stop
    await consumer.done                                   # burst: fires when empty

How it works (keys in L{txmsg.redis._list_scripts}):

  - producers C{LPUSH} to the list C{Q}; consumers take from the other end,
    so the queue is FIFO;
  - a consumer takes an item with C{BLMOVE Q Q:processing:<id> RIGHT LEFT
    <timeout>} (C{mode="block"}, the seed's C{blpop} mode) on a
    B{dedicated} connection of its own (a blocking pop holds its connection,
    so it never shares one with other traffic), or with non-blocking
    C{LMOVE} until the list is empty (C{mode="burst"}, the seed's C{lpop}
    burst mode);
  - the item is atomically in the consumer's processing list while the
    callback runs; success removes it (C{LREM}); failure moves it to C{Q:dead}
    (C{on_failure="dead"}, default) or back to the queue (C{"requeue"});
  - each consumer refreshes a heartbeat key C{Q:consumer:<id>} (TTL
    C{heartbeat_ttl}) every C{heartbeat_ttl/3} s and, every C{heartbeat_ttl}
    s, sweeps: the processing lists of consumers whose heartbeat expired are
    moved back to the queue (a Lua script re-checks the heartbeat, so a live
    consumer is never robbed);
  - a clean stop finishes the callbacks in flight and returns anything left in
    its processing list to the queue.

B{Guarantee}: at-least-once.  A pushed item is removed from Redis only after
its callback succeeded (or it was dead-lettered).  It can be delivered twice
when a consumer dies (or stalls longer than C{heartbeat_ttl}) after taking it:
make callbacks idempotent.  Order is FIFO per queue, except for recovered and
requeued items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txmsg.redis import _list_scripts as scripts
from txmsg.redis._common import handler_of, resolve_reactor
from txmsg.redis.slots import tagged_prefix
from txmsg.serializers import Serializer, get_serializer

__all__ = ["ListConsumer", "ReliableQueue"]


class ReliableQueue:
    """
    A named list queue: producers push, L{ListConsumer}s consume.

    @ivar key: the list's key: C{"<namespace>:{<name>}"} (the braces are a
        Redis Cluster hash tag), or the name itself without a namespace.
    @ivar tag: the prefix of the queue's other keys, with the same hash tag.
    @ivar dead_key: where failed items go (C{tag + ":dead"}).
    """

    def __init__(
        self,
        redis: Any,
        name: str,
        *,
        namespace: str = "queue",
        serializer: str | Serializer = "json",
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param redis: a L{RedisConnection}, L{RedisService} or command handler
            (for pushes, acks and heartbeats; blocking pops get their own
            connection).
        @param name: the queue's name.
        @param namespace: key prefix (C{""}: the key is C{name} itself).
        @param serializer: payload codec (C{"json"}; C{"text"}/C{"bytes"} for
            raw job ids as RQ pushes them; C{"pickle"} only for trusted data).
        @param reactor: the clock (global reactor when C{None}).
        """
        self._redis = redis
        self.name = name
        # One Redis Cluster hash tag per queue, so that every script's keys
        # (and BLMOVE's two) share a slot.  Without a namespace the key is
        # the name itself (RQ's "rq:queue:<name>"); the other keys then use
        # it whole as their tag, which hashes to the same slot.
        self.key = tagged_prefix(namespace, name) if namespace else name
        self.tag = self.key if namespace else tagged_prefix("", name)
        self.dead_key = self.tag + ":dead"
        self.consumers_key = self.tag + ":consumers"
        self.serializer = get_serializer(serializer)
        self.reactor = resolve_reactor(reactor, redis)

    def __repr__(self) -> str:
        return f"<ReliableQueue {self.key}>"

    @property
    def _handler(self) -> Any:
        return handler_of(self._redis)

    def processing_key(self, consumer_id: str) -> str:
        """
        The processing list of consumer C{consumer_id}.
        """
        return f"{self.tag}:processing:{consumer_id}"

    def heartbeat_key(self, consumer_id: str) -> str:
        """
        The heartbeat key of consumer C{consumer_id}.
        """
        return f"{self.tag}:consumer:{consumer_id}"

    def push(self, *payloads: Any) -> Deferred[int]:
        """
        Append payloads to the queue; fires with its new length.
        """
        if not payloads:
            raise TypeError("push() needs at least one payload")
        data = [self.serializer.dumps(p) for p in payloads]
        return self._handler.execute_command("LPUSH", self.key, *data).addCallback(int)

    def length(self) -> Deferred[int]:
        """
        Fires with the number of items waiting (not counting those in
        processing lists).
        """
        return self._handler.execute_command("LLEN", self.key).addCallback(int)

    def recover(self, *, exclude: str | None = None) -> Deferred[int]:
        """
        Move the processing lists of consumers whose heartbeat expired back to
        the queue; fires with the number of items moved.  Consumers do this
        periodically; call it yourself after a crash if none is running.
        """
        h = self._handler

        async def go() -> int:
            members = await h.execute_command("SMEMBERS", self.consumers_key)
            moved = 0
            for cid in members or ():
                if isinstance(cid, bytes):
                    cid = cid.decode("utf-8")
                if cid == exclude:
                    continue
                n = await self.recover_consumer(cid)
                moved += max(0, n)
            return moved

        return Deferred.fromCoroutine(go())

    def recover_consumer(self, consumer_id: str, *, force: bool = False) -> Deferred[int]:
        """
        Move consumer C{consumer_id}'s processing list back to the queue if
        its heartbeat is gone (or C{force}); fires with the number moved, or
        -1 when the consumer is alive.
        """
        d = scripts.RECOVER(
            self._handler,
            [
                self.heartbeat_key(consumer_id),
                self.processing_key(consumer_id),
                self.key,
                self.consumers_key,
            ],
            [consumer_id, 100000, "1" if force else "0"],
        )
        return d.addCallback(int)

    def consumer(self, callback: Callable[[Any], Any] | None = None, **kw: Any) -> ListConsumer:
        """
        A L{ListConsumer} of this queue, not started (for a service tree).
        """
        return ListConsumer(self, callback, **kw)

    def consume(self, callback: Callable[[Any], Any] | None = None, **kw: Any) -> ListConsumer:
        """
        Start consuming: a started L{ListConsumer} (call C{stopService()} to
        stop; in burst mode, C{consumer.done} fires when the queue is empty).
        """
        c = self.consumer(callback, **kw)
        c.startService()
        return c


from txmsg.redis._list_consumer import ListConsumer  # noqa: E402
