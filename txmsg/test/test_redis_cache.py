# -*- test-case-name: txmsg.test.test_redis_cache -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.cache}.
"""

from __future__ import annotations

import pickle
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.cache import Cache, CacheDecodeError
from txmsg.serializers import SerializationError
from txmsg.test._optional import skip_unless_importable
from txmsg.testing._redis_store import FakeRedis

_EXPLOITED: list[str] = []


def _exploited(what: str) -> None:
    """
    What the malicious pickle calls.
    """
    _EXPLOITED.append(what)


class _Exploit:
    """
    Unpickling this appends to C{_EXPLOITED} (stands in for os.system).
    """

    def __reduce__(self) -> Any:
        return (_exploited, ("pwned",))


class CacheTests(SynchronousTestCase):
    """
    Tests for L{Cache} on an in-memory Redis and a Clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)
        self.cache = Cache(self.redis, namespace="app", reactor=self.clock)
        del _EXPLOITED[:]

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_set_get_json(self) -> None:
        """
        Values round-trip as JSON under C{<namespace>:<key>}.
        """
        self.successResultOf(self.cache.set("user:1", {"name": "Ada", "n": [1, 2]}))
        self.assertEqual(self.redis.raw("app:user:1"), b'{"name":"Ada","n":[1,2]}')
        self.assertEqual(
            self.successResultOf(self.cache.get("user:1")), {"name": "Ada", "n": [1, 2]}
        )

    def test_ttl(self) -> None:
        """
        An entry set with a TTL disappears after it; C{get} then gives the
        default.
        """
        self.successResultOf(self.cache.set("k", "v", ttl=2.5))
        self.assertEqual(self.redis.calls[-1][-2:], ("PX", 2500))
        self.clock.advance(2.4)
        self.assertEqual(self.successResultOf(self.cache.get("k")), "v")
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(self.cache.get("k", "gone")), "gone")

    def test_default_ttl(self) -> None:
        """
        C{default_ttl} applies when C{set} gets no TTL.
        """
        cache = Cache(self.redis, default_ttl=60, reactor=self.clock)
        self.successResultOf(cache.set("k", 1))
        self.assertEqual(self.redis.calls[-1][-2:], ("PX", 60000))

    def test_cached_none_is_not_a_miss(self) -> None:
        """
        A cached C{None} (JSON null) is returned, not treated as missing.
        """
        self.successResultOf(self.cache.set("k", None))
        self.assertIsNone(self.successResultOf(self.cache.get("k", "default")))
        self.assertIsNone(self.successResultOf(self.cache.get_or_compute("k", lambda: 1 / 0)))

    def test_delete(self) -> None:
        """
        C{delete} removes the entry and reports whether it existed.
        """
        self.successResultOf(self.cache.set("k", 1))
        self.assertTrue(self.successResultOf(self.cache.delete("k")))
        self.assertFalse(self.successResultOf(self.cache.delete("k")))

    def test_namespaces_isolate(self) -> None:
        """
        Two caches with different namespaces do not see each other's keys.
        """
        other = Cache(self.redis, namespace="other", reactor=self.clock)
        self.successResultOf(self.cache.set("k", 1))
        self.assertIsNone(self.successResultOf(other.get("k")))

    def test_undecodable_is_clear_error(self) -> None:
        """
        Bytes that are not JSON make C{get} fail with L{CacheDecodeError}
        naming the key.
        """
        self.redis.data[b"app:k"] = b"\x80not json"
        f = self.failureResultOf(self.cache.get("k"), CacheDecodeError)
        self.assertEqual(f.value.key, "app:k")
        self.assertIsInstance(f.value, SerializationError)

    def test_pickle_refused_by_default(self) -> None:
        """
        A pickled payload under a JSON cache's key is not unpickled: no code
        runs, C{get} fails with L{CacheDecodeError}.
        """
        self.redis.data[b"app:k"] = pickle.dumps(_Exploit())
        self.failureResultOf(self.cache.get("k"), CacheDecodeError)
        self.assertEqual(_EXPLOITED, [])

    def test_pickle_when_named(self) -> None:
        """
        With C{serializer="pickle"} Python objects round-trip (and a
        malicious pickle would run: the documented risk).
        """
        cache = Cache(self.redis, serializer="pickle", reactor=self.clock)
        self.successResultOf(cache.set("k", {1, 2}))
        self.assertEqual(self.successResultOf(cache.get("k")), {1, 2})
        self.redis.data[b"cache:k"] = pickle.dumps(_Exploit())
        self.successResultOf(cache.get("k"))
        self.assertEqual(_EXPLOITED, ["pwned"])

    @skip_unless_importable("msgpack", extra="msgpack")
    def test_msgpack(self) -> None:
        """
        msgpack values round-trip, including ones whose bytes happen to be
        valid UTF-8 (returned as str by the connection).
        """
        cache = Cache(self.redis, serializer="msgpack", reactor=self.clock)
        for value in (1, "é", {"a": [1, b"\xff"]}):
            self.successResultOf(cache.set("k", value))
            self.assertEqual(self.successResultOf(cache.get("k")), value)

    def test_unserializable_value(self) -> None:
        """
        A value JSON cannot encode fails C{set} with L{SerializationError}
        and stores nothing.
        """
        self.failureResultOf(self.cache.set("k", object()), SerializationError)
        self.assertEqual(self.redis.calls, [])

    @skip_unless_importable("lupa", extra="testing")
    def test_get_or_compute_miss_then_hit(self) -> None:
        """
        A miss computes, stores with the TTL and returns; a hit does not
        compute.
        """
        calls = []

        def compute() -> dict[str, int]:
            calls.append(1)
            return {"id": 1}

        d = self.cache.get_or_compute("user:1", compute, ttl=3600)
        self.assertEqual(self.successResultOf(d), {"id": 1})
        self.assertEqual(
            self.successResultOf(self.cache.get_or_compute("user:1", compute)),
            {"id": 1},
        )
        self.assertEqual(len(calls), 1)
        self.assertIsNone(self.redis.raw("app.lock:user:1"))

    @skip_unless_importable("lupa", extra="testing")
    def test_coroutine_compute(self) -> None:
        """
        C{compute} may be a coroutine function.
        """

        async def compute() -> int:
            return 7

        self.assertEqual(self.successResultOf(self.cache.get_or_compute("k", compute)), 7)

    @skip_unless_importable("lupa", extra="testing")
    def test_in_process_coalescing(self) -> None:
        """
        Concurrent callers in one process share one computation.
        """
        pending: Deferred[str] = Deferred()
        calls = []

        def compute() -> Deferred[str]:
            calls.append(1)
            return pending

        ds = [self.cache.get_or_compute("k", compute) for _ in range(5)]
        for d in ds:
            self.assertNoResult(d)
        pending.callback("v")
        self.assertEqual([self.successResultOf(d) for d in ds], ["v"] * 5)
        self.assertEqual(calls, [1])

    @skip_unless_importable("lupa", extra="testing")
    def test_failure_shared_and_not_cached(self) -> None:
        """
        A failing computation fails every waiting caller, caches nothing and
        releases the lock; the next call computes again.
        """
        pending: Deferred[str] = Deferred()
        d1 = self.cache.get_or_compute("k", lambda: pending)
        d2 = self.cache.get_or_compute("k", lambda: pending)
        pending.errback(KeyError("db down"))
        self.failureResultOf(d1, KeyError)
        self.failureResultOf(d2, KeyError)
        self.assertIsNone(self.redis.raw("app:k"))
        self.assertIsNone(self.redis.raw("app.lock:k"))
        self.assertEqual(self.successResultOf(self.cache.get_or_compute("k", lambda: 2)), 2)

    def test_waits_for_other_process(self) -> None:
        """
        When another process holds the compute lock, the caller polls the
        cache and returns that process's value without computing.
        """
        self.redis.execute_command("SET", "app.lock:k", "other", "NX", "PX", 30000)
        d = self.cache.get_or_compute("k", lambda: 1 / 0)
        self.clock.advance(0.05)
        self.assertNoResult(d)
        self.redis.execute_command("SET", "app:k", '"theirs"')
        self.clock.advance(0.05)
        self.assertEqual(self.successResultOf(d), "theirs")
        self.assertEqual(self.cache.computations, 0)

    @skip_unless_importable("lupa", extra="testing")
    def test_other_process_died(self) -> None:
        """
        If the process holding the compute lock dies, its lock expires after
        C{compute_timeout} and the waiter computes.
        """
        cache = Cache(
            self.redis,
            compute_timeout=1.0,
            lock_wait=10,
            lock_retry=0.25,
            reactor=self.clock,
        )
        self.redis.execute_command("SET", "cache.lock:k", "dead", "NX", "PX", 1000)
        d = cache.get_or_compute("k", lambda: "mine")
        self.clock.pump([0.25] * 3)
        self.assertNoResult(d)
        self.clock.advance(0.25)
        self.assertEqual(self.successResultOf(d), "mine")

    def test_lock_wait_gives_up(self) -> None:
        """
        After C{lock_wait} seconds without a value, the waiter computes
        anyway.
        """
        cache = Cache(self.redis, lock_wait=1.0, lock_retry=0.5, reactor=self.clock)
        self.redis.execute_command("SET", "cache.lock:k", "stuck", "NX", "PX", 60000)
        d = cache.get_or_compute("k", lambda: "anyway")
        self.clock.pump([0.5, 0.5])
        self.assertEqual(self.successResultOf(d), "anyway")

    @skip_unless_importable("lupa", extra="testing")
    def test_undecodable_entry_recomputed(self) -> None:
        """
        In C{get_or_compute}, an undecodable entry counts as a miss and is
        overwritten (the service keeps working).
        """
        self.redis.data[b"app:k"] = pickle.dumps(_Exploit())
        self.assertEqual(self.successResultOf(self.cache.get_or_compute("k", lambda: 5)), 5)
        self.assertEqual(self.redis.raw("app:k"), b"5")
        self.assertEqual(_EXPLOITED, [])

    def test_redis_error_propagates(self) -> None:
        """
        A Redis failure reaches the caller as an error (no hang).
        """
        self.redis.error = ConnectionError("down")
        self.failureResultOf(self.cache.get("k"), ConnectionError)
        self.failureResultOf(self.cache.get_or_compute("k", lambda: 1), ConnectionError)
