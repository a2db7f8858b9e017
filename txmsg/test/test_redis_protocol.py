# -*- test-case-name: txmsg.test.test_redis_protocol -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis._protocol} with L{txmsg.redis.pubsub.PubSub} as the
router: RESP bytes in over StringTransport, callbacks and commands out.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis._protocol import _PIECE
from txmsg.redis.pubsub import PubSub
from txmsg.test._redis_fakes import (
    array,
    command,
    connect_pubsub,
)
from txmsg.testing import RecordingEvents


class PubSubProtocolTests(SynchronousTestCase):
    """
    Tests for L{PubSubProtocol} driven by L{PubSub}.
    """

    hiredis = True

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = RecordingEvents()
        self.pubsub = PubSub("redis://127.0.0.1:1/0", reactor=self.clock, events=self.events)
        self.received: list = []

    def connect(self):
        return connect_pubsub(self.pubsub, hiredis=self.hiredis, clock=self.clock)

    def feed(self, proto, data: bytes) -> None:
        proto.dataReceived(data)
        # the pure-Python parser finishes a chunk holding several replies on
        # the next reactor turn
        self.clock.advance(0)
        self.clock.advance(0)

    def test_subscribes_desired_on_connect(self) -> None:
        """
        A new connection subscribes every desired channel in one SUBSCRIBE
        and every pattern in one PSUBSCRIBE, after txredisapi's own
        connectionMade.
        """
        self.pubsub.subscribe("a", self.received.append)
        self.pubsub.subscribe("b", self.received.append)
        self.pubsub.psubscribe("p.*", self.received.append)
        proto, transport = self.connect()
        self.assertEqual(
            transport.value(),
            command("SUBSCRIBE", "a", "b") + command("PSUBSCRIBE", "p.*"),
        )
        self.assertTrue(proto._ready)

    def test_subscribe_while_connected(self) -> None:
        """
        A subscription added on a live connection is sent at once; a second
        callback on the same channel sends nothing more.
        """
        proto, transport = self.connect()
        self.assertEqual(transport.value(), b"")
        self.pubsub.subscribe("a", self.received.append)
        self.assertEqual(transport.value(), command("SUBSCRIBE", "a"))
        transport.clear()
        self.pubsub.subscribe("a", self.received.append)
        self.assertEqual(transport.value(), b"")

    def test_message_delivered(self) -> None:
        """
        A RESP C{message} reaches the channel's callback as a L{Message} with
        the payload as bytes (the default decoding).
        """
        self.pubsub.subscribe("chan", self.received.append)
        proto, _ = self.connect()
        self.feed(
            proto,
            array("subscribe", "chan", 1) + array("message", "chan", b"\x00\xffhi"),
        )
        self.assertEqual(len(self.received), 1)
        m = self.received[0]
        self.assertEqual(
            (m.channel, m.data, m.pattern, m.raw),
            ("chan", b"\x00\xffhi", None, b"\x00\xffhi"),
        )

    def test_numeric_payload_not_converted(self) -> None:
        """
        Channel C{"42"} and payload C{"00123"} arrive unchanged (txredisapi's
        default would give the int 123 and the int 42).
        """
        self.pubsub.subscribe("42", self.received.append, decode="text")
        proto, _ = self.connect()
        self.feed(proto, array("message", "42", "00123"))
        self.assertEqual(self.received[0].channel, "42")
        self.assertEqual(self.received[0].data, "00123")

    def test_pmessage_delivered(self) -> None:
        """
        A RESP C{pmessage} reaches the pattern's callback with the pattern and
        the actual channel.
        """
        self.pubsub.psubscribe("orders.*", self.received.append, decode="json")
        proto, _ = self.connect()
        self.feed(
            proto,
            array("psubscribe", "orders.*", 1)
            + array("pmessage", "orders.*", "orders.new", b'{"id": 7}'),
        )
        m = self.received[0]
        self.assertEqual((m.channel, m.data, m.pattern), ("orders.new", {"id": 7}, "orders.*"))

    def test_fast_path_and_shared_channel(self) -> None:
        """
        A channel with one subscription is delivered from the parse loop; a
        second subscription on it makes both receive every message (the
        router's path); a message for no subscription is counted unrouted.
        """
        first: list = []
        self.pubsub.subscribe("c", first.append)
        proto, _ = self.connect()
        self.feed(proto, array("message", "c", "1"))
        self.pubsub.subscribe("c", self.received.append)
        self.feed(proto, array("message", "c", "2") + array("message", "other", "x"))
        self.assertEqual([m.data for m in first], [b"1", b"2"])
        self.assertEqual([m.data for m in self.received], [b"2"])
        self.assertEqual(self.pubsub.stats["unrouted"], 1)
        self.assertIs(self.pubsub.channel_routes, self.pubsub._channels)

    def test_split_chunks(self) -> None:
        """
        Replies split across reads, and many replies in one read, are all
        delivered in order.
        """
        self.pubsub.subscribe("c", self.received.append)
        proto, _ = self.connect()
        data = b"".join(array("message", "c", str(i)) for i in range(50))
        for i in range(0, len(data), 7):
            self.feed(proto, data[i : i + 7])
        self.assertEqual([m.data for m in self.received], [str(i).encode() for i in range(50)])

    def test_whole_read_for_one_subscription(self) -> None:
        """
        A read holding only messages for a channel with one subscription
        is delivered in order as one batch (with hiredis).
        """
        sub = self.pubsub.subscribe("c", self.received.append)
        batches: list[int] = []
        deliver_batch = sub.deliver_batch

        def spy(raws: list[bytes], channels: list[bytes] | None = None) -> None:
            batches.append(len(raws))
            deliver_batch(raws, channels)

        sub.deliver_batch = spy  # type: ignore[method-assign]
        proto, _ = self.connect()
        self.feed(proto, b"".join(array("message", "c", str(i)) for i in range(20)))
        self.assertEqual([m.data for m in self.received], [str(i).encode() for i in range(20)])
        self.assertEqual(batches, [20] if self.hiredis else [])
        self.assertEqual(sub.stats["received"], 20)

    def test_big_read(self) -> None:
        """
        A read much larger than the parser's piece size (a subscriber that
        fell behind) is delivered whole and in order, replies straddling the
        pieces included, with a confirmation in the middle handled in turn.
        """
        sub = self.pubsub.subscribe("c", self.received.append)
        proto, _ = self.connect()
        first = b"".join(array("message", "c", "m%05d" % i + "x" * 57) for i in range(600))
        second = b"".join(array("message", "c", "n%05d" % i) for i in range(600))
        data = first + array("subscribe", "c", 1) + second
        self.assertGreater(len(data), 3 * _PIECE)
        self.feed(proto, data)
        expected = [b"m%05d" % i + b"x" * 57 for i in range(600)]
        expected += [b"n%05d" % i for i in range(600)]
        self.assertEqual([m.data for m in self.received], expected)
        self.assertTrue(sub.active)

    def test_whole_read_for_one_pattern(self) -> None:
        """
        A read holding only C{pmessage}s for a pattern with one
        subscription is delivered as one batch (with hiredis), each message
        with its channel and the pattern.
        """
        sub = self.pubsub.psubscribe("o.*", self.received.append)
        batches: list[int] = []
        deliver_batch = sub.deliver_batch

        def spy(raws: list[bytes], channels: Any = None) -> None:
            batches.append(len(raws))
            deliver_batch(raws, channels)

        sub.deliver_batch = spy  # type: ignore[method-assign]
        proto, _ = self.connect()
        self.feed(proto, b"".join(array("pmessage", "o.*", "o.%d" % i, str(i)) for i in range(20)))
        self.assertEqual(
            [(m.channel, m.data, m.pattern) for m in self.received],
            [("o.%d" % i, str(i).encode(), "o.*") for i in range(20)],
        )
        self.assertEqual(batches, [20] if self.hiredis else [])

    def test_mixed_read(self) -> None:
        """
        A read mixing channels, patterns, confirmations and other replies
        is delivered reply by reply, in order.
        """
        order: list[tuple[str, bytes]] = []
        self.pubsub.subscribe("a", lambda m: order.append(("a", m.data)))
        self.pubsub.subscribe("b", lambda m: order.append(("b", m.data)))
        self.pubsub.psubscribe("p.*", lambda m: order.append((m.channel, m.data)))
        proto, _ = self.connect()
        self.feed(
            proto,
            array("subscribe", "a", 1)
            + array("message", "a", "1")
            + array("message", "b", "2")
            + array("pmessage", "p.*", "p.x", "3")
            + array("message", "a", "4")
            + b":7\r\n"
            + array("message", "a", "5"),
        )
        self.assertEqual(order, [("a", b"1"), ("b", b"2"), ("p.x", b"3"), ("a", b"4"), ("a", b"5")])
        self.assertTrue(self.pubsub.subscriptions()[0].active)

    def test_data_only(self) -> None:
        """
        C{data_only=True} hands the callback the decoded payload alone, on
        every path; it cannot be combined with C{event=}.
        """
        self.pubsub.subscribe("c", self.received.append, data_only=True, decode="text")
        proto, _ = self.connect()
        self.feed(proto, array("message", "c", "one"))
        self.feed(proto, array("message", "c", "two") + array("message", "c", "three"))
        self.assertEqual(self.received, ["one", "two", "three"])
        self.assertRaises(ValueError, self.pubsub.subscribe, "d", event="e", data_only=True)

    def test_confirmation_activates(self) -> None:
        """
        C{when_active} fires only when Redis confirms the subscription, and
        the subscription goes inactive when the connection is lost.
        """
        sub = self.pubsub.subscribe("c", self.received.append)
        psub = self.pubsub.psubscribe("x*", self.received.append)
        d, pd = sub.when_active(), psub.when_active()
        proto, _ = self.connect()
        self.assertNoResult(d)
        self.feed(proto, array("subscribe", "c", 1))
        self.assertIs(self.successResultOf(d), sub)
        self.assertNoResult(pd)
        self.feed(proto, array("psubscribe", "x*", 2))
        self.assertIs(self.successResultOf(pd), psub)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(sub.active)
        self.assertFalse(psub.active)

    def test_reconnect_replays_subscriptions(self) -> None:
        """
        After the connection is lost, a new connection subscribes to every
        desired channel and pattern again, including ones added while
        disconnected and without ones cancelled, and messages flow again.
        """
        keep = self.pubsub.subscribe("keep", self.received.append)
        gone = self.pubsub.subscribe("gone", self.received.append)
        self.pubsub.psubscribe("p*", self.received.append)
        proto, transport = self.connect()
        self.feed(
            proto,
            array("subscribe", "keep", 1)
            + array("subscribe", "gone", 2)
            + array("psubscribe", "p*", 3),
        )
        proto.connectionLost(Failure(ConnectionDone()))
        gone.cancel()
        self.pubsub.subscribe("new", self.received.append)
        d = keep.when_active()

        proto2, transport2 = self.connect()
        self.assertEqual(
            transport2.value(),
            command("SUBSCRIBE", "keep", "new") + command("PSUBSCRIBE", "p*"),
        )
        self.feed(proto2, array("subscribe", "keep", 1) + array("subscribe", "new", 2))
        self.successResultOf(d)
        self.feed(
            proto2,
            array("message", "keep", "after") + array("pmessage", "p*", "pq", "pat"),
        )
        self.assertEqual([m.data for m in self.received], [b"after", b"pat"])

    def test_cancel_unsubscribes(self) -> None:
        """
        Cancelling the last subscription of a channel sends UNSUBSCRIBE (and
        PUNSUBSCRIBE for patterns); later messages for it are not delivered.
        """
        a1 = self.pubsub.subscribe("a", self.received.append)
        a2 = self.pubsub.subscribe("a", self.received.append)
        p = self.pubsub.psubscribe("p*", self.received.append)
        proto, transport = self.connect()
        transport.clear()
        a1.cancel()
        self.assertEqual(transport.value(), b"")
        a2.cancel()
        p.cancel()
        self.assertEqual(
            transport.value(),
            command("UNSUBSCRIBE", "a") + command("PUNSUBSCRIBE", "p*"),
        )
        self.feed(
            proto,
            array("unsubscribe", "a", 1)
            + array("punsubscribe", "p*", 0)
            + array("message", "a", "late"),
        )
        self.assertEqual(self.received, [])
        self.assertEqual(self.pubsub.stats["unrouted"], 1)

    def test_decode_failure_counted(self) -> None:
        """
        A payload that is not valid JSON is counted and logged; the next
        message is delivered normally.
        """
        sub = self.pubsub.subscribe("j", self.received.append, decode="json")
        proto, _ = self.connect()
        self.feed(proto, array("message", "j", b"{not json") + array("message", "j", b"[1]"))
        self.assertEqual([m.data for m in self.received], [[1]])
        self.assertEqual(sub.stats["decode_failures"], 1)
        self.assertEqual(len(self.flushLoggedErrors()), 1)

    def test_callback_error_isolated(self) -> None:
        """
        A callback that raises is logged and counted; other subscriptions and
        later messages are unaffected.
        """

        def broken(m):
            raise RuntimeError("boom")

        bad = self.pubsub.subscribe("c", broken)
        self.pubsub.subscribe("c", self.received.append)
        proto, _ = self.connect()
        self.feed(proto, array("message", "c", "1") + array("message", "c", "2"))
        self.assertEqual([m.data for m in self.received], [b"1", b"2"])
        self.assertEqual(bad.stats["callback_failures"], 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_event_route(self) -> None:
        """
        C{event=} dispatches each message to the event sink under that name
        with source C{redis:<channel>}.
        """
        self.pubsub.subscribe("news", event="news.received", decode="text")
        proto, _ = self.connect()
        self.feed(proto, array("message", "news", "hello"))
        (name, payload, source) = [e for e in self.events.events if e[0] == "news.received"][0]
        self.assertEqual((payload.data, source), ("hello", "redis:news"))

    def test_event_route_needs_sink(self) -> None:
        """
        C{event=} without an events sink is an immediate C{ValueError}.
        """
        pubsub = PubSub("redis://127.0.0.1:1/0", reactor=self.clock)
        self.assertRaises(ValueError, pubsub.subscribe, "c", event="x")

    def test_other_replies_reach_queue(self) -> None:
        """
        Replies that are not messages (e.g. PONG) still fire the command
        that waits for them.
        """
        proto, transport = self.connect()
        d = proto.ping()
        self.feed(proto, array("pong", ""))
        self.assertEqual(self.successResultOf(d), [b"pong", b""])

    def test_connect_hook(self) -> None:
        """
        Connect hooks run on every new connection.
        """
        calls = []
        self.pubsub.add_connect_hook(lambda: calls.append(1))
        self.connect()
        self.connect()
        self.assertEqual(calls, [1, 1])


class PurePythonPubSubProtocolTests(PubSubProtocolTests):
    """
    The same, with txredisapi's pure-Python reply parser instead of hiredis.
    """

    hiredis = False
