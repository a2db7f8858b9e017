# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result store's contract on L{txmsg.testing.MemoryRedis}; the same suite
runs against a real Redis in C{tests/test_contract_results.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from txmsg.test._contract_base import MemoryRunner
from txmsg.test._contract_results import ResultStoreContract
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis


class MemoryResultStoreContractTests(MemoryRunner, ResultStoreContract, SynchronousTestCase):
    """L{ResultStoreContract} on the in-memory Redis (its scripts run in lupa)."""

    def setUp(self) -> None:
        reason = missing("lupa", extra="testing")
        if reason is not None:
            raise SkipTest(reason)
        MemoryRunner.setUp(self)
        self.clock.advance(1000)
        self.memory = MemoryRedis(self.clock)

    def make_redis(self) -> Any:
        r = self.memory.service()
        r.startService()
        self.on_cleanup(r.stopService)
        return r

    def forget_prefix(self, prefix: str) -> None:
        pass
