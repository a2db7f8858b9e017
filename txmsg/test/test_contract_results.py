# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result store's contract on L{txmsg.testing.MemoryRedis}; the same suite
runs against a real Redis in C{tests/test_contract_results.py}.
"""

from __future__ import annotations

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import txmsg.test.test_contract_redis as redis_contract
from txmsg.test._contract_base import MemoryRunner
from txmsg.test._contract_results import ResultStoreContract
from txmsg.test._optional import missing


class MemoryResultStoreContractTests(MemoryRunner, ResultStoreContract, SynchronousTestCase):
    """L{ResultStoreContract} on the in-memory Redis (its scripts run in lupa)."""

    def setUp(self) -> None:
        reason = missing("lupa", extra="testing")
        if reason is not None:
            raise SkipTest(reason)
        redis_contract.MemoryRedisContractTests.setUp(self)  # type: ignore[arg-type]
        self.clock.advance(1000)

    make_redis = redis_contract.MemoryRedisContractTests.make_redis
    forget_prefix = redis_contract.MemoryRedisContractTests.forget_prefix
