# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: the seed examples for the Redis primitives (S7, S8, S9,
S11) run as a user would run them.
"""

from __future__ import annotations

import uuid

from twisted.trial.unittest import TestCase

from tests._redis_support import SHARED_URL, redis_py, run_python, subprocess_env


class PrimitivesExamplesTests(TestCase):
    """
    examples/redis_cache.py, redis_lock.py, redis_delay_queue.py,
    redis_list_queue.py.
    """

    timeout = 90

    def setUp(self) -> None:
        self.peer = redis_py()
        self.ns = "txmsg-test-" + uuid.uuid4().hex[:12]
        self.addCleanup(self._cleanup)

    def _cleanup(self) -> None:
        keys = list(self.peer.scan_iter(match=self.ns + "*"))
        if keys:
            self.peer.delete(*keys)

    async def run_example(self, name: str, *args: str) -> str:
        out, err, code = await run_python(
            [f"examples/{name}.py", "--namespace", self.ns, *args],
            subprocess_env(TXMSG_REDIS_URL=SHARED_URL),
        )
        self.assertEqual(code, 0, err)
        return out.decode("utf-8")

    async def test_cache(self) -> None:
        """
        Ten concurrent get_user(1) calls make one database query; the next
        call is served from the cache.
        """
        out = await self.run_example("redis_cache", "--ttl", "5")
        self.assertIn("(1 database query)", out)
        self.assertIn("(cached; 1 query in total)", out)

    async def test_lock(self) -> None:
        """
        Exactly one of five buyers wins the flash sale.
        """
        out = await self.run_example("redis_lock")
        self.assertIn("winners: 1 of 5", out)
        self.assertEqual(out.count("抢购成功"), 1)

    async def test_delay_queue(self) -> None:
        """
        The seed's four delayed tasks are handled in due order, nothing left.
        """
        out = await self.run_example("redis_delay_queue", "--scale", "0.2")
        self.assertIn("order: 任务2延迟2, 任务3延迟3, 任务1延迟5, 任务4延迟10", out)
        self.assertIn("left: {'due': 0, 'processing': 0, 'dead': 0}", out)

    async def test_list_queue(self) -> None:
        """
        Burst mode drains three jobs; blocking mode handles two more while
        the command connection stays responsive.
        """
        out = await self.run_example("redis_list_queue")
        self.assertIn("burst worker done after 3 job(s)", out)
        self.assertIn("block: job-5", out)
        self.assertIn("waiting: 0", out)
