# -*- test-case-name: txmsg.test.test_amqp_reply -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.reply}, on L{txmsg.testing.MemoryBroker}.

The callers are real direct reply-to clients: a connection of their own
consuming on C{amq.rabbitmq.reply-to}, whose request gives the generated
reply name; a caller is gone once its channel is closed.
"""

from __future__ import annotations

from typing import Any, cast

from pika.spec import BasicProperties
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.reply import ReplySender, is_direct_reply_to
from txmsg.amqp.reply_to import reply_to_problem
from txmsg.testing import MemoryBroker
from txmsg.testing._amqp_channel import MemoryChannel
from txmsg.testing._amqp_queue import ClosableDeferredQueue

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: A name as RabbitMQ 3.10 generates it.
DIRECT = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAADdQAAAABrDlUS.3auFiRutTy+ox75kdhWHkQ=="


class _Caller:
    """An RPC caller using direct reply-to, on a connection of its own."""

    def __init__(self, test: SynchronousTestCase, broker: MemoryBroker) -> None:
        connection = broker.connect(None)
        self.channel: MemoryChannel = test.successResultOf(connection.channel())
        self.replies: ClosableDeferredQueue
        self.replies, _tag = test.successResultOf(
            self.channel.basic_consume(DIRECT_REPLY_TO, auto_ack=True)
        )
        self.channel.basic_publish(
            "", "requests", b"request", BasicProperties(reply_to=DIRECT_REPLY_TO)
        )
        request = broker.get("requests")
        assert request is not None
        #: the reply name the server sees in the request's C{reply_to}.
        self.name: str = request.properties.reply_to

    def received(self) -> list[bytes]:
        """The bodies of the replies that reached this caller."""
        return [m.body for m in self.replies.pending]

    def leave(self, clock: Clock) -> None:
        """Close the caller's channel (its consumer goes with it)."""
        self.channel.close()
        clock.advance(0)


