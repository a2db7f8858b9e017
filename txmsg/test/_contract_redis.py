# -*- test-case-name: txmsg.test.test_contract_redis -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis contract: pub/sub, key expiry, control channel, cache, lock, delay
queue and list queue behaviour that must hold on L{txmsg.testing.MemoryRedis}
and on a real Redis alike.

A concrete test case provides C{make_redis()} (a started
L{txmsg.redis.RedisService}, stopped after the test), C{make_connection()}
(a second started L{txmsg.redis.RedisConnection}) and C{forget_prefix(p)}
(delete keys starting with C{p} after the test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txmsg.redis import Cache, DelayQueue, Lock, ReliableQueue, send_control
from txmsg.test._contract_base import ContractCase, contract


class RedisContract(ContractCase):
    """Observable behaviour of txmsg's Redis layer."""

    if TYPE_CHECKING:  # provided by each runner's test case

        def make_redis(self) -> Any: ...
        def make_connection(self) -> Any: ...
        def forget_prefix(self, prefix: str) -> None: ...

    async def redis(self) -> Any:
        r = self.make_redis()
        await self.wait(r.when_connected(10))
        return r

    def ns(self) -> str:
        prefix = self.unique("txmsg-contract")
        self.forget_prefix(prefix)
        return prefix

    @contract
    async def test_pubsub_channel(self) -> None:
        """A subscriber gets the messages published on its channel, in order."""
        r = await self.redis()
        channel = self.ns() + ":news"
        got: list = []
        sub = r.subscribe(channel, lambda m: got.append((m.channel, m.data)), decode="text")
        await self.wait(sub.when_active())
        self.assertEqual(await self.wait(r.publish(channel, "one")), 1)
        await self.wait(r.publish(channel, "two"))
        self.assertEqual(await self.wait(r.publish(channel + "x", "nobody")), 0)
        await self.eventually(lambda: len(got) == 2)
        self.assertEqual(got, [(channel, "one"), (channel, "two")])

    @contract
    async def test_pubsub_pattern(self) -> None:
        """A pattern subscriber gets matching channels, with the pattern."""
        r = await self.redis()
        ns = self.ns()
        got: list = []
        sub = r.psubscribe(ns + ":orders.*", got.append, decode="json")
        await self.wait(sub.when_active())
        await self.wait(r.publish(ns + ":orders.1", {"id": 1}))
        await self.wait(r.publish(ns + ":other.1", {"id": 2}))
        await self.eventually(lambda: len(got) == 1)
        await self.sleep(0.1)
        self.assertEqual(
            [(m.channel, m.pattern, m.data) for m in got],
            [(ns + ":orders.1", ns + ":orders.*", {"id": 1})],
        )

    @contract
    async def test_cancelled_subscription(self) -> None:
        """After C{cancel()} a subscriber receives nothing more."""
        r = await self.redis()
        channel = self.ns() + ":c"
        got: list = []
        sub = r.subscribe(channel, got.append)
        await self.wait(sub.when_active())
        sub.cancel()
        await self.sleep(0.1)
        self.assertEqual(await self.wait(r.publish(channel, "x")), 0)
        await self.sleep(0.1)
        self.assertEqual(got, [])

    @contract
    async def test_key_expiry_callback(self) -> None:
        """C{on_expired} calls back once a matching key's TTL runs out."""
        r = await self.redis()
        ns = self.ns()
        got: list = []
        r.on_expired(ns + ":order:*", lambda k: got.append(k.key))
        await self.eventually(lambda: r.expiry.notifications_enabled)
        await self.sleep(0.2)
        await self.wait(r.handler.set(ns + ":order:1", "unpaid", pexpire=300))
        await self.wait(r.handler.set(ns + ":other", "x", pexpire=300))
        await self.sleep(0.1)
        self.assertEqual(got, [])
        await self.sleep(0.3)
        # Redis notices an expired key when it is read or when its expiry
        # cycle samples it; with many keys that have long TTLs (a busy shared
        # server) sampling can take minutes, so read it, as a user would.
        await self.wait(r.handler.execute_command("EXISTS", ns + ":order:1"))
        await self.eventually(lambda: got == [ns + ":order:1"], timeout=5)

    @contract
    async def test_control_ping(self) -> None:
        """A control listener answers C{ping} with its name."""
        r = await self.redis()
        name = self.ns()
        listener = r.control_listener(name, {})
        await self.wait(listener.when_active())
        reply = await self.wait(
            send_control(r.connection, r.pubsub, name, "ping", timeout=5, clock=self.clock)
        )
        self.assertTrue(reply.get("ok"), reply)
        self.assertEqual(reply["result"]["name"], name)

    @contract
    async def test_cache_ttl(self) -> None:
        """A cached value is returned until its TTL, then gone."""
        r = await self.redis()
        cache = Cache(r, namespace=self.ns(), reactor=self.clock)
        await self.wait(cache.set("user:1", {"name": "Ada"}, ttl=0.5))
        self.assertEqual(await self.wait(cache.get("user:1")), {"name": "Ada"})
        await self.sleep(0.7)
        self.assertIsNone(await self.wait(cache.get("user:1")))

    @contract
    async def test_cache_get_or_compute(self) -> None:
        """C{get_or_compute} computes once and serves the cached value after."""
        r = await self.redis()
        cache = Cache(r, namespace=self.ns(), reactor=self.clock)
        calls: list = []

        def compute() -> int:
            calls.append(1)
            return 42

        self.assertEqual(await self.wait(cache.get_or_compute("k", compute, ttl=10)), 42)
        self.assertEqual(await self.wait(cache.get_or_compute("k", compute, ttl=10)), 42)
        self.assertEqual(len(calls), 1)

    @contract
    async def test_lock_exclusive_and_expiring(self) -> None:
        """
        A held lock cannot be taken by another holder until it is released
        or its TTL runs out.
        """
        r = await self.redis()
        ns = self.ns()
        a = Lock(r, "job", namespace=ns, ttl=0.5, reactor=self.clock)
        b = Lock(r, "job", namespace=ns, ttl=0.5, reactor=self.clock)
        self.assertTrue(await self.wait(a.try_acquire()))
        self.assertFalse(await self.wait(b.try_acquire()))
        await self.wait(a.release())
        self.assertTrue(await self.wait(b.try_acquire()))
        await self.sleep(0.7)
        self.assertFalse(await self.wait(b.owned()))
        self.assertTrue(await self.wait(a.try_acquire()))

    @contract
    async def test_delay_queue(self) -> None:
        """A scheduled item is handed to the poller once due, not before."""
        r = await self.redis()
        q = DelayQueue(r, "jobs", namespace=self.ns(), reactor=self.clock)
        got: list = []
        poller = q.poller(lambda item: got.append(item.payload), max_sleep=0.1)
        poller.startService()
        self.on_cleanup(poller.stopService)
        await self.wait(q.schedule({"n": 2}, delay=0.6))
        await self.wait(q.schedule({"n": 1}, delay=0.3))
        await self.sleep(0.1)
        self.assertEqual(got, [])
        await self.eventually(lambda: len(got) == 2, timeout=5)
        self.assertEqual(got, [{"n": 1}, {"n": 2}])
        await self.eventually(lambda: poller.handled == 2)
        counts = await self.wait(q.counts())
        self.assertEqual(counts, {"due": 0, "processing": 0, "dead": 0})

    @contract
    async def test_delay_queue_settle(self) -> None:
        """
        One settle call acks and retries several claimed items, and says
        which were still there.
        """
        r = await self.redis()
        q = DelayQueue(r, "jobs", namespace=self.ns(), reactor=self.clock)
        for name in ("a", "b", "c"):
            await self.wait(q.schedule(name, id=name))
        claim = await self.wait(q.claim(10, lease=30))
        self.assertEqual(sorted(item[0] for item in claim.items), ["a", "b", "c"])
        flags = await self.wait(q.settle([("a", None), ("b", 60.0), ("gone", None)]))
        self.assertEqual(flags, [True, True, False])
        counts = await self.wait(q.counts())
        self.assertEqual(counts, {"due": 1, "processing": 1, "dead": 0})
        self.assertEqual(await self.wait(q.settle([("c", None), ("a", 1.0)])), [True, False])
        counts = await self.wait(q.counts())
        self.assertEqual(counts, {"due": 1, "processing": 0, "dead": 0})

    @contract
    async def test_list_queue_fifo_and_dead_letters(self) -> None:
        """
        A list queue is consumed first in, first out; an item whose callback
        fails goes to the dead list.
        """
        r = await self.redis()
        q = ReliableQueue(r, "work", namespace=self.ns(), reactor=self.clock)
        await self.wait(q.push("a", "bad", "c"))
        self.assertEqual(await self.wait(q.length()), 3)
        got: list = []

        def handle(item: Any) -> None:
            got.append(item)
            if item == "bad":
                raise ValueError("bad item")

        consumer = q.consume(handle, mode="burst")
        self.assertEqual(await self.wait(consumer.done), 2)
        self.assertEqual(got, ["a", "bad", "c"])
        self.assertEqual(
            await self.wait(r.handler.execute_command("LRANGE", q.dead_key, 0, -1)), ['"bad"']
        )
        self.flush_errors(ValueError)

    @contract
    async def test_list_queue_blocking(self) -> None:
        """A blocking consumer gets an item pushed after it started waiting."""
        r = await self.redis()
        q = ReliableQueue(r, "work", namespace=self.ns(), reactor=self.clock)
        got: list = []
        consumer = q.consume(got.append, blocking_redis=self.make_connection(), block_timeout=0.2)
        self.on_cleanup(consumer.stopService)
        await self.sleep(0.3)
        await self.wait(q.push({"job": 1}))
        await self.eventually(lambda: got == [{"job": 1}], timeout=5)
