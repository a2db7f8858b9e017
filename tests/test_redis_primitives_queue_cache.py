# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: L{txmsg.redis.ReliableQueue} and L{txmsg.redis.Cache}
against the real Redis.
"""

from __future__ import annotations

import json
import pickle
import time

from twisted.internet import defer, reactor, task

from tests._primitives_support import PrimitivesTestCase
from tests._redis_support import wait_for
from txmsg.redis import Cache, CacheDecodeError, ReliableQueue

MARKER: list[str] = []


def _mark(what: str) -> None:
    MARKER.append(what)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_mark, ("executed",))


class ListQueueIntegrationTests(PrimitivesTestCase):
    """
    The reliable list queue on a real server.
    """

    async def test_blocking_pop_does_not_stall_other_traffic(self) -> None:
        """
        While a consumer waits in BLMOVE (on its dedicated connection), the
        shared poolsize-1 connection answers at once; pushed items arrive.
        """
        queue = ReliableQueue(self.conn, "q", namespace=self.ns)
        got = []
        consumer = queue.consume(got.append, block_timeout=5)
        self.addCleanup(consumer.stopService)
        await task.deferLater(reactor, 0.5, lambda: None)
        t0 = time.monotonic()
        for _ in range(20):
            await self.conn.handler.ping()
        self.assertLess(time.monotonic() - t0, 1.0)
        await queue.push("a", "b", "c")
        await wait_for(lambda: len(got) == 3, timeout=5)
        self.assertEqual(got, ["a", "b", "c"])
        self.assertEqual(self.peer.llen(consumer.processing_key), 0)

    async def test_killed_consumer_recovered(self) -> None:
        """
        A consumer killed (SIGKILL) while handling an item leaves it in its
        processing list; once its heartbeat expires, another consumer's
        sweep puts it back and it is handled: nothing is lost.
        """
        queue = ReliableQueue(self.conn, "jobs", namespace=self.ns)
        await queue.push({"job": 1})
        child = self.spawn("list-hold", self.ns, "jobs", "victim", "1.5")
        await child.wait_output("took")
        child.sigkill()
        self.assertEqual(self.peer.llen(queue.processing_key("victim")), 1)
        got = []
        consumer = queue.consume(got.append, heartbeat_ttl=1.5, block_timeout=0.5)
        self.addCleanup(consumer.stopService)
        await wait_for(lambda: got, timeout=10)
        self.assertEqual(got, [{"job": 1}])
        self.assertEqual(self.peer.llen(queue.processing_key("victim")), 0)
        self.assertFalse(self.peer.sismember(queue.consumers_key, "victim"))

    async def test_burst_and_dead_letter(self) -> None:
        """
        Burst mode drains and stops; a failing item lands in C{Q:dead}.
        """
        queue = ReliableQueue(self.conn, "b", namespace=self.ns)
        await queue.push(1, 2, 3)

        def cb(n: int) -> None:
            if n == 2:
                raise ValueError(n)

        consumer = queue.consume(cb, mode="burst")
        self.assertEqual(await consumer.done, 2)
        self.assertEqual(self.peer.lrange(queue.dead_key, 0, -1), [b"2"])
        self.assertEqual(self.peer.keys(queue.key + ":processing:*"), [])
        self.flushLoggedErrors(ValueError)


class CacheIntegrationTests(PrimitivesTestCase):
    """
    The cache on a real server.
    """

    async def test_roundtrip_ttl(self) -> None:
        """
        Values round-trip (JSON, readable by other clients) with their TTL.
        """
        cache = Cache(self.conn, namespace=self.ns)
        await cache.set("u", {"name": "Ada"}, ttl=5)
        self.assertEqual(json.loads(self.peer.get(cache.key("u"))), {"name": "Ada"})
        self.assertGreater(self.peer.pttl(cache.key("u")), 4000)
        self.assertEqual(await cache.get("u"), {"name": "Ada"})
        msgpack_cache = Cache(self.conn, namespace=self.ns, serializer="msgpack")
        await msgpack_cache.set("m", [1, "é", b"\x00\xff"])
        self.assertEqual(await msgpack_cache.get("m"), [1, "é", b"\x00\xff"])

    async def test_pickle_refused_unless_enabled(self) -> None:
        """
        A malicious pickle written by another client is not executed by a
        default (JSON) cache, which raises L{CacheDecodeError}; only a cache
        created with C{serializer="pickle"} unpickles (and so runs it).
        """
        del MARKER[:]
        cache = Cache(self.conn, namespace=self.ns)
        self.peer.set(cache.key("evil"), pickle.dumps(_Evil()))
        with self.assertRaises(CacheDecodeError):
            await cache.get("evil")
        self.assertEqual(await cache.get_or_compute("evil", lambda: "safe"), "safe")
        self.assertEqual(MARKER, [])
        self.peer.set(cache.key("evil"), pickle.dumps(_Evil()))
        await Cache(self.conn, namespace=self.ns, serializer="pickle").get("evil")
        self.assertEqual(MARKER, ["executed"])

    async def test_stampede_across_processes(self) -> None:
        """
        Three processes, five concurrent callers each, miss the same key at
        once: the value is computed once in total.
        """
        counter = self.ns + ":computations"
        children = [self.spawn("cache-compute", self.ns, "hot", counter) for _ in range(3)]
        for child in children:
            self.assertEqual(await child.wait_exit(30), 0, child.output())
            self.assertIn('{"computed": true}', child.output())
        self.assertEqual(int(self.peer.get(counter)), 1)

    async def test_concurrent_in_process(self) -> None:
        """
        Concurrent callers in one process share one computation.
        """
        cache = Cache(self.conn, namespace=self.ns)
        calls = []

        def compute() -> defer.Deferred:
            calls.append(1)
            return task.deferLater(reactor, 0.2, lambda: 42)

        values = await defer.gatherResults([cache.get_or_compute("k", compute) for _ in range(20)])
        self.assertEqual(values, [42] * 20)
        self.assertEqual(calls, [1])
