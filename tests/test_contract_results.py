# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result store's contract against the real Redis at 127.0.0.1:6379; the
same suite runs on L{txmsg.testing.MemoryRedis} in C{trial txmsg}
(C{txmsg/test/test_contract_results.py}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests._redis_support import SHARED_URL, redis_py
from txmsg.redis import RedisService
from txmsg.test._contract_base import RealRunner
from txmsg.test._contract_results import ResultStoreContract


class RealResultStoreContractTests(RealRunner, ResultStoreContract, TestCase):
    """L{ResultStoreContract} on Redis."""

    def setUp(self) -> None:
        RealRunner.setUp(self)
        self.peer = redis_py()
        self._prefixes: list[str] = []
        self.addCleanup(self._delete_keys)

    def _delete_keys(self) -> None:
        for prefix in self._prefixes:
            keys = list(self.peer.scan_iter(match=prefix + "*", count=1000))
            if keys:
                self.peer.delete(*keys)

    def make_redis(self) -> Any:
        r = RedisService(SHARED_URL)
        r.startService()
        self.on_cleanup(r.stopService)
        return r

    def forget_prefix(self, prefix: str) -> None:
        self._prefixes.append(prefix)
