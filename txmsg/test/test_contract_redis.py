# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis contract suite on L{txmsg.testing.MemoryRedis}; the same suite runs
against a real Redis in C{tests/test_contract_redis.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._contract_base import MemoryRunner
from txmsg.test._contract_redis import RedisContract
from txmsg.testing import MemoryRedis


class MemoryRedisContractTests(MemoryRunner, RedisContract, SynchronousTestCase):
    """L{RedisContract} on the in-memory Redis."""

    def setUp(self) -> None:
        MemoryRunner.setUp(self)
        self.memory = MemoryRedis(self.clock)

    def make_redis(self) -> Any:
        r = self.memory.service()
        r.startService()
        self.on_cleanup(r.stopService)
        return r

    def make_connection(self) -> Any:
        c = self.memory.connection()
        c.startService()
        self.on_cleanup(c.stopService)
        return c

    def forget_prefix(self, prefix: str) -> None:
        pass
