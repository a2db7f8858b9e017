# -*- test-case-name: txmsg.test.test_redis_delivery -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis._delivery.Subscription}: the delivery model.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis._delivery import Message, Subscription, SubscriptionCancelled


def _recording_slow_callback(calls: list[bytes], pending: list[Deferred[None]]):
    """
    A callback recording each message's data and returning a Deferred that
    the test fires (kept in C{pending}).
    """

    def cb(m: Message) -> Deferred[None]:
        calls.append(m.data)
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    return cb


class SubscriptionTests(SynchronousTestCase):
    """
    Tests for L{Subscription}.
    """

    def test_sync_callback(self) -> None:
        """
        A plain callback is called at once with a L{Message}.
        """
        got = []
        sub = Subscription("c", got.append)
        sub.deliver(b"c", b"x", None)
        self.assertEqual(got, [Message("c", b"x", None, b"x")])
        self.assertEqual(sub.stats["received"], 1)

    def test_deferred_keeps_order(self) -> None:
        """
        With the default concurrency of 1, a message waits until the
        previous callback's Deferred fires, then runs, in publish order.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []
        sub = Subscription("c", _recording_slow_callback(calls, pending))
        for i in range(3):
            sub.deliver("c", str(i).encode(), None)
        self.assertEqual(calls, [b"0"])
        self.assertEqual(sub.queued, 2)
        pending[0].callback(None)
        self.assertEqual(calls, [b"0", b"1"])
        pending[1].errback(RuntimeError("x"))
        self.assertEqual(calls, [b"0", b"1", b"2"])
        self.assertEqual(sub.stats["callback_failures"], 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_concurrency(self) -> None:
        """
        With C{concurrency=2}, two callbacks run at once and the third waits.
        """
        pending = []
        sub = Subscription("c", lambda m: pending.append(Deferred()) or pending[-1], concurrency=2)
        for _ in range(3):
            sub.deliver("c", b"m", None)
        self.assertEqual(len(pending), 2)
        pending[1].callback(None)
        self.assertEqual(len(pending), 3)

    def test_independent_subscriptions(self) -> None:
        """
        A slow callback on one subscription does not hold up another.
        """
        slow = Subscription("a", lambda m: Deferred())
        got = []
        fast = Subscription("b", got.append)
        slow.deliver("a", b"1", None)
        slow.deliver("a", b"2", None)
        fast.deliver("b", b"3", None)
        self.assertEqual([m.data for m in got], [b"3"])

    def test_bounded_queue(self) -> None:
        """
        Beyond C{max_queued} waiting messages, new ones are dropped and
        counted.
        """
        sub = Subscription("c", lambda m: Deferred(), max_queued=2)
        for _ in range(5):
            sub.deliver("c", b"m", None)
        self.assertEqual((sub.queued, sub.stats["dropped"]), (2, 2))

    def test_fired_deferreds_no_recursion(self) -> None:
        """
        Thousands of queued messages whose callbacks return already-fired
        Deferreds drain iteratively (no RecursionError).
        """
        gate = Deferred()
        got = []
        first = [True]

        def cb(m):
            if first[0]:
                first[0] = False
                return gate
            got.append(m)
            return _fired()

        sub = Subscription("c", cb, max_queued=10000)
        for _ in range(5001):
            sub.deliver("c", b"m", None)
        gate.callback(None)
        self.assertEqual(len(got), 5000)
        self.assertEqual(sub.queued, 0)

    def test_coroutine_callback(self) -> None:
        """
        A coroutine callback is run as a Deferred and holds the slot until
        it finishes (through C{deliver} and the fast path C{deliver_data}).
        """
        gate = Deferred()
        done = []

        async def cb(m):
            await gate
            done.append(m.data)

        sub = Subscription("c", cb)
        sub.deliver_data(b"1")
        sub.deliver("c", b"2", None)
        self.assertEqual(done, [])
        gate.callback(None)
        self.assertEqual(done, [b"1", b"2"])

    def test_decoders(self) -> None:
        """
        C{decode} selects bytes, text, JSON or a custom serializer; a text
        payload that is not UTF-8 is a counted decode failure.
        """
        got = []
        Subscription("c", got.append, decode="text").deliver("c", "é".encode(), None)
        Subscription("c", got.append, decode="json").deliver("c", b'{"a": 1}', None)
        bad = Subscription("c", got.append, decode="text")
        bad.deliver("c", b"\xff", None)
        self.assertEqual([m.data for m in got], ["é", {"a": 1}])
        self.assertEqual(bad.stats["decode_failures"], 1)
        self.flushLoggedErrors()

    def test_cancel(self) -> None:
        """
        Cancelling drops queued messages, fails C{when_active} waiters with
        L{SubscriptionCancelled}, calls the owner's hook once.
        """
        hooks = []
        sub = Subscription("c", lambda m: Deferred(), on_cancel=hooks.append)
        d = sub.when_active()
        sub.deliver("c", b"1", None)
        sub.deliver("c", b"2", None)
        sub.cancel()
        sub.cancel()
        self.failureResultOf(d, SubscriptionCancelled)
        self.failureResultOf(sub.when_active(), SubscriptionCancelled)
        self.assertEqual((sub.queued, hooks), (0, [sub]))

    def test_when_resubscribed(self) -> None:
        """
        C{when_resubscribed} fires on the next confirmation only (the one
        after a reconnect), and fails when the subscription is cancelled.
        """
        sub = Subscription("c", print)
        sub._confirmed()
        again = sub.when_resubscribed()
        self.assertNoResult(again)
        sub.active = False  # the connection was lost
        sub._confirmed()
        self.assertIs(self.successResultOf(again), sub)
        pending = sub.when_resubscribed()
        sub.cancel()
        self.failureResultOf(pending, SubscriptionCancelled)
        self.failureResultOf(sub.when_resubscribed(), SubscriptionCancelled)

    def test_rejects_bad_arguments(self) -> None:
        """
        A non-callable callback, a concurrency below 1 and an unknown decoder
        are immediate errors.
        """
        self.assertRaises(TypeError, Subscription, "c", "nope")
        self.assertRaises(ValueError, Subscription, "c", print, concurrency=0)
        self.assertRaises(LookupError, Subscription, "c", print, decode="yaml")


def _reentrant(got: list[Any], deliver_inner: Any) -> Any:
    """
    A callback recording each message's data that, on the message C{b"1"},
    delivers another message to its own subscription (C{deliver_inner()}).
    """

    def cb(m: Message) -> None:
        got.append(m.data)
        if m.data == b"1":
            deliver_inner()

    return cb


def _fired():
    d = Deferred()
    d.callback(None)
    return d


class DeliverDataTests(SynchronousTestCase):
    """
    Tests for L{Subscription.deliver_data}, the subscriber protocol's fast
    path: it must behave exactly like C{deliver(name, data, None)}.
    """

    def test_same_message(self) -> None:
        """
        A synchronous callback gets the same L{Message} as from C{deliver},
        and the counter moves.
        """
        got = []
        sub = Subscription(b"c", got.append)
        sub.deliver_data(b"x")
        sub.deliver(b"c", b"x", None)
        self.assertEqual(got, [Message("c", b"x", None, b"x")] * 2)
        self.assertIsInstance(got[0], Message)
        self.assertEqual(sub.stats["received"], 2)

    def test_order_with_deferred(self) -> None:
        """
        While a callback's Deferred is pending, further messages queue and
        run in order when it fires.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []
        sub = Subscription("c", _recording_slow_callback(calls, pending))
        for i in range(3):
            sub.deliver_data(str(i).encode())
        self.assertEqual((calls, sub.queued), ([b"0"], 2))
        while pending:
            pending.pop(0).callback(None)
        self.assertEqual(calls, [b"0", b"1", b"2"])

    def test_decoding_and_failures(self) -> None:
        """
        Decoding subscriptions take the general path; a raising callback is
        counted and logged, and the next message is delivered.
        """
        got = []
        Subscription("c", got.append, decode="json").deliver_data(b'{"a": 1}')
        self.assertEqual(got[0].data, {"a": 1})

        def boom(m):
            raise ValueError(m.data)

        bad = Subscription("c", boom)
        bad.deliver_data(b"1")
        bad.deliver_data(b"2")
        self.assertEqual(bad.stats["callback_failures"], 2)
        self.assertEqual(bad._in_flight, 0)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)