class ReplySenderTests(SynchronousTestCase):
    """
    L{ReplySender} warns about a reply only when it was really lost.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("requests")
        self.broker.hold_confirms()
        self.svc = self.broker.connection()
        self.conn = self.broker.connect(self.svc)
        self.replies = self.svc.replies()
        self.warnings: list[str] = []
        observer = cast(ILogObserver, self.observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def observe(self, event: LogEvent) -> None:
        if event.get("log_namespace") == "txmsg.amqp.reply.ReplySender" and event[
            "log_level"
        ].name in ("warn", "error"):
            self.warnings.append(formatEvent(event))

    def caller(self) -> _Caller:
        return _Caller(self, self.broker)

    def publisher_channel(self) -> MemoryChannel:
        [channel] = [c for c in self.conn.channels if c.published]
        return channel

    def probes(self) -> list[tuple[str, Any]]:
        return [
            (kw["queue"], kw["passive"])
            for c in self.conn.channels
            for name, kw in c.calls
            if name == "queue_declare"
        ]

    def test_same_sender_per_connection(self) -> None:
        """
        C{AMQPConnection.replies()} is one sender per connection.
        """
        self.assertIsInstance(self.replies, ReplySender)
        self.assertIs(self.svc.replies(), self.replies)

    def test_direct_reply_to_is_not_mandatory(self) -> None:
        """
        A reply to a direct reply-to name is published without C{mandatory}
        (RabbitMQ up to 4.1 returns every such reply as NO_ROUTE although it
        delivered it), after a passive declare of the name has been sent;
        it reaches the caller and fires once confirmed.
        """
        caller = self.caller()
        d = self.replies.send(caller.name, b"{}", correlation_id="c1")
        self.assertEqual(self.probes(), [(caller.name, True)])
        channel = self.publisher_channel()
        [(exchange, key, body, props, mandatory)] = channel.published
        self.assertEqual((exchange, key, mandatory), ("", caller.name, False))
        self.assertEqual(props.correlation_id, "c1")
        self.assertNotEqual(props.delivery_mode, 2)
        self.assertEqual(caller.received(), [b"{}"])
        self.assertNoResult(d)
        self.broker.release_confirm()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.warnings, [])
        self.assertEqual(self.replies.lost, 0)

    def test_direct_reply_to_caller_gone(self) -> None:
        """
        When the passive declare of the reply name fails with 404 naming it,
        the caller had gone: one warning, and the next check opens a new
        channel.
        """
        caller = self.caller()
        caller.leave(self.clock)
        d = self.replies.send(caller.name, b"{}")
        self.broker.release_confirm()
        self.assertNoResult(d)
        self.clock.advance(0)  # the broker answers the declare: 404
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(
            self.warnings,
            ["Reply to {} was lost: the caller had gone before it was sent".format(caller.name)],
        )
        self.assertEqual(self.replies.lost, 1)
        self.assertEqual(caller.received(), [])
        channels = len(self.conn.channels)
        other = self.caller()
        d = self.replies.send(other.name, b"{}")
        self.broker.release_confirm()
        self.successResultOf(d)
        self.assertEqual(len(self.conn.channels), channels + 1)
        self.assertEqual(len(self.warnings), 1)
        self.assertEqual(other.received(), [b"{}"])

    def test_check_in_flight_is_shared(self) -> None:
        """
        Replies sent while a check of their name is in flight share it
        instead of sending one each, and wait for its answer.
        """
        caller = self.caller()
        d1 = self.replies.send(caller.name, b"1")
        self.broker.release_confirm()
        self.successResultOf(d1)
        self.broker.hold_replies("Queue.Declare")
        d2 = self.replies.send(caller.name, b"2")
        d3 = self.replies.send(caller.name, b"3")
        self.broker.release_confirms()
        self.assertEqual(len(self.probes()), 2)
        self.assertNoResult(d2)
        self.assertNoResult(d3)
        self.broker.release_replies("Queue.Declare")
        self.successResultOf(d2)
        self.successResultOf(d3)
        self.replies.send(caller.name, b"4")
        self.assertEqual(len(self.probes()), 3)
        self.assertEqual(self.warnings, [])
        self.assertEqual(caller.received(), [b"1", b"2", b"3", b"4"])

    def test_other_names_404_is_not_a_loss(self) -> None:
        """
        A channel closed by another name's 404 (or anything but a 404 for
        this name) does not count as a loss: checks in flight for a live
        caller and a gone one share the probe channel, which the gone
        name's 404 closes before the live name's check is answered.
        """
        gone, live = self.caller(), self.caller()
        gone.leave(self.clock)
        self.broker.hold_replies("Queue.Declare")
        d_gone = self.replies.send(gone.name, b"lost")
        d_live = self.replies.send(live.name, b"{}")
        self.assertEqual(self.probes(), [(gone.name, True), (live.name, True)])
        self.broker.release_confirms()
        self.clock.advance(0)  # the 404 for the gone name closes the probe channel
        self.successResultOf(d_gone)
        self.successResultOf(d_live)
        self.assertEqual(
            self.warnings,
            ["Reply to {} was lost: the caller had gone before it was sent".format(gone.name)],
        )
        self.assertEqual(self.replies.lost, 1)
        self.assertEqual(live.received(), [b"{}"])

    def test_ordinary_queue_returned(self) -> None:
        """
        A reply to an ordinary queue is mandatory; when the broker returns
        it, the queue is gone and the reply lost: one warning, no failure.
        """
        d = self.replies.send("replies-of-a-gone-client", b"{}")
        channel = self.publisher_channel()
        self.assertTrue(channel.published[0][4])
        self.assertNoResult(d)
        self.broker.release_confirm()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(
            self.warnings,
            ["Reply to replies-of-a-gone-client was lost: no such queue (the caller is gone)"],
        )
        self.assertEqual(self.probes(), [])

    def test_is_direct_reply_to(self) -> None:
        """
        Only generated direct reply-to names count, not the pseudo-queue
        itself or look-alikes.
        """
        self.assertTrue(is_direct_reply_to(DIRECT))
        self.assertTrue(is_direct_reply_to(self.caller().name))
        self.assertFalse(is_direct_reply_to(DIRECT_REPLY_TO))
        self.assertFalse(is_direct_reply_to("replies"))

    def test_forged_direct_name_never_sent(self) -> None:
        """
        A reply to a direct reply-to name that does not decode is neither
        probed nor published (RabbitMQ can close the whole connection on
        either): it is logged as lost.
        """
        name = "amq.rabbitmq.reply-to.garbage"
        self.assertIsNone(self.successResultOf(self.replies.send(name, b"{}")))
        self.assertEqual(self.probes(), [])
        self.assertEqual([c for c in self.conn.channels if c.published], [])
        self.assertEqual(self.replies.lost, 1)
        self.assertEqual(len(self.warnings), 1)


class ReplyToProblemTests(SynchronousTestCase):
    """
    L{reply_to_problem} accepts the names a broker generates and ordinary
    queue names, and refuses what the broker could choke on.
    """

    def test_generated_names(self) -> None:
        """
        Names as RabbitMQ generates them (3.10.8 here; both pid encodings)
        and ordinary queue names pass.
        """
        old_style = "amq.rabbitmq.reply-to.g2dkABByYWJiaXRAbG9jYWxob3N0AAABIwAAAAAD.a2V5a2V5a2V5a2V5a2V5aw=="
        for name in (DIRECT, old_style, "replies", "amq.gen-abc", "x" * 255):
            self.assertIsNone(reply_to_problem(name), name)

    def test_forged_names(self) -> None:
        """
        Direct reply-to names of any other shape are refused: one part, three
        parts, empty parts, bad base64, base64 of something not a pid, a pid
        with trailing bytes; and names longer than 255 bytes.
        """
        pid, key = DIRECT[len("amq.rabbitmq.reply-to.") :].split(".")
        forged = [
            "amq.rabbitmq.reply-to.garbage",
            "amq.rabbitmq.reply-to.abc.def",
            "amq.rabbitmq.reply-to.",
            "amq.rabbitmq.reply-to..",
            "amq.rabbitmq.reply-to.{}.".format(pid),
            "amq.rabbitmq.reply-to.{}.{}.{}".format(pid, key, key),
            "amq.rabbitmq.reply-to.{}.{}".format(key, key),
            "amq.rabbitmq.reply-to.{}.{}".format(pid[:-4], key),
            "amq.rabbitmq.reply-to.{}AAAA.{}".format(pid, key),
            "amq.rabbitmq.reply-to.{}.{}".format(pid, "k!y"),
            "amq.rabbitmq.reply-to.{}.{}".format(pid, "a" * 300),
            "x" * 256,
            "é" * 128,
            "",
        ]
        for name in forged:
            self.assertIsNotNone(reply_to_problem(name), name)
