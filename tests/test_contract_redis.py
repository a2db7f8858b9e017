# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis contract suite against the real Redis at 127.0.0.1:6379; the same
suite runs on L{txmsg.testing.MemoryRedis} in C{trial txmsg}
(C{txmsg/test/test_contract_redis.py}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests._redis_support import SHARED_URL, redis_py
from txmsg.redis import RedisConnection, RedisService
from txmsg.test._contract_base import RealRunner
from txmsg.test._contract_redis import RedisContract
from txmsg.test._contract_streams import StreamsContract


class RealRedisContractTests(RealRunner, RedisContract, StreamsContract, TestCase):
    """L{RedisContract} on Redis."""

    def setUp(self) -> None:
        RealRunner.setUp(self)
        try:
            self.peer = redis_py()
            self.peer.ping()
        except Exception as e:
            raise AssertionError(
                f"Redis is not reachable at {SHARED_URL} ({e}); start it before the "
                "integration tests"
            ) from None
        self._prefixes: list = []
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

    def make_connection(self, start: bool = True) -> Any:
        c = RedisConnection(SHARED_URL, poolsize=1)
        if start:
            c.startService()
            self.on_cleanup(c.stopService)
        return c

    def forget_prefix(self, prefix: str) -> None:
        self._prefixes.append(prefix)
