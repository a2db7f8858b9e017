# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis contract suite on L{txmsg.testing.MemoryRedis}; the same suite runs
against a real Redis in C{tests/test_contract_redis.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from txmsg.test._contract_base import MemoryRunner
from txmsg.test._contract_redis import RedisContract
from txmsg.test._contract_streams import StreamsContract
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis

# The contract tests that run txmsg's Lua scripts (MemoryRedis runs them in lupa):
# without the testing extra they are skipped before they start, since their
# background loops would log the failure as well.
_SCRIPTED = frozenset(
    {
        "test_cache_get_or_compute",
        "test_delay_queue",
        "test_delay_queue_settle",
        "test_list_queue_blocking",
        "test_list_queue_fifo_and_dead_letters",
        "test_lock_exclusive_and_expiring",
        "test_claim_counts_deliveries",
        "test_broker_settles",
        "test_priority_levels",
    }
)


class MemoryRedisContractTests(MemoryRunner, RedisContract, StreamsContract, SynchronousTestCase):
    """L{RedisContract} on the in-memory Redis."""

    def setUp(self) -> None:
        reason = missing("lupa", extra="testing")
        if reason is not None and self._testMethodName in _SCRIPTED:
            raise SkipTest(reason)
        MemoryRunner.setUp(self)
        self.memory = MemoryRedis(self.clock)

    def make_redis(self) -> Any:
        r = self.memory.service()
        r.startService()
        self.on_cleanup(r.stopService)
        return r

    def make_connection(self, start: bool = True) -> Any:
        c = self.memory.connection()
        if start:
            c.startService()
            self.on_cleanup(c.stopService)
        return c

    def forget_prefix(self, prefix: str) -> None:
        pass
