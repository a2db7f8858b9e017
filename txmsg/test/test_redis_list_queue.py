# -*- test-case-name: txmsg.test.test_redis_list_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.list_queue}.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase
from txredisapi import ConnectionError as RedisConnectionError

from txmsg.events import EventRegistry
from txmsg.redis import RedisCommandTimeout
from txmsg.redis._list_consumer import ListConsumer
from txmsg.redis.list_queue import ReliableQueue
from txmsg.test._optional import skip_unless_importable
from txmsg.testing._redis_store import FakeRedis


class SplitRedis:
    """
    Two views of one FakeRedis, to see which connection a command used.
    """

    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.calls: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> Deferred[Any]:
        self.calls.append(args)
        return self.redis.execute_command(*args)


class ReliableQueueTests(SynchronousTestCase):
    """
    Tests for L{ReliableQueue} and L{ListConsumer} on an in-memory Redis.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)
        self.blocking = SplitRedis(self.redis)
        self.queue = ReliableQueue(self.redis, "work", reactor=self.clock)
        self.consumers: list[Any] = []

    def tearDown(self) -> None:
        for c in self.consumers:
            if c.running:
                d = c.stopService()
                self.clock.advance(c.block_timeout)  # the pending pop returns
                self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def consume(self, callback: Any, **kw: Any) -> Any:
        kw.setdefault("blocking_redis", self.blocking)
        c = self.queue.consume(callback, **kw)
        self.consumers.append(c)
        return c

    @skip_unless_importable("lupa", extra="testing")
    def test_push_fifo_burst(self) -> None:
        """
        Burst mode (the seed's lpop mode) takes items in push order until the
        queue is empty, then stops: C{done} fires with the count, and the
        consumer leaves no processing list, heartbeat or registration.
        """
        self.assertEqual(self.successResultOf(self.queue.push(1, 2)), 2)
        self.successResultOf(self.queue.push({"three": 3}))
        got: list[Any] = []
        c = self.consume(got.append, mode="burst")
        self.assertEqual(self.successResultOf(c.done), 3)
        self.assertEqual(got, [1, 2, {"three": 3}])
        self.assertFalse(c.running)
        self.assertEqual(self.redis.data, {})
        self.assertEqual(self.blocking.calls, [])
        self.assertIn("LMOVE", self.redis.names())

    @skip_unless_importable("lupa", extra="testing")
    def test_block_mode_uses_dedicated_connection(self) -> None:
        """
        Block mode (the seed's blpop mode) pops with BLMOVE and its timeout on
        the dedicated connection only; it waits for new items without
        spinning.
        """
        got: list[Any] = []
        c = self.consume(got.append, block_timeout=2.0)
        self.assertEqual([a[0] for a in self.blocking.calls], ["BLMOVE"])
        self.assertEqual(
            self.blocking.calls[0],
            ("BLMOVE", "queue:{work}", c.processing_key, "RIGHT", "LEFT", "2.0"),
        )
        self.clock.advance(2.0)  # server-side timeout: pop again
        self.assertEqual(len(self.blocking.calls), 2)
        self.successResultOf(self.queue.push("a"))
        self.assertEqual(got, ["a"])
        blocking = [a for a in self.blocking.calls if a[0] == "BLMOVE"]
        self.assertEqual(self.redis.names().count("BLMOVE"), len(blocking))
        self.assertEqual({a[0] for a in self.blocking.calls}, {"BLMOVE"})
        self.assertIsNone(self.redis.raw(c.processing_key))

    @skip_unless_importable("lupa", extra="testing")
    def test_in_processing_list_while_handled(self) -> None:
        """
        While the callback runs, the item sits in the consumer's processing
        list; success removes it (ack).
        """
        pending: Deferred[None] = Deferred()
        self.successResultOf(self.queue.push("job"))
        c = self.consume(lambda p: pending)
        self.assertEqual(self.redis.raw(c.processing_key), [b'"job"'])
        self.assertIsNone(self.redis.raw("queue:{work}"))
        pending.callback(None)
        self.assertIsNone(self.redis.raw(c.processing_key))
        self.assertEqual(c.handled, 1)

    @skip_unless_importable("lupa", extra="testing")
    def test_failure_dead_letters(self) -> None:
        """
        A failing callback's item goes to C{Q:dead} (default).
        """
        self.successResultOf(self.queue.push("bad"))
        c = self.consume(lambda p: 1 / 0, mode="burst")
        self.successResultOf(c.done)
        self.assertEqual(self.redis.raw("queue:{work}:dead"), [b'"bad"'])
        self.assertEqual(c.failed, 1)
        self.flushLoggedErrors(ZeroDivisionError)

    @skip_unless_importable("lupa", extra="testing")
    def test_failure_requeue(self) -> None:
        """
        With C{on_failure="requeue"} a failed item goes back to the queue's
        tail.
        """
        self.successResultOf(self.queue.push("x", "y"))
        seen: list[str] = []

        def cb(p: str) -> None:
            seen.append(p)
            if len(seen) == 1:
                raise ValueError(p)

        c = self.consume(cb, mode="burst", on_failure="requeue")
        self.successResultOf(c.done)
        self.assertEqual(seen, ["x", "y", "x"])
        self.flushLoggedErrors(ValueError)

    @skip_unless_importable("lupa", extra="testing")
    def test_undecodable_dead_lettered(self) -> None:
        """
        An item the serializer cannot decode is dead-lettered, not handed to
        the callback.
        """
        self.redis.execute_command("LPUSH", "queue:{work}", b"\xff")
        got: list[Any] = []
        self.successResultOf(self.consume(got.append, mode="burst").done)
        self.assertEqual(got, [])
        self.assertEqual(self.redis.raw("queue:{work}:dead"), [b"\xff"])

    @skip_unless_importable("lupa", extra="testing")
    def test_heartbeat(self) -> None:
        """
        A consumer registers and refreshes a heartbeat key with a TTL every
        ttl/3 seconds.
        """
        c = self.consume(lambda p: None, heartbeat_ttl=3.0, block_timeout=10)
        self.assertEqual(self.redis.raw("queue:{work}:consumers"), {c.consumer_id.encode()})
        for _ in range(5):
            self.clock.advance(1.0)
            self.assertIsNotNone(self.redis.raw(c.heartbeat_key))
        self.assertEqual(self.redis.expires[c.heartbeat_key.encode()], 8.0)

    @skip_unless_importable("lupa", extra="testing")
    def test_dead_consumer_recovered(self) -> None:
        """
        The processing list of a consumer whose heartbeat expired is moved
        back to the queue (oldest first) when a consumer starts; a live
        consumer's is left alone.
        """
        r = self.redis
        r.execute_command("SADD", "queue:{work}:consumers", "dead", "alive")
        r.execute_command("LPUSH", "queue:{work}:processing:dead", '"d1"', '"d2"')
        r.execute_command("LPUSH", "queue:{work}:processing:alive", '"a1"')
        r.execute_command("SET", "queue:{work}:consumer:alive", "1", "PX", 60000)
        got: list[Any] = []
        self.successResultOf(self.consume(got.append, mode="burst").done)
        self.assertEqual(got, ["d1", "d2"])
        self.assertEqual(r.raw("queue:{work}:processing:alive"), [b'"a1"'])
        self.assertEqual(r.raw("queue:{work}:consumers"), {b"alive"})

    @skip_unless_importable("lupa", extra="testing")
    def test_periodic_sweep(self) -> None:
        """
        A running consumer sweeps every heartbeat_ttl seconds: items of a
        consumer that dies later are recovered and handled.
        """
        got: list[Any] = []
        self.consume(got.append, heartbeat_ttl=3.0, block_timeout=100)
        r = self.redis
        r.execute_command("SADD", "queue:{work}:consumers", "other")
        r.execute_command("SET", "queue:{work}:consumer:other", "1", "PX", 1000)
        r.execute_command("LPUSH", "queue:{work}:processing:other", '"orphan"')
        self.clock.pump([1.0, 1.0, 1.0])
        self.assertEqual(got, ["orphan"])

    @skip_unless_importable("lupa", extra="testing")
    def test_stop_gives_back(self) -> None:
        """
        Stopping waits for the callback in flight, and items left in the
        processing list go back to the queue; the consumer unregisters.
        """
        pending: Deferred[None] = Deferred()
        self.successResultOf(self.queue.push("a"))
        c = self.consume(lambda p: pending)
        self.redis.execute_command("LPUSH", c.processing_key, '"stranded"')
        d = c.stopService()
        self.clock.advance(1.0)  # the blocking pop returns
        self.assertNoResult(d)
        pending.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.redis.raw("queue:{work}"), [b'"stranded"'])
        self.assertIsNone(self.redis.raw(c.heartbeat_key))
        self.assertIsNone(self.redis.raw("queue:{work}:consumers"))

    @skip_unless_importable("lupa", extra="testing")
    def test_concurrency(self) -> None:
        """
        At most C{concurrency} callbacks run at once.
        """
        pending = [Deferred() for _ in range(3)]
        it = iter(pending)
        self.successResultOf(self.queue.push(1, 2, 3))
        started: list[int] = []

        def cb(p: int) -> Deferred[None]:
            started.append(p)
            return next(it)

        c = self.consume(cb, mode="burst", concurrency=2)
        self.assertEqual(started, [1, 2])
        pending[0].callback(None)
        self.assertEqual(started, [1, 2, 3])
        pending[1].callback(None)
        pending[2].callback(None)
        self.assertEqual(self.successResultOf(c.done), 3)

    @skip_unless_importable("lupa", extra="testing")
    def test_pop_error_recovers_stranded(self) -> None:
        """
        After a failed pop (whose item may have been moved anyway), the
        consumer puts its processing list back before popping again.
        """
        got: list[Any] = []
        errors = iter([ConnectionError("lost")])

        class Flaky(SplitRedis):
            def execute_command(self, *args: Any) -> Deferred[Any]:
                if args[0] == "BLMOVE":
                    err = next(errors, None)
                    if err is not None:
                        self.redis.execute_command(
                            "LMOVE", "queue:{work}", args[2], "RIGHT", "LEFT"
                        )
                        return fail(err)
                return super().execute_command(*args)

        self.successResultOf(self.queue.push("lost-reply"))
        c2 = self.consume(
            got.append,
            blocking_redis=Flaky(self.redis),
            block_timeout=5,
            error_delay=1.0,
        )
        self.assertEqual(got, [])
        self.clock.advance(1.0)
        self.assertEqual(got, ["lost-reply"])
        self.assertIsNone(self.redis.raw(c2.processing_key))

    @skip_unless_importable("lupa", extra="testing")
    def test_failed_recovery_after_pop_error_retried(self) -> None:
        """
        When taking the processing list back after a failed pop fails too
        (Redis still failing over), the consumer logs it, waits and tries
        again: its loop does not end.
        """
        got: list[Any] = []
        pops = iter([ConnectionError("lost")])
        real = self.queue.recover_consumer
        recoveries: list[bool] = []

        def flaky_recovery(consumer_id: str, force: bool = False) -> Deferred[int]:
            recoveries.append(force)
            if len(recoveries) == 2:  # the first after the failed pop
                return fail(RedisCommandTimeout("no reply within 2 s"))
            return real(consumer_id, force=force)

        class Flaky(SplitRedis):
            def execute_command(self, *args: Any) -> Deferred[Any]:
                if args[0] == "BLMOVE":
                    err = next(pops, None)
                    if err is not None:
                        return fail(err)
                return super().execute_command(*args)

        self.patch(self.queue, "recover_consumer", flaky_recovery)
        c = self.consume(
            got.append, blocking_redis=Flaky(self.redis), block_timeout=5, error_delay=1.0
        )
        self.clock.advance(1.0)  # the pop's error delay: the recovery fails
        self.assertEqual(recoveries, [True, True])
        self.assertTrue(c.running)
        self.clock.advance(1.0)  # tried again, and it pops
        self.assertEqual(recoveries, [True, True, True])
        self.successResultOf(self.queue.push("after"))
        self.clock.advance(0)
        self.assertEqual(got, ["after"])
        self.assertTrue(c.running)

    @skip_unless_importable("lupa", extra="testing")
    def test_lost_connection_in_bookkeeping_is_a_warning(self) -> None:
        """
        A connection lost while the consumer removes a handled item from its
        processing list (a Sentinel failover) is a warning, not an error:
        the item stays there and is recovered later (it may run twice).
        """
        logged: list[dict[str, Any]] = []
        real = self.redis.execute_command
        lost = iter([RedisConnectionError("Lost connection")])

        def flaky(*args: Any) -> Deferred[Any]:
            if args[0] == "LREM":
                err = next(lost, None)
                if err is not None:
                    return fail(err)
            return real(*args)

        self.patch(self.redis, "execute_command", flaky)
        self.patch(ListConsumer, "log", Logger(observer=cast(ILogObserver, logged.append)))
        self.successResultOf(self.queue.push("x"))
        c = self.consume(lambda payload: None)
        self.clock.advance(0)
        self.assertEqual(self.flushLoggedErrors(), [])
        [warning] = [e for e in logged if "Bookkeeping" in e["log_format"]]
        self.assertEqual(warning["log_level"], LogLevel.warn)
        self.assertEqual(self.redis.raw(c.processing_key), [b'"x"'])

    @skip_unless_importable("lupa", extra="testing")
    def test_events_route(self) -> None:
        """
        With C{events=}/C{event=} payloads go to the registry.
        """
        registry = EventRegistry(reactor=self.clock)
        seen: list[Any] = []
        registry.add("email", lambda e: seen.append((e.payload, e.source)))
        self.successResultOf(self.queue.push("hi"))
        c = self.queue.consume(None, events=registry, event="email", mode="burst")
        self.clock.advance(0)
        self.successResultOf(c.done)
        self.assertEqual(seen, [("hi", "redis-list:work")])

    def test_bad_arguments(self) -> None:
        """
        Unknown modes and failure policies, and a missing callback, are
        refused.
        """
        self.assertRaises(ValueError, self.queue.consumer, print, mode="poll")
        self.assertRaises(ValueError, self.queue.consumer, print, on_failure="drop")
        self.assertRaises(TypeError, self.queue.consumer, None)
        self.assertRaises(TypeError, self.queue.push)
