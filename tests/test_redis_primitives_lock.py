# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: L{txmsg.redis.Lock} against the real Redis.
"""

from __future__ import annotations

import time

from twisted.internet import reactor, task

from tests._primitives_support import PrimitivesTestCase
from txmsg.redis import Lock, LockNotAcquired, LockNotOwned


class LockIntegrationTests(PrimitivesTestCase):
    """
    The lock's Lua scripts and expiry on a real server.
    """

    async def test_killed_holder_does_not_block_past_ttl(self) -> None:
        """
        A holder (with auto-extension) killed with SIGKILL mid-hold blocks a
        waiter only until its TTL runs out after the kill.
        """
        child = self.spawn("lock-hold", self.ns, "2")
        await child.wait_output("acquired")
        waiter = Lock(self.conn, "victim", namespace=self.ns, ttl=5)
        await task.deferLater(reactor, 2.5, lambda: None)  # outlives one TTL: extended
        self.assertFalse(await waiter.try_acquire())
        child.sigkill()
        killed = time.monotonic()
        await waiter.acquire(timeout=10, retry_interval=0.05)
        waited = time.monotonic() - killed
        self.assertLess(waited, 2.0 + 0.5)
        await waiter.release()

    async def test_slow_holder_cannot_release_others_lock(self) -> None:
        """
        A holder whose lock expired gets L{LockNotOwned} on release and the
        new owner's key stays.
        """
        slow = Lock(self.conn, "r", namespace=self.ns, ttl=0.2)
        fast = Lock(self.conn, "r", namespace=self.ns, ttl=5)
        await slow.acquire()
        with self.assertRaises(LockNotAcquired):
            await fast.acquire(timeout=0.05, retry_interval=0.01)
        await fast.acquire(timeout=2, retry_interval=0.02)
        with self.assertRaises(LockNotOwned):
            await slow.release()
        with self.assertRaises(LockNotOwned):
            await slow.extend()
        self.assertEqual(self.peer.get(fast.key).decode(), fast.token)
        self.assertGreater(self.peer.pttl(fast.key), 4000)
        await fast.release()
        self.assertIsNone(self.peer.get(fast.key))

    async def test_seed_setnx_expire_immortal(self) -> None:
        """
        For contrast, the seed's SETNX+EXPIRE with a crash in between leaves a
        key without TTL; L{Lock}'s key always has one.
        """
        key = self.ns + ":seed"
        self.assertTrue(self.peer.setnx(key, "ok"))  # ...crash before expire
        self.assertEqual(self.peer.ttl(key), -1)
        lock = Lock(self.conn, "mine", namespace=self.ns, ttl=3)
        await lock.acquire()
        self.assertGreater(self.peer.pttl(lock.key), 0)
        await lock.release()

    async def test_extend_and_async_with(self) -> None:
        """
        C{extend} resets the TTL on the server; C{async with} releases.
        """
        lock = Lock(self.conn, "x", namespace=self.ns, ttl=1)
        async with lock:
            await lock.extend(10)
            self.assertGreater(self.peer.pttl(lock.key), 5000)
        self.assertIsNone(self.peer.get(lock.key))
