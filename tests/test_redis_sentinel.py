# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis with Sentinel, for real: scripts/redis-sentinel.sh starts a private
master, replica and three Sentinels on loopback; the master is killed while
a subscriber and a list-queue consumer run through one
C{redis+sentinel://} URL.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from tests._local_cluster import LocalCluster
from tests._redis_support import wait_for
from txmsg.redis.list_queue import ReliableQueue
from txmsg.redis.service import RedisService


class SentinelSet(LocalCluster):
    """scripts/redis-sentinel.sh's master, replica and Sentinels."""

    def __init__(self, **passwords: str) -> None:
        super().__init__("redis-sentinel.sh")
        self.passwords = passwords

    def run(self, *args: str, timeout: float = 300) -> str:
        """The script, with the passwords in its environment."""
        saved = {k: os.environ.get(k) for k in self.passwords}
        os.environ.update(self.passwords)
        try:
            return super().run(*args, timeout=timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def url(self) -> str:
        """The C{redis+sentinel://} URL."""
        return self.env["TXMSG_REDIS_URL"]


def sentinel_with_passwords(case: Any) -> SentinelSet:
    """
    A started set whose master and replica require one password and whose
    Sentinels require their own (both in the URL); stopped in C{case}'s
    cleanup.
    """
    sentinel = SentinelSet(
        TXMSG_REDIS_PASSWORD="m-" + uuid.uuid4().hex[:8],
        TXMSG_SENTINEL_PASSWORD="s-" + uuid.uuid4().hex[:8],
    )
    case.addCleanup(sentinel.down)
    sentinel.up()
    return sentinel


class SentinelFailoverTests(TestCase):
    """Every Redis use through one Sentinel URL survives a killed master."""

    timeout = 120

    def setUp(self) -> None:
        self.sentinel = sentinel_with_passwords(self)
        self.assertIn("sentinel_password=", self.sentinel.url)

    async def test_pubsub_and_queue_across_failover(self) -> None:
        """
        After the master is killed: the subscriber gets every message
        published once the failover is over, and every item pushed and
        acknowledged by a replica (WAIT 1) before it is handled exactly
        once or more (duplicates counted).
        """
        svc = RedisService(self.sentinel.url, command_timeout=2.0)
        svc.startService()
        self.addCleanup(svc.stopService)
        await svc.when_connected(10)
        channel = "txmsg-test-" + uuid.uuid4().hex[:8]
        got: list[bytes] = []
        svc.subscribe(channel, lambda m: got.append(m.data))
        await wait_for(lambda: svc.pubsub.state.is_connected, 10)

        handled: list[str] = []

        def handle(item: Any) -> Any:
            handled.append(item)
            return task.deferLater(reactor, 0.01, lambda: None)

        queue = ReliableQueue(svc.connection, "q-" + uuid.uuid4().hex[:8])
        items = [f"item-{i}" for i in range(300)]
        await queue.push(*items)
        replicas = await svc.handler.execute_command("WAIT", 1, 2000)
        self.assertEqual(int(replicas), 1)
        consumer = queue.consume(handle, block_timeout=1.0)
        self.addCleanup(consumer.stopService)
        await wait_for(lambda: len(handled) >= 30, 20)

        killed = self.sentinel.run("kill-master").strip().splitlines()[-1]
        started = time.monotonic()

        async def publish_probe() -> bool:
            try:
                return bool(int(await svc.publish(channel, b"probe")))
            except Exception:
                return False

        while not await publish_probe():
            self.assertLess(time.monotonic() - started, 60, "no failover within 60 s")
            await task.deferLater(reactor, 0.2, lambda: None)
        failover = time.monotonic() - started
        after = [f"after-{i}".encode() for i in range(200)]
        for message in after:
            await svc.publish(channel, message)
        await wait_for(lambda: [m for m in got if m.startswith(b"after-")] == after, 20)
        await wait_for(lambda: set(handled) >= set(items), 60)
        duplicates = len(handled) - len(set(handled))
        self.assertEqual(set(handled), set(items))
        self.assertLessEqual(duplicates, 10)  # at most what was in flight
        self.assertNotEqual(svc.connection.url.sentinels, ())
        print(
            f"\nSentinel failover (master :{killed} killed): commands and pub/sub back "
            f"after {failover:.1f} s; {len(items)} queued items handled, "
            f"{duplicates} duplicate(s)"
        )


class SentinelPlainTests(TestCase):
    """Without passwords."""

    timeout = 120

    async def test_plain_url(self) -> None:
        """A Sentinel URL without passwords finds the master."""
        sentinel = SentinelSet()
        self.addCleanup(sentinel.down)
        sentinel.up()
        svc = RedisService(sentinel.url)
        svc.startService()
        self.addCleanup(svc.stopService)
        await svc.when_connected(10)
        key = "txmsg-test-" + uuid.uuid4().hex[:8]
        await svc.handler.set(key, "v", expire=30)
        self.assertEqual(await svc.handler.get(key), "v")
        self.assertEqual(svc.connection.url.sentinels[0][1], int(sentinel.env["SENTINEL1"]))
