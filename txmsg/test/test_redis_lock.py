# -*- test-case-name: txmsg.test.test_redis_lock -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.lock}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.lock import Lock, LockError, LockNotAcquired, LockNotOwned
from txmsg.test._optional import skip_unless_importable
from txmsg.testing._redis_store import FakeRedis


class LockTests(SynchronousTestCase):
    """
    Tests for L{Lock} on an in-memory Redis and a Clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)

    def lock(self, **kw: object) -> Lock:
        kw.setdefault("ttl", 10.0)
        return Lock(self.redis, "res", reactor=self.clock, **kw)  # type: ignore[arg-type]

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_acquire_is_one_atomic_set(self) -> None:
        """
        Acquiring sends a single C{SET key token NX PX ttl} (no separate
        EXPIRE that a crash could skip) and stores a random token.
        """
        lock = self.lock()
        self.assertIs(self.successResultOf(lock.acquire()), lock)
        self.assertEqual(len(self.redis.calls), 1)
        cmd = self.redis.calls[0]
        self.assertEqual(cmd[:2], ("SET", "lock:res"))
        self.assertEqual(cmd[3:], ("NX", "PX", 10000))
        self.assertEqual(self.redis.raw("lock:res"), lock.token.encode())
        self.assertEqual(len(lock.token or ""), 32)
        self.assertNotEqual(lock.token, self.lock().token or "")

    @skip_unless_importable("lupa", extra="testing")
    def test_tokens_differ(self) -> None:
        """
        Each acquisition gets a new random token.
        """
        lock = self.lock()
        self.successResultOf(lock.acquire())
        first = lock.token
        self.successResultOf(lock.release())
        self.successResultOf(lock.acquire())
        self.assertNotEqual(first, lock.token)
        self.successResultOf(lock.release())

    def test_second_holder_refused(self) -> None:
        """
        While one owner holds the lock, C{try_acquire} of another is C{False}.
        """
        self.successResultOf(self.lock().acquire())
        self.assertFalse(self.successResultOf(self.lock().try_acquire()))

    def test_crashed_holder_expires(self) -> None:
        """
        A holder that never releases (crashed) blocks others only until its
        TTL: a waiter retrying every 0.5 s gets the lock right after 10 s.
        """
        self.successResultOf(self.lock().acquire())
        waiter = self.lock()
        d = waiter.acquire(timeout=30, retry_interval=0.5)
        self.clock.advance(9.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.assertIs(self.successResultOf(d), waiter)

    def test_acquire_timeout(self) -> None:
        """
        When the lock stays held, acquire fails with L{LockNotAcquired} at
        its timeout, not later, and leaves no timer behind.
        """
        self.successResultOf(self.lock(ttl=100).acquire())
        d = self.lock().acquire(timeout=1.0, retry_interval=0.25)
        self.clock.pump([0.25, 0.25, 0.25])
        self.assertNoResult(d)
        self.clock.advance(0.25)
        self.failureResultOf(d, LockNotAcquired)

    def test_timeout_zero_tries_once(self) -> None:
        """
        C{timeout=0} makes one attempt.
        """
        self.successResultOf(self.lock().acquire())
        self.failureResultOf(self.lock().acquire(timeout=0), LockNotAcquired)
        self.assertEqual(self.redis.names(), ["SET", "SET"])

    @skip_unless_importable("lupa", extra="testing")
    def test_release(self) -> None:
        """
        The owner's release deletes the key.
        """
        lock = self.lock()
        self.successResultOf(lock.acquire())
        self.successResultOf(lock.release())
        self.assertIsNone(self.redis.raw("lock:res"))
        self.assertFalse(lock.held)

    @skip_unless_importable("lupa", extra="testing")
    def test_slow_holder_cannot_delete_new_owners_lock(self) -> None:
        """
        A holder whose lock expired and was taken by another cannot delete
        the new owner's lock: release fails with L{LockNotOwned} and the new
        owner keeps it (the seed's GETSET/DEL failure mode).
        """
        slow, fast = self.lock(), self.lock()
        self.successResultOf(slow.acquire())
        self.clock.advance(11)
        self.successResultOf(fast.acquire(timeout=0))
        self.failureResultOf(slow.release(), LockNotOwned)
        self.assertEqual(self.redis.raw("lock:res"), fast.token.encode())
        self.successResultOf(fast.release())

    def test_release_not_held(self) -> None:
        """
        Releasing a lock this object does not hold fails with L{LockNotOwned}.
        """
        self.failureResultOf(self.lock().release(), LockNotOwned)

    @skip_unless_importable("lupa", extra="testing")
    def test_extend_by_owner(self) -> None:
        """
        C{extend} by the owner pushes the expiry out.
        """
        lock = self.lock()
        self.successResultOf(lock.acquire())
        self.clock.advance(8)
        self.successResultOf(lock.extend(10))
        self.clock.advance(8)
        self.assertEqual(self.redis.raw("lock:res"), lock.token.encode())
        self.assertEqual(lock.valid_until, 18.0)
        self.successResultOf(lock.release())

    @skip_unless_importable("lupa", extra="testing")
    def test_extend_after_expiry_refused(self) -> None:
        """
        Extending an expired lock (now somebody else's) fails with
        L{LockNotOwned} and does not touch the other owner's TTL.
        """
        slow, other = self.lock(), self.lock(ttl=5)
        self.successResultOf(slow.acquire())
        self.clock.advance(10)
        self.successResultOf(other.acquire(timeout=0))
        self.failureResultOf(slow.extend(), LockNotOwned)
        self.assertTrue(slow.lost)
        self.clock.advance(5)
        self.assertIsNone(self.redis.raw("lock:res"))

    @skip_unless_importable("lupa", extra="testing")
    def test_auto_extend_while_held(self) -> None:
        """
        With C{auto_extend}, the lock outlives its TTL while held, renewed
        every ttl/3 on the clock; release stops the renewals.
        """
        lock = self.lock(ttl=3, auto_extend=True)
        self.successResultOf(lock.acquire())
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.redis.raw("lock:res"), lock.token.encode())
        self.successResultOf(lock.release())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @skip_unless_importable("lupa", extra="testing")
    def test_auto_extend_detects_loss(self) -> None:
        """
        When a renewal finds the lock gone, renewals stop, C{lost} is set and
        C{on_lost} is called with the lock.
        """
        seen = []
        lock = self.lock(ttl=3, auto_extend=True, on_lost=seen.append)
        self.successResultOf(lock.acquire())
        self.redis.data.clear()  # e.g. deleted by an operator
        self.clock.advance(1.0)
        self.assertEqual(seen, [lock])
        self.assertTrue(lock.lost)
        self.assertFalse(lock.held)

    @skip_unless_importable("lupa", extra="testing")
    def test_auto_extend_survives_errors(self) -> None:
        """
        A renewal that fails with a Redis error is retried at the next
        interval instead of stopping the renewals.
        """
        lock = self.lock(ttl=3, auto_extend=True)
        self.successResultOf(lock.acquire())
        self.redis.error = ConnectionError("down")
        self.clock.advance(1.0)
        self.redis.error = None
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.assertEqual(self.redis.raw("lock:res"), lock.token.encode())
        self.successResultOf(lock.release())

    @skip_unless_importable("lupa", extra="testing")
    def test_evalsha_then_eval_fallback(self) -> None:
        """
        Scripts run with EVALSHA; on NOSCRIPT they are sent with EVAL once,
        after which EVALSHA works.
        """
        lock = self.lock()
        self.successResultOf(lock.acquire())
        self.successResultOf(lock.release())
        self.assertEqual(self.redis.names(), ["SET", "EVALSHA", "EVAL"])
        self.successResultOf(lock.acquire())
        self.successResultOf(lock.release())
        self.assertEqual(self.redis.names()[3:], ["SET", "EVALSHA"])

    def test_not_reentrant(self) -> None:
        """
        Acquiring a lock this object already holds is an error, not a
        deadlock.
        """
        lock = self.lock()
        self.successResultOf(lock.acquire())
        self.assertRaises(LockError, lock.try_acquire)

    @skip_unless_importable("lupa", extra="testing")
    def test_async_with(self) -> None:
        """
        C{async with lock:} holds the lock in the block and releases after.
        """
        lock = self.lock()
        inside = []

        async def go() -> None:
            async with lock:
                inside.append(self.redis.raw("lock:res"))

        self.successResultOf(Deferred.fromCoroutine(go()))
        self.assertEqual(len(inside), 1)
        self.assertIsNotNone(inside[0])
        self.assertIsNone(self.redis.raw("lock:res"))

    @skip_unless_importable("lupa", extra="testing")
    def test_async_with_error_releases(self) -> None:
        """
        An exception in the block propagates and the lock is released.
        """
        lock = self.lock()

        async def go() -> None:
            async with lock:
                raise ZeroDivisionError()

        self.failureResultOf(Deferred.fromCoroutine(go()), ZeroDivisionError)
        self.assertIsNone(self.redis.raw("lock:res"))

    @skip_unless_importable("lupa", extra="testing")
    def test_run_reports_lost_lock(self) -> None:
        """
        C{run(fn)} returns fn's result; if the lock expired before release,
        it fails with L{LockNotOwned} (the section may not have been
        exclusive).
        """
        lock = self.lock(ttl=1)
        self.assertEqual(self.successResultOf(lock.run(lambda: 42)), 42)
        slow: Deferred[int] = Deferred()
        d = lock.run(lambda: slow)
        self.clock.advance(2)
        slow.callback(1)
        self.failureResultOf(d, LockNotOwned)

    def test_ttl_must_be_positive(self) -> None:
        """
        A zero TTL is refused.
        """
        self.assertRaises(ValueError, self.lock, ttl=0)

    def test_seed_setnx_expire_is_immortal(self) -> None:
        """
        The seed's scheme for contrast: SETNX then EXPIRE, with a crash in
        between, leaves a key without expiry that blocks everyone forever,
        while L{Lock}'s key always carries its TTL.
        """
        self.redis.execute_command("SET", "seed", "ok", "NX")  # setnx, crash
        self.clock.advance(3600)
        self.assertIsNotNone(self.redis.raw("seed"))
        lock = self.lock()
        self.successResultOf(lock.acquire())
        self.assertIn(b"lock:res", self.redis.expires)
