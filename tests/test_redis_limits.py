# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The shared limits (L{txmsg.redis.limits}) on the real Redis: the same
answers as on the in-memory one, with the server's clock.
"""

from __future__ import annotations

import uuid

from tests._primitives_support import PrimitivesTestCase
from txmsg.redis.limits import ConcurrencyLimit, RateLimit, parse_rate


class LimitsOnRedisTests(PrimitivesTestCase):
    """
    Rate reservations and the leased semaphore against a real server.
    """

    async def test_rate_slots(self) -> None:
        limit = RateLimit(self.conn, "test-" + uuid.uuid4().hex, parse_rate("2/s"))
        self.addCleanup(self.peer.delete, *limit.keys)
        waits = [await limit.reserve(str(i)) for i in range(4)]
        self.assertEqual(waits[0], 0.0)
        for earlier, later in zip(waits, waits[1:], strict=False):
            self.assertLess(abs(later - earlier - 0.5), 0.05, waits)
        again = await limit.reserve("3")  # the reservation is kept
        self.assertLess(abs(again - waits[3]), 0.1, (again, waits))

    async def test_semaphore(self) -> None:
        limit = ConcurrencyLimit(self.conn, "test-" + uuid.uuid4().hex, 2, lease=5)
        self.addCleanup(self.peer.delete, limit.key)
        self.assertEqual([await limit.acquire(h) for h in "abc"], [True, True, False])
        self.assertTrue(await limit.renew("a"))
        await limit.release("a")
        self.assertFalse(await limit.renew("a"))
        self.assertTrue(await limit.acquire("c"))
