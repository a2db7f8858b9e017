# -*- test-case-name: txmsg.test.test_redis_delay_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.delay_queue}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import EventRegistry
from txmsg.redis._delay_scripts import SETTLE
from txmsg.redis.delay_queue import DelayedItem, DelayQueue
from txmsg.redis.list_queue import ReliableQueue
from txmsg.test._optional import skip_unless_importable
from txmsg.testing._redis_store import FakeRedis


class FakePubSub:
    """
    Records subscriptions; the test calls the callback.
    """

    def __init__(self) -> None:
        self.subs: dict[str, Any] = {}
        self.cancelled: list[str] = []

    def subscribe(self, channel: str, callback: Any, **kw: Any) -> Any:
        self.subs[channel] = callback
        pubsub = self

        class Sub:
            def cancel(self) -> None:
                pubsub.cancelled.append(channel)

        return Sub()


class Msg:
    def __init__(self, data: str) -> None:
        self.data = data


@skip_unless_importable("lupa", extra="testing")
class DelayQueueTests(SynchronousTestCase):
    """
    Tests for L{DelayQueue} and L{DelayPoller} on an in-memory Redis and a
    Clock (unix time starts at 1000).
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.redis = FakeRedis(self.clock)
        self.queue = DelayQueue(self.redis, "jobs", reactor=self.clock)
        self.got: list[DelayedItem] = []
        self.pollers: list[Any] = []

    def tearDown(self) -> None:
        for p in self.pollers:
            if p.running:
                self.successResultOf(p.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def poller(self, callback: Any = None, **kw: Any) -> Any:
        kw.setdefault("max_sleep", 60.0)
        p = self.queue.poller(callback or self.got.append, **kw)
        p.startService()
        self.pollers.append(p)
        self.clock.advance(0)  # the first claim is a callLater(0)
        return p

    def test_schedule_stores_due_time(self) -> None:
        """
        C{schedule} puts the id in the C{due} zset with the due time as score
        and the JSON payload in the C{items} hash.
        """
        item_id = self.successResultOf(self.queue.schedule({"a": 1}, delay=5))
        due = self.redis.raw("delay:{jobs}:due")
        self.assertEqual(due, {item_id.encode(): 1005.0})
        self.assertEqual(self.redis.raw("delay:{jobs}:items")[item_id.encode()], b'{"a":1}')
        self.successResultOf(self.queue.schedule("x", at=2000, id="fixed"))
        self.assertEqual(self.redis.raw("delay:{jobs}:due")[b"fixed"], 2000.0)
        self.assertRaises(TypeError, self.queue.schedule, 1, at=1, delay=1)

    def test_sleeps_until_next_due_time(self) -> None:
        """
        The poller sleeps exactly until the next due time (one callLater),
        not a fixed polling interval, and delivers then.
        """
        self.successResultOf(self.queue.schedule("later", delay=10))
        self.poller()
        calls = self.clock.getDelayedCalls()
        self.assertEqual([c.getTime() for c in calls], [1010.0])
        self.clock.advance(9.9)
        self.assertEqual(self.got, [])
        self.clock.advance(0.1)
        self.assertEqual([i.payload for i in self.got], ["later"])
        self.assertEqual(self.got[0].attempts, 1)
        self.assertEqual(self.got[0].due, 1010.0)

    def test_empty_queue_sleeps_max_sleep(self) -> None:
        """
        With nothing scheduled, the poller claims once per C{max_sleep}.
        """
        self.poller(max_sleep=5.0)
        self.clock.pump([5.0] * 4)
        self.assertEqual(self.redis.names().count("EVALSHA"), 5)

    def test_local_schedule_wakes_early(self) -> None:
        """
        Scheduling an earlier item through the same queue object moves the
        poller's wake-up forward.
        """
        self.successResultOf(self.queue.schedule("late", delay=50))
        self.poller()
        self.successResultOf(self.queue.schedule("soon", delay=2))
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1002.0])
        self.clock.advance(2)
        self.assertEqual([i.payload for i in self.got], ["soon"])

    def test_pubsub_wake(self) -> None:
        """
        With C{pubsub=}, a wake message from another process (due time as
        text) moves the wake-up forward; stopping cancels the subscription.
        """
        ps = FakePubSub()
        p = self.poller(pubsub=ps)
        self.assertEqual(list(ps.subs), ["delay:{jobs}:wake"])
        ps.subs["delay:{jobs}:wake"](Msg("1003.5"))
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1003.5])
        self.successResultOf(p.stopService())
        self.assertEqual(ps.cancelled, ["delay:{jobs}:wake"])

    def test_schedule_publishes_when_earliest(self) -> None:
        """
        The schedule script publishes on C{P:wake} only when the new item is
        the earliest.
        """
        self.successResultOf(self.queue.schedule("a", delay=10))
        self.successResultOf(self.queue.schedule("b", delay=20))
        self.successResultOf(self.queue.schedule("c", delay=5))
        self.assertEqual(
            self.redis.published,
            [(b"delay:{jobs}:wake", b"1010.0"), (b"delay:{jobs}:wake", b"1005.0")],
        )

    def test_each_item_claimed_once(self) -> None:
        """
        Two pollers on one queue: every item goes to exactly one of them.
        """
        for i in range(50):
            self.successResultOf(self.queue.schedule(i))
        a: list[Any] = []
        b: list[Any] = []
        for got in (a, b):
            p = self.queue.poller(got.append, batch=7, max_sleep=60)
            p.startService()
            self.pollers.append(p)
        self.clock.advance(0)
        self.clock.advance(0)
        got = sorted(i.payload for i in a + b)
        self.assertEqual(got, list(range(50)))
        self.assertTrue(a and b)
        self.assertEqual(
            self.successResultOf(self.queue.counts()),
            {"due": 0, "processing": 0, "dead": 0},
        )

    def test_failure_retried_with_backoff_then_dead(self) -> None:
        """
        A failing handler's item is retried after 1, 2 s (backoff) and, at
        C{max_attempts}, dead-lettered as a JSON envelope.
        """
        times: list[float] = []

        def handler(item: DelayedItem) -> None:
            times.append(self.clock.seconds())
            raise ValueError("boom")

        self.successResultOf(self.queue.schedule({"k": 1}))
        p = self.poller(handler, max_attempts=3)
        self.clock.pump([1.0] * 5)
        self.assertEqual(times, [1000.0, 1001.0, 1003.0])
        self.assertEqual((p.failed, p.dead, p.handled), (3, 1, 0))
        [raw] = self.redis.raw("delay:{jobs}:dead")
        envelope = json.loads(raw)
        self.assertEqual(envelope["attempts"], 3)
        self.assertEqual(envelope["payload"], '{"k":1}')
        self.assertIn("ValueError: boom", envelope["error"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(
            self.successResultOf(self.queue.counts()),
            {"due": 0, "processing": 0, "dead": 1},
        )

    def test_async_handler_success_acks(self) -> None:
        """
        A Deferred-returning handler's item is acked when it fires.
        """
        pending: Deferred[None] = Deferred()
        self.successResultOf(self.queue.schedule(1))
        p = self.poller(lambda item: pending)
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 1)
        pending.callback(None)
        self.clock.advance(0)  # the ack leaves at the end of the turn
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 0)
        self.assertEqual(p.handled, 1)

    def test_expired_lease_recovered(self) -> None:
        """
        An item claimed by a poller that died (no ack) comes back after its
        lease and is delivered again, with its attempt count.
        """
        self.successResultOf(self.queue.schedule("x"))
        claim = self.successResultOf(self.queue.claim(10, lease=30))
        self.assertEqual(len(claim.items), 1)  # the "dead" poller's claim
        self.poller()
        self.assertEqual(self.got, [])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1030.0])
        self.clock.advance(30)
        self.assertEqual([(i.payload, i.attempts) for i in self.got], [("x", 2)])

    def test_too_many_lease_expiries_dead(self) -> None:
        """
        An item whose handler keeps crashing its poller (lease expiries, no
        failure recorded) is dead-lettered once claimed more than
        C{max_attempts} times.
        """
        self.successResultOf(self.queue.schedule("poison"))
        for _ in range(2):
            self.successResultOf(self.queue.claim(10, lease=1))
            self.clock.advance(1)
        p = self.poller(max_attempts=2)
        self.assertEqual(self.got, [])
        self.assertEqual(p.dead, 1)
        self.assertEqual(len(self.redis.raw("delay:{jobs}:dead")), 1)

    def test_undecodable_payload_dead(self) -> None:
        """
        A payload the serializer cannot decode is dead-lettered at once
        (base64 in the envelope when it is not text).
        """
        self.successResultOf(self.queue.schedule("x", id="bad"))
        self.redis.data[b"delay:{jobs}:items"][b"bad"] = b"\xff\x00"
        self.poller()
        envelope = json.loads(self.redis.raw("delay:{jobs}:dead")[0])
        self.assertEqual(envelope["payload_encoding"], "base64")
        self.assertIn("undecodable", envelope["error"])

    def test_events_route(self) -> None:
        """
        With C{events=}/C{event=}, items are dispatched to the registry; a
        failing handler counts as a failure (retried).
        """
        registry = EventRegistry(reactor=self.clock)
        seen: list[Any] = []
        registry.add("job.due", lambda event: seen.append(event.payload.payload))
        self.successResultOf(self.queue.schedule("hello"))
        p = self.queue.poller(events=registry, event="job.due", max_sleep=60)
        p.startService()
        self.pollers.append(p)
        self.clock.advance(0)
        self.assertEqual(seen, ["hello"])
        self.assertEqual(p.handled, 1)

    def test_events_route_without_handler_retries(self) -> None:
        """
        An event nobody handles is not acked: it is retried.
        """
        registry = EventRegistry(reactor=self.clock)
        self.successResultOf(self.queue.schedule("hello"))
        p = self.queue.poller(events=registry, event="nobody", max_sleep=60)
        p.startService()
        self.pollers.append(p)
        self.clock.advance(0)
        self.assertEqual(p.failed, 1)
        self.assertEqual(self.successResultOf(self.queue.counts())["due"], 1)

    def test_move_to_list_queue(self) -> None:
        """
        With C{target=} a L{ReliableQueue}, due payloads are moved to its
        list (in due order) instead of being handled.
        """
        target = ReliableQueue(self.redis, "work", reactor=self.clock)
        self.successResultOf(self.queue.schedule("b", delay=2))
        self.successResultOf(self.queue.schedule("a", delay=1))
        p = self.queue.poller(target=target, max_sleep=60)
        p.startService()
        self.pollers.append(p)
        self.clock.advance(2)
        self.assertEqual(self.redis.raw("queue:{work}"), [b'"b"', b'"a"'])
        self.assertEqual(p.moved, 2)

    def test_stop_waits_for_handlers(self) -> None:
        """
        C{stopService} fires once the handlers in flight finished (and were
        acked); no timer is left.
        """
        pending: Deferred[None] = Deferred()
        self.successResultOf(self.queue.schedule(1))
        p = self.poller(lambda item: pending)
        d = p.stopService()
        self.assertNoResult(d)
        pending.callback(None)
        self.assertNoResult(d)  # its ack leaves at the end of the turn
        self.clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 0)

    def test_concurrency_bound(self) -> None:
        """
        At most C{concurrency} handlers run; the next claim happens when one
        finishes.
        """
        pending = [Deferred() for _ in range(5)]
        it = iter(pending)
        for i in range(5):
            self.successResultOf(self.queue.schedule(i))
        started: list[Any] = []

        def handler(item: DelayedItem) -> Deferred[None]:
            started.append(item.payload)
            return next(it)

        self.poller(handler, concurrency=2)
        self.assertEqual(len(started), 2)
        pending[0].callback(None)
        self.clock.advance(0)
        self.assertEqual(len(started), 3)
        for d in pending[1:]:
            if not d.called:
                d.callback(None)
            self.clock.advance(0)
        self.assertEqual(sorted(started), [0, 1, 2, 3, 4])

    def test_claim_error_retried(self) -> None:
        """
        When a claim fails (Redis down), the poller tries again after
        C{error_delay}.
        """
        self.redis.error = ConnectionError("down")
        self.successResultOf(Deferred.fromCoroutine(self._noop()))
        self.poller(error_delay=2.0)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1002.0])
        self.redis.error = None
        self.successResultOf(self.queue.schedule("after"))
        self.clock.advance(2.0)
        self.assertEqual([i.payload for i in self.got], ["after"])
        self.flushLoggedErrors(ConnectionError)

    async def _noop(self) -> None:
        return None

    # the outcomes of one reactor turn go in one settle call

    def settles(self) -> list[list[tuple[str, str]]]:
        """
        The outcomes sent by each settle call so far: C{(id, due)} pairs,
        due C{""} for an ack.
        """
        out = []
        for c in self.redis.calls:
            if c[0] == "EVALSHA" and c[1] == SETTLE.sha:
                argv = [str(a) for a in c[3 + int(c[2]) :]]
                out.append(list(zip(argv[::2], argv[1::2], strict=True)))
        return out

    def held_claim(self, callback: Any = None, **kw: Any) -> Any:
        """
        A started poller whose first claim is sent and its reply held: the
        test delivers it with C{self.redis.flush()}, in a turn of its own
        (C{Clock.advance(0)} would also run the end-of-turn call).
        """
        self.redis.paused = True
        return self.poller(callback, **kw)

    def test_one_settle_call_per_turn(self) -> None:
        """
        N items handled in one reactor turn are acked by one Lua call at
        the end of the turn, not one call each; until then they stay
        claimed.
        """
        ids = [self.successResultOf(self.queue.schedule(i, id=f"i{i}")) for i in range(5)]
        p = self.held_claim()
        self.redis.flush()
        self.assertEqual(len(self.got), 5)
        self.assertEqual(p.handled, 5)
        self.assertEqual(self.settles(), [])
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 5)
        self.clock.advance(0)
        self.assertEqual(self.settles(), [[(i, "") for i in ids]])
        self.assertEqual(p.handled, 5)
        self.assertEqual(
            self.successResultOf(self.queue.counts()),
            {"due": 0, "processing": 0, "dead": 0},
        )
        self.assertIsNone(self.redis.raw("delay:{jobs}:items"))  # emptied, so deleted
        self.assertIsNone(self.redis.raw("delay:{jobs}:attempts"))

    def test_running_handler_not_acked(self) -> None:
        """
        An item whose handler is still running is left out of the turn's
        settle call; it is acked (in a call of its own turn) once it
        finishes.
        """
        slow: Deferred[None] = Deferred()
        for i in range(3):
            self.successResultOf(self.queue.schedule(i, id=f"i{i}"))

        def handler(item: DelayedItem) -> Any:
            return slow if item.payload == 1 else None

        self.poller(handler)
        self.assertEqual(self.settles(), [[("i0", ""), ("i2", "")]])
        self.assertEqual(self.redis.raw("delay:{jobs}:processing"), {b"i1": 1030.0})
        self.assertIn(b"i1", self.redis.raw("delay:{jobs}:items"))
        slow.callback(None)
        self.assertEqual(len(self.settles()), 1)  # not before the end of the turn
        self.clock.advance(0)
        self.assertEqual(self.settles()[1:], [[("i1", "")]])
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 0)

    def test_acks_and_retries_settle_together(self) -> None:
        """
        Failures in the same turn as successes are retried (with their
        backoff) in the same settle call, in the order they settled; the
        poller wakes for the retry as before.
        """
        for i in range(3):
            self.successResultOf(self.queue.schedule(i, id=f"i{i}"))
        times: list[tuple[int, float]] = []

        def handler(item: DelayedItem) -> None:
            times.append((item.payload, self.clock.seconds()))
            if item.payload == 1:
                raise ValueError("boom")

        p = self.poller(handler)
        self.assertEqual(self.settles(), [[("i0", ""), ("i1", "1001.0"), ("i2", "")]])
        self.assertEqual((p.handled, p.failed), (2, 1))
        self.assertEqual(self.redis.raw("delay:{jobs}:due"), {b"i1": 1001.0})
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 0)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1001.0])
        self.clock.advance(1)
        self.assertEqual(times[3:], [(1, 1001.0)])
        self.assertEqual(self.got, [])

    def test_stop_sends_pending_outcomes(self) -> None:
        """
        Stopping before the end of the turn sends the pending outcomes at
        once: the stop fires once they are recorded, no timer is left.
        """
        for i in range(3):
            self.successResultOf(self.queue.schedule(i))
        p = self.held_claim()
        self.redis.flush()
        self.assertEqual(len(self.got), 3)
        self.assertEqual(self.settles(), [])
        self.redis.paused = True
        d = p.stopService()
        self.assertEqual(len(self.settles()), 1)
        self.assertNoResult(d)  # the settle reply is not in yet
        self.redis.flush()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(
            self.successResultOf(self.queue.counts()),
            {"due": 0, "processing": 0, "dead": 0},
        )

    def test_settle_failure_left_to_lease(self) -> None:
        """
        When the settle call fails (Redis down), that is logged once for the
        batch and the items stay claimed: their lease brings them back.
        """
        for i in range(3):
            self.successResultOf(self.queue.schedule(i))
        p = self.held_claim(error_delay=60.0)
        self.redis.flush()
        self.redis.error = ConnectionError("down")
        self.clock.advance(0)
        self.assertEqual(p.handled, 3)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)  # once for 3
        self.redis.error = None
        self.assertEqual(self.successResultOf(self.queue.counts())["processing"], 3)
        self.clock.advance(30)  # the poller wakes when the leases expire: claimed again
        self.assertEqual([i.attempts for i in self.got[3:]], [2, 2, 2])
        self.clock.advance(0)
        self.assertEqual(
            self.successResultOf(self.queue.counts()),
            {"due": 0, "processing": 0, "dead": 0},
        )

    def test_short_settle_reply_releases_every_item(self) -> None:
        """
        A settle reply that does not match the batch (never sent by the
        script, but a broken server could) is logged as a failure and every
        item's wait ends: the poller does not hang on them, and their
        leases bring them back.
        """
        for i in range(3):
            self.successResultOf(self.queue.schedule(i))
        p = self.held_claim(error_delay=60.0)
        self.redis.flush()
        self.patch(self.queue, "settle", lambda outcomes: succeed([True]))
        self.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(p.handled, 3)
        self.assertEqual(p._in_flight, set())

    def test_settle_flags(self) -> None:
        """
        C{settle} acks and retries in one call and says, for each, whether
        the item was still there / still claimed; C{ack} and C{retry} are
        settles of one outcome.
        """
        for name in ("a", "b", "c"):
            self.successResultOf(self.queue.schedule(name, id=name))
        self.successResultOf(self.queue.claim(2, lease=30))
        flags = self.successResultOf(
            self.queue.settle([("a", None), ("b", 5.0), ("c", 5.0), ("gone", None)])
        )
        self.assertEqual(flags, [True, True, False, False])
        self.assertEqual(self.redis.raw("delay:{jobs}:due"), {b"b": 1005.0, b"c": 1000.0})
        self.assertEqual(self.successResultOf(self.queue.settle([])), [])
        self.assertFalse(self.successResultOf(self.queue.retry("a", 1.0)))
        self.assertTrue(self.successResultOf(self.queue.ack("c")))
        self.assertEqual(self.redis.raw("delay:{jobs}:items"), {b"b": b'"b"'})
