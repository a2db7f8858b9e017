# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: txmsg's Redis connection and pub/sub against real Redis,
with redis-py as the independent peer.  They fail (never skip) without Redis.
"""

from __future__ import annotations

import time
import uuid

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._redis_support import SHARED_URL, RedisServer, redis_py, wait_for
from txmsg.redis import RedisCommandTimeout, RedisConnection, RedisService
from txmsg.testing import RecordingEvents


class PubSubRoundTripTests(TestCase):
    """
    Publish/subscribe between txmsg and redis-py on the shared Redis.
    """

    timeout = 60

    def setUp(self) -> None:
        self.peer = redis_py()
        self.events = RecordingEvents()
        self.redis = RedisService(SHARED_URL, events=self.events)
        self.redis.startService()
        self.addCleanup(self.redis.stopService)
        self.prefix = "txmsg-test-" + uuid.uuid4().hex

    async def test_redis_py_publishes_txmsg_receives(self) -> None:
        """
        Messages published by redis-py reach a txmsg channel subscription
        and a pattern subscription, decoded as asked.
        """
        got, pgot = [], []
        sub = self.redis.subscribe(self.prefix + ":chan", got.append, decode="json")
        psub = self.redis.psubscribe(self.prefix + ":p.*", pgot.append, decode="text")
        await sub.when_active()
        await psub.when_active()
        self.assertEqual(self.peer.publish(self.prefix + ":chan", b'{"n": 1}'), 1)
        self.assertEqual(self.peer.publish(self.prefix + ":p.x", "00123"), 1)
        await wait_for(lambda: got and pgot)
        self.assertEqual(got[0].data, {"n": 1})
        self.assertEqual((pgot[0].channel, pgot[0].data), (self.prefix + ":p.x", "00123"))
        self.assertIn("redis.connected", self.events.names())

    async def test_txmsg_publishes_redis_py_receives(self) -> None:
        """
        txmsg's publish() encodes bytes, text and JSON, and a redis-py
        subscriber receives them.
        """
        channel = self.prefix + ":out"
        ps = self.peer.pubsub()
        ps.subscribe(channel)
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        await self.redis.when_connected(10)
        for message in (b"\x00raw", "text", {"a": [1]}):
            self.assertEqual(await self.redis.publish(channel, message), 1)

        def read():
            out = []
            while len(out) < 3:
                m = ps.get_message(timeout=5)
                if m is None:
                    break
                out.append(m["data"])
            ps.close()
            return out

        self.assertEqual(await deferToThread(read), [b"\x00raw", b"text", b'{"a":[1]}'])

    async def test_types_explicit(self) -> None:
        """
        Values come back as stored: no number conversion; with
        decode_responses=False everything is bytes.
        """
        await self.redis.when_connected(10)
        key = self.prefix + ":k"
        self.addCleanup(self.peer.delete, key, key + "b")
        await self.redis.handler.set(key, "00123")
        self.assertEqual(await self.redis.handler.get(key), "00123")
        raw = RedisConnection(SHARED_URL, decode_responses=False)
        raw.startService()
        self.addCleanup(raw.stopService)
        await raw.when_connected(10)
        await raw.handler.set(key + "b", b"\xff\x00")
        self.assertEqual(await raw.handler.get(key + "b"), b"\xff\x00")
        self.assertEqual(await raw.handler.get(key), b"00123")
        tx = await raw.handler.multi()
        await tx.set(key, "1")
        self.assertEqual(await tx.commit(), [b"OK"])

    async def test_slow_callback_does_not_block_other_channel(self) -> None:
        """
        A callback that has not finished (its Deferred pending) holds up its
        own channel only.
        """
        gate: Deferred[None] = Deferred()
        slow_seen, fast_seen = [], []
        slow = self.redis.subscribe(self.prefix + ":slow", lambda m: slow_seen.append(m) or gate)
        fast = self.redis.subscribe(self.prefix + ":fast", fast_seen.append)
        await slow.when_active()
        await fast.when_active()
        self.peer.publish(self.prefix + ":slow", "1")
        self.peer.publish(self.prefix + ":slow", "2")
        self.peer.publish(self.prefix + ":fast", "3")
        await wait_for(lambda: fast_seen)
        self.assertEqual(len(slow_seen), 1)
        gate.callback(None)
        await wait_for(lambda: len(slow_seen) == 2)


class RestartTests(TestCase):
    """
    Subscriptions survive a restart of a Redis server the test owns.
    """

    timeout = 90

    def setUp(self) -> None:
        self.server = RedisServer().start()
        self.addCleanup(self.server.cleanup)

    async def test_restart_while_subscribed(self) -> None:
        """
        After the server restarts, channel and pattern subscriptions come
        back by themselves and messages published after the restart are
        received; redis.lost and redis.connected are reported.
        """
        events = RecordingEvents()
        redis = RedisService(self.server.url, events=events, command_timeout=2)
        redis.startService()
        self.addCleanup(redis.stopService)
        got, pgot = [], []
        sub = redis.subscribe("news", got.append, decode="text")
        psub = redis.psubscribe("news.*", pgot.append, decode="text")
        await sub.when_active()
        await psub.when_active()
        peer = redis_py(self.server.url)
        peer.publish("news", "before")
        await wait_for(lambda: got)

        self.server.stop()
        await wait_for(lambda: not sub.active and not redis.pubsub.state.is_connected)
        # a command while Redis is down fails after its deadline
        started = time.monotonic()
        with self.assertRaises(RedisCommandTimeout):
            await redis.handler.get("x")
        self.assertLess(time.monotonic() - started, 10)

        self.server.start()
        peer = redis_py(self.server.url)
        await wait_for(lambda: sub.active and psub.active, timeout=30)
        self.assertEqual(peer.publish("news", "after"), 1)
        self.assertEqual(peer.publish("news.sport", "after-p"), 1)
        await wait_for(lambda: len(got) == 2 and len(pgot) == 1)
        self.assertEqual([m.data for m in got], ["before", "after"])
        self.assertEqual(pgot[0].data, "after-p")
        names = events.names()
        self.assertIn("redis.lost", names)
        self.assertGreaterEqual(names.count("redis.connected"), 3)
        self.assertEqual(await redis.handler.set("x", "1"), "OK")
