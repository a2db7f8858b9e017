# -*- test-case-name: txmsg.test.test_amqp_reply -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.reply}.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._fakes import FakeChannel, FakeConnection, fake_service
from txmsg.amqp.reply import ReplySender, is_direct_reply_to
from txmsg.amqp.reply_to import reply_to_problem

DIRECT = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAADdQAAAABrDlUS.3auFiRutTy+ox75kdhWHkQ=="


class ReplySenderTests(SynchronousTestCase):
    """
    L{ReplySender} warns about a reply only when it was really lost.
    """

    def setUp(self) -> None:
        self.svc = fake_service(Clock())
        self.conn = FakeConnection(self.svc).open()
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

    def publisher_channel(self) -> FakeChannel:
        [channel] = [c for c in self.conn.channels if c.published]
        return channel

    def probes(self) -> list[tuple[str, Any]]:
        return [
            (call[1]["queue"], call[1].get("passive"))
            for c in self.conn.channels
            for call in c.calls
            if call[0] == "queue_declare"
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
        delivered it), after a passive declare of the name has been sent.
        """
        d = self.replies.send(DIRECT, b"{}", correlation_id="c1")
        self.assertEqual(self.probes(), [(DIRECT, True)])
        channel = self.publisher_channel()
        [(exchange, key, body, props, mandatory)] = channel.published
        self.assertEqual((exchange, key, mandatory), ("", DIRECT, False))
        self.assertEqual(props.correlation_id, "c1")
        self.assertNotEqual(props.delivery_mode, 2)
        channel.ack()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.warnings, [])
        self.assertEqual(self.replies.lost, 0)

    def test_direct_reply_to_caller_gone(self) -> None:
        """
        When the passive declare of the reply name fails with 404 naming it,
        the caller had gone: one warning, and the next check opens a new
        channel.
        """
        self.conn.channel_errors[("queue_declare", DIRECT)] = (
            404,
            "NOT_FOUND - no queue '{}' in vhost '/'".format(DIRECT),
        )
        d = self.replies.send(DIRECT, b"{}")
        self.publisher_channel().ack()
        self.successResultOf(d)
        self.assertEqual(
            self.warnings,
            ["Reply to {} was lost: the caller had gone before it was sent".format(DIRECT)],
        )
        self.assertEqual(self.replies.lost, 1)
        del self.conn.channel_errors[("queue_declare", DIRECT)]
        channels = len(self.conn.channels)
        self.replies.send(DIRECT, b"{}")
        self.publisher_channel().ack()
        self.assertEqual(len(self.conn.channels), channels + 1)
        self.assertEqual(len(self.warnings), 1)

    def test_check_in_flight_is_shared(self) -> None:
        """
        Replies sent while a check of their name is in flight share it
        instead of sending one each, and wait for its answer.
        """
        self.replies.send(DIRECT, b"1")
        channel = self.publisher_channel()
        channel.ack()
        [probe] = [c for c in self.conn.channels if c is not channel]
        probe.hold.add("queue_declare")
        d2 = self.replies.send(DIRECT, b"2")
        d3 = self.replies.send(DIRECT, b"3")
        channel.ack()
        channel.ack()
        self.assertEqual(len(self.probes()), 2)
        self.assertNoResult(d2)
        probe.release()
        self.successResultOf(d2)
        self.successResultOf(d3)
        self.replies.send(DIRECT, b"4")
        self.assertEqual(len(self.probes()), 3)
        self.assertEqual(self.warnings, [])

    def test_other_names_404_is_not_a_loss(self) -> None:
        """
        A channel closed by another name's 404 (or anything but a 404 for
        this name) does not count as a loss.
        """
        self.conn.channel_errors[("queue_declare", DIRECT)] = (
            404,
            "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.other' in vhost '/'",
        )
        d = self.replies.send(DIRECT, b"{}")
        self.publisher_channel().ack()
        self.successResultOf(d)
        self.assertEqual(self.warnings, [])

    def test_ordinary_queue_returned(self) -> None:
        """
        A reply to an ordinary queue is mandatory; when the broker returns
        it, the queue is gone and the reply lost: one warning, no failure.
        """
        d = self.replies.send("replies-of-a-gone-client", b"{}")
        channel = self.publisher_channel()
        self.assertTrue(channel.published[0][4])
        channel.return_message()
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
        self.assertFalse(is_direct_reply_to("amq.rabbitmq.reply-to"))
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
