# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result store's contract against the real Redis at 127.0.0.1:6379; the
same suite runs on L{txmsg.testing.MemoryRedis} in C{trial txmsg}
(C{txmsg/test/test_contract_results.py}).
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

import tests.test_contract_redis as redis_contract
from txmsg.test._contract_base import RealRunner
from txmsg.test._contract_results import ResultStoreContract


class RealResultStoreContractTests(RealRunner, ResultStoreContract, TestCase):
    """L{ResultStoreContract} on Redis (set up as the Redis contract is)."""

    setUp = redis_contract.RealRedisContractTests.setUp
    _delete_keys = redis_contract.RealRedisContractTests._delete_keys
    make_redis = redis_contract.RealRedisContractTests.make_redis
    forget_prefix = redis_contract.RealRedisContractTests.forget_prefix