class DeliverBatchTests(SynchronousTestCase):
    """
    Tests for L{Subscription.deliver_batch}, the subscriber protocol's path
    for a read holding only messages for one subscription: it must behave
    exactly like calling L{Subscription.deliver_data} for each payload.
    """

    def test_same_messages(self) -> None:
        """
        Synchronous callbacks get the same L{Message}s, in order, as from
        C{deliver}; every message is counted once.
        """
        got: list[Message] = []
        sub = Subscription(b"c", got.append)
        sub.deliver_batch([b"1", b"2", b"3"])
        self.assertEqual(got, [Message("c", d, None, d) for d in (b"1", b"2", b"3")])
        self.assertIsInstance(got[0], Message)
        self.assertEqual((sub.stats["received"], sub._in_flight, sub.queued), (3, 0, 0))

    def test_deferred_mid_batch_queues_the_rest(self) -> None:
        """
        When a callback returns a pending Deferred, the rest of the batch
        waits in the queue and runs in order as the Deferreds fire.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []
        sub = Subscription("c", _recording_slow_callback(calls, pending))
        sub.deliver_batch([b"0", b"1", b"2", b"3"])
        self.assertEqual((calls, sub.queued), ([b"0"], 3))
        while pending:
            pending.pop(0).callback(None)
        self.assertEqual(calls, [b"0", b"1", b"2", b"3"])
        self.assertEqual((sub.stats["received"], sub._in_flight), (4, 0))

    def test_fired_deferreds_keep_going(self) -> None:
        """
        Callbacks returning already-fired Deferreds (or coroutines that
        finish at once) do not stop the batch.
        """
        calls: list[bytes] = []

        def cb(m: Message) -> Deferred[None]:
            calls.append(m.data)
            return _fired()

        sub = Subscription("c", cb)
        sub.deliver_batch([b"0", b"1", b"2"])
        self.assertEqual((calls, sub.queued, sub._in_flight), ([b"0", b"1", b"2"], 0, 0))

    def test_concurrency_and_bounded_queue(self) -> None:
        """
        With two slots, two callbacks run; the queue takes C{max_queued}
        more and the rest are dropped and counted.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []
        sub = Subscription(
            "c",
            _recording_slow_callback(calls, pending),
            concurrency=2,
            max_queued=1,
        )
        sub.deliver_batch([b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(calls, [b"0", b"1"])
        self.assertEqual((sub.queued, sub.stats["dropped"], sub.stats["received"]), (1, 2, 5))
        self.flushLoggedErrors()
        while pending:
            pending.pop(0).callback(None)
        self.assertEqual(calls, [b"0", b"1", b"2"])

    def test_raising_callback(self) -> None:
        """
        A callback that raises is logged and counted; the batch goes on.
        """
        got: list[bytes] = []

        def cb(m: Message) -> None:
            if m.data == b"bad":
                raise ValueError("bad")
            got.append(m.data)

        sub = Subscription("c", cb)
        sub.deliver_batch([b"1", b"bad", b"2"])
        self.assertEqual(got, [b"1", b"2"])
        self.assertEqual((sub.stats["callback_failures"], sub._in_flight), (1, 0))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_cancel_mid_batch(self) -> None:
        """
        A callback that cancels its subscription gets no further message
        from the batch.
        """
        got: list[bytes] = []
        sub: Subscription = Subscription("c", lambda m: (got.append(m.data), sub.cancel()))
        sub.deliver_batch([b"1", b"2", b"3"])
        self.assertEqual((got, sub.queued, sub.stats["received"]), ([b"1"], 0, 1))

    def test_reentrant_delivery_keeps_order(self) -> None:
        """
        A message delivered re-entrantly from inside a callback (an
        in-memory publisher, say) runs right after that callback, before
        the rest of the batch, and nothing is left stuck in the queue.
        """
        got: list[bytes] = []
        sub: Subscription = Subscription("c", _reentrant(got, lambda: sub.deliver_data(b"inner")))
        sub.deliver_batch([b"1", b"2", b"3"])
        self.assertEqual(got, [b"1", b"inner", b"2", b"3"])
        self.assertEqual((sub.queued, sub._in_flight), (0, 0))

    def test_busy_subscription(self) -> None:
        """
        A batch for a subscription that is still busy waits behind it.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []
        sub = Subscription("c", _recording_slow_callback(calls, pending))
        sub.deliver_data(b"0")
        sub.deliver_batch([b"1", b"2"])
        self.assertEqual((calls, sub.queued), ([b"0"], 2))
        while pending:
            pending.pop(0).callback(None)
        self.assertEqual(calls, [b"0", b"1", b"2"])

    def test_pattern_batch(self) -> None:
        """
        For a pattern subscription each message carries its own channel and
        the pattern, exactly as from C{deliver}; when a callback goes
        asynchronous the rest waits, channels included.
        """
        calls: list[Message] = []
        pending: list[Deferred[None]] = []

        def cb(m: Message) -> Any:
            calls.append(m)
            if m.data == b"2":
                d: Deferred[None] = Deferred()
                pending.append(d)
                return d
            return None

        sub = Subscription("o.*", cb, is_pattern=True)
        sub.deliver_batch([b"1", b"2", b"3"], [b"o.a", b"o.b", b"o.\xff"])
        expected = [
            Message("o.a", b"1", "o.*", b"1"),
            Message("o.b", b"2", "o.*", b"2"),
        ]
        self.assertEqual((calls, sub.queued), (expected, 1))
        pending.pop().callback(None)
        third = Message("o.\udcff", b"3", "o.*", b"3")
        self.assertEqual(calls, expected + [third])
        same: list[Message] = []
        Subscription("o.*", same.append, is_pattern=True).deliver(b"o.\xff", b"3", "o.*")
        self.assertEqual(same, [third])
        decoded: list[Message] = []
        Subscription("o.*", decoded.append, is_pattern=True, decode="json").deliver_batch(
            [b"[1]", b"2"], [b"o.a", b"o.b"]
        )
        self.assertEqual(
            [(m.channel, m.data, m.pattern) for m in decoded],
            [("o.a", [1], "o.*"), ("o.b", 2, "o.*")],
        )

    def test_decoding_subscription(self) -> None:
        """
        Decoding subscriptions decode every message of a batch; one that
        cannot be decoded is counted and dropped.
        """
        got: list[Message] = []
        sub = Subscription("c", got.append, decode="json")
        sub.deliver_batch([b"1", b"{", b"[2]"])
        self.assertEqual([m.data for m in got], [1, [2]])
        self.assertEqual(sub.stats["decode_failures"], 1)
        self.flushLoggedErrors()


class DataOnlyTests(SynchronousTestCase):
    """
    Tests for C{data_only=True}: the callback gets the payload alone.
    """

    def test_every_path_gives_the_payload(self) -> None:
        """
        C{deliver}, C{deliver_data} and C{deliver_batch} all call the
        callback with the (decoded) payload, in order.
        """
        got: list[object] = []
        sub = Subscription("c", got.append, data_only=True)
        sub.deliver(b"c", b"a", None)
        sub.deliver_data(b"b")
        sub.deliver_batch([b"c", b"d"])
        self.assertEqual(got, [b"a", b"b", b"c", b"d"])
        decoded: list[object] = []
        Subscription("c", decoded.append, decode="json", data_only=True).deliver_batch(
            [b'{"a": 1}', b"[2]"]
        )
        self.assertEqual(decoded, [{"a": 1}, [2]])

    def test_queued_payloads_and_failures(self) -> None:
        """
        Payloads wait in the queue like messages do; a failing callback is
        logged with the subscription's name.
        """
        calls: list[bytes] = []
        pending: list[Deferred[None]] = []

        def cb(data: bytes) -> Deferred[None]:
            calls.append(data)
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d

        sub = Subscription("c", cb, data_only=True)
        sub.deliver_batch([b"1", b"2"])
        pending.pop(0).errback(RuntimeError("x"))
        self.assertEqual(calls, [b"1", b"2"])
        self.assertEqual(sub.stats["callback_failures"], 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ReentrantDeliveryTests(SynchronousTestCase):
    """
    A message delivered from inside a synchronous callback is not left
    stuck in the queue once that callback returns.
    """

    def test_deliver_data(self) -> None:
        """
        Through the fast path.
        """
        got: list[bytes] = []
        sub: Subscription = Subscription("c", _reentrant(got, lambda: sub.deliver_data(b"inner")))
        sub.deliver_data(b"1")
        self.assertEqual((got, sub.queued), ([b"1", b"inner"], 0))

    def test_deliver(self) -> None:
        """
        Through the general path.
        """
        got: list[bytes] = []

        def cb(m: Message) -> None:
            got.append(m.data)
            if m.data == "1":
                sub.deliver("c", b"inner", None)

        sub = Subscription("c", cb, decode="text")
        sub.deliver("c", b"1", None)
        self.assertEqual((got, sub.queued), (["1", "inner"], 0))
