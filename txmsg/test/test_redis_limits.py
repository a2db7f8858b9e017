# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.limits} on a fake clock with the in-memory Redis
(which runs the real Lua scripts and answers C{TIME} from the clock).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.limits import ConcurrencyLimit, Rate, RateLimit, parse_rate
from txmsg.test._optional import fuzz, missing
from txmsg.testing import MemoryRedis


class ParseRateTests(SynchronousTestCase):
    """
    Rates are written C{N/s}, C{N/m} or C{N/h}.
    """

    def test_forms(self) -> None:
        self.assertEqual(parse_rate("100/s"), Rate(100, 1))
        self.assertEqual(parse_rate(" 30 / m "), Rate(30, 60))
        self.assertEqual(parse_rate("0.5/h").interval, 7200)
        self.assertEqual(str(parse_rate("50/s")), "50/s")

    def test_refused(self) -> None:
        for text in ["", "100", "100/d", "0/s", "-1/s", "x/s", "1/s/s"]:
            with self.assertRaises(ValueError) as e:
                parse_rate(text)
            self.assertIn("100/s, 30/m or 1000/h", str(e.exception))

    @fuzz(lambda st: st.text(max_size=20))
    def test_fuzz(self, text: str) -> None:
        try:
            rate = parse_rate(text)
        except ValueError:
            return
        self.assertGreater(rate.interval, 0)


class RateLimitTests(SynchronousTestCase):
    """
    Over the limit, each task gets the next free slot, once.
    """

    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.redis = MemoryRedis(self.clock).service()
        self.redis.startService()

    def test_slots_back_to_back(self) -> None:
        limit = RateLimit(self.redis, "t", parse_rate("10/s"))
        waits = [self.successResultOf(limit.reserve("id{}".format(i))) for i in range(5)]
        self.assertEqual(waits, [0.0, 0.1, 0.2, 0.3, 0.4])

    def test_reservation_is_kept_for_the_task(self) -> None:
        """A task that waited runs when it comes back, without a new slot."""
        limit = RateLimit(self.redis, "t", parse_rate("10/s"))
        self.assertEqual(self.successResultOf(limit.reserve("a")), 0.0)
        self.assertEqual(self.successResultOf(limit.reserve("b")), 0.1)
        self.clock.advance(0.05)
        # Back too early: wait the rest.
        self.assertAlmostEqual(self.successResultOf(limit.reserve("b")), 0.05)
        self.clock.advance(0.05)
        self.assertEqual(self.successResultOf(limit.reserve("b")), 0.0)
        # Its slot was used: the next task gets the one after.
        self.assertEqual(self.successResultOf(limit.reserve("c")), 0.1)

    def test_achieved_rate(self) -> None:
        """
        250 tasks arriving at once start at exactly the limit: every
        one-second window holds 50 starts (the slots are used back to back).
        """
        limit = RateLimit(self.redis, "t", parse_rate("50/s"))
        start = self.clock.seconds()
        starts = [start + self.successResultOf(limit.reserve(str(i))) for i in range(250)]
        self.assertEqual(starts, sorted(starts))
        for second in range(5):
            window = [s for s in starts if start + second <= s < start + second + 1]
            self.assertEqual(len(window), 50)

    def test_idle_limit_runs_at_once(self) -> None:
        limit = RateLimit(self.redis, "t", parse_rate("1/s"))
        self.assertEqual(self.successResultOf(limit.reserve("a")), 0.0)
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(limit.reserve("b")), 0.0)
        self.assertEqual(self.successResultOf(limit.reserve("c")), 1.0)

    def test_limits_are_per_name(self) -> None:
        one = RateLimit(self.redis, "one", parse_rate("1/s"))
        two = RateLimit(self.redis, "two", parse_rate("1/s"))
        self.assertEqual(self.successResultOf(one.reserve("a")), 0.0)
        self.assertEqual(self.successResultOf(two.reserve("a")), 0.0)
        self.assertEqual({k.split("}")[0] for k in one.keys}, {"txmsg:{rate:one"})


class ConcurrencyLimitTests(SynchronousTestCase):
    """
    At most N holders; a dead holder's slot comes back after its lease.
    """

    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.redis = MemoryRedis(self.clock).service()
        self.redis.startService()
        self.limit = ConcurrencyLimit(self.redis, "t", 2, lease=30)

    def acquire(self, holder: str) -> bool:
        return self.successResultOf(self.limit.acquire(holder))

    def test_at_most_n(self) -> None:
        self.assertEqual([self.acquire(h) for h in "abc"], [True, True, False])
        self.assertTrue(self.acquire("a"))  # a holder asking again keeps its slot
        self.successResultOf(self.limit.release("a"))
        self.assertTrue(self.acquire("c"))
        self.assertFalse(self.acquire("d"))

    def test_dead_holder_slot_returns_after_lease(self) -> None:
        self.assertTrue(self.acquire("a"))
        self.assertTrue(self.acquire("b"))
        for _ in range(4):
            self.clock.advance(10)
            self.assertTrue(self.successResultOf(self.limit.renew("a")))
        # b never renewed (its worker was SIGKILLed): its slot is free again.
        self.assertTrue(self.acquire("c"))
        self.assertFalse(self.successResultOf(self.limit.renew("b")))
        self.assertFalse(self.acquire("d"))

    def test_bad_limit(self) -> None:
        self.assertRaises(ValueError, ConcurrencyLimit, self.redis, "t", 0)
