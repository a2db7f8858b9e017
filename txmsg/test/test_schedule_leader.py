# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.schedule.leader}: the lease, its fencing token, and fenced
writes, on the in-memory Redis (which runs the real Lua scripts).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.schedule.leader import LeaderLease, NotLeader, schedule_keys
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis


class LeaderLeaseTests(SynchronousTestCase):
    """
    One owner at a time; every takeover gets a larger token; a stale owner's
    writes are refused.
    """

    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = MemoryRedis(self.clock).service()
        self.redis.startService()

    def test_keys_share_a_hash_tag(self) -> None:
        keys = schedule_keys("nightly")
        self.assertEqual({k.split("}")[0] for k in keys}, {"txmsg:{schedule:nightly"})

    def test_one_owner_and_growing_tokens(self) -> None:
        a = LeaderLease(self.redis, "s", "a", ttl=5)
        b = LeaderLease(self.redis, "s", "b", ttl=5)
        self.assertEqual(self.successResultOf(a.acquire()), 1)
        self.assertEqual(self.successResultOf(b.acquire()), 0)
        self.assertEqual(self.successResultOf(a.acquire()), 1)  # renewal keeps the token
        self.clock.advance(6)
        self.assertEqual(self.successResultOf(b.acquire()), 2)
        self.assertEqual(self.successResultOf(a.acquire()), 0)

    def test_stale_owner_cannot_record(self) -> None:
        a = LeaderLease(self.redis, "s", "a", ttl=5)
        b = LeaderLease(self.redis, "s", "b", ttl=5)
        self.successResultOf(a.acquire())
        self.successResultOf(a.cover("e", 100.0))
        self.clock.advance(6)
        self.successResultOf(b.acquire())
        self.failureResultOf(a.cover("e", 101.0), NotLeader)
        self.successResultOf(b.cover("e", 102.0))
        self.successResultOf(b.cover("e", 101.5))  # never goes back
        self.assertEqual(self.successResultOf(a.read_covered()), {"e": 102.0})

    def test_release_hands_over(self) -> None:
        a = LeaderLease(self.redis, "s", "a", ttl=60)
        b = LeaderLease(self.redis, "s", "b", ttl=60)
        self.successResultOf(a.acquire())
        self.successResultOf(a.release())
        self.assertEqual(self.successResultOf(b.acquire()), 2)
        self.successResultOf(a.release())  # not the owner: nothing happens
        self.assertEqual(self.successResultOf(b.acquire()), 2)

    def test_owner_name(self) -> None:
        self.assertRaises(ValueError, LeaderLease, self.redis, "s", "a|b")
