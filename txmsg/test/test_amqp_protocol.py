# -*- test-case-name: txmsg.test.test_amqp_protocol -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._protocol.CoalescingWriter} and how pika's protocol
uses it: what one read or one message makes pika write reaches the
transport as one write, in order.
"""

import os
from typing import Any

import pika
from pika import spec
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._protocol import CoalescingWriter, reason_preserving_protocol
from txmsg.amqp.url import parse_amqp_url
from txmsg.net.transport import WriteThroughReactor


class RecordingTransport(StringTransport):
    """A StringTransport that also keeps each C{write} separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class CoalescingWriterTests(SynchronousTestCase):
    """
    L{CoalescingWriter} queues while held and writes once when released.
    """

    def setUp(self) -> None:
        self.transport = RecordingTransport()
        self.writer = CoalescingWriter(self.transport)

    def test_not_held_writes_at_once(self) -> None:
        """
        A write while not held reaches the transport at once, unchanged.
        """
        self.writer.write(b"frame")
        self.assertEqual(self.transport.writes, [b"frame"])

    def test_held_writes_go_out_together(self) -> None:
        """
        Writes while held reach the transport as one write, in order, when
        the hold is released.
        """
        self.writer.hold()
        self.writer.write(b"a")
        self.writer.write(b"b")
        self.writer.write(b"c")
        self.assertEqual(self.transport.writes, [])
        self.writer.release()
        self.assertEqual(self.transport.writes, [b"abc"])

    def test_nested_holds(self) -> None:
        """
        Only the outermost release writes: a message's frames output during
        a read go out with the rest of the read.
        """
        self.writer.hold()
        self.writer.write(b"ack")
        self.writer.hold()
        self.writer.write(b"m")
        self.writer.write(b"h")
        self.writer.release()
        self.assertEqual(self.transport.writes, [])
        self.writer.write(b"ack2")
        self.writer.release()
        self.assertEqual(self.transport.writes, [b"ackmhack2"])

    def test_release_with_nothing_queued(self) -> None:
        """
        Releasing with nothing queued writes nothing.
        """
        self.writer.hold()
        self.writer.release()
        self.assertEqual(self.transport.writes, [])

    def test_lose_connection_flushes_first(self) -> None:
        """
        Closing hands over what is queued before the transport closes (pika
        writes Connection.Close, then disconnects).
        """
        self.writer.hold()
        self.writer.write(b"close")
        self.writer.loseConnection()
        self.assertEqual(self.transport.writes, [b"close"])
        self.assertTrue(self.transport.disconnecting)

    def test_other_attributes_are_the_transport_s(self) -> None:
        """
        Anything else pika asks of its transport is the real transport's.
        """
        self.assertEqual(self.writer.getPeer(), self.transport.getPeer())
        self.assertIs(self.writer.transport, self.transport)


class ProtocolWritesTests(SynchronousTestCase):
    """
    The reason-preserving protocol gives pika a L{CoalescingWriter}.
    """

    def connect(self):
        proto = reason_preserving_protocol()(pika.ConnectionParameters(), custom_reactor=Clock())
        transport = RecordingTransport()
        proto.makeConnection(transport)
        transport.writes.clear()  # the protocol header
        return proto, transport

    def test_message_frames_in_one_write(self) -> None:
        """
        A publish (method, header and body frames, output together by pika)
        is one write to the transport.
        """
        proto, transport = self.connect()
        proto._impl._output_marshaled_frames([b"method", b"header", b"body"])
        self.assertEqual(transport.writes, [b"methodheaderbody"])

    def test_read_frames_in_one_write(self) -> None:
        """
        Everything pika writes while it handles one read goes out in one
        write at the end of the read.
        """
        proto, transport = self.connect()
        impl = proto._impl

        def on_data(data: bytes) -> None:
            impl._output_marshaled_frames([b"ack1"])
            impl._output_marshaled_frames([b"m", b"h", b"b"])
            self.assertEqual(transport.writes, [])

        impl.data_received = on_data
        proto.dataReceived(b"deliveries")
        self.assertEqual(transport.writes, [b"ack1mhb"])

    def test_open_connection_reads_deliveries(self) -> None:
        """
        Once the connection is open, a read goes through the frame reader:
        deliveries reach their consumer, and the acks they cause go out as
        one write at the end of the read.
        """
        from pika.channel import Channel

        proto, transport = self.connect()
        impl = proto._impl
        impl.connection_state = impl.CONNECTION_OPEN
        channel = Channel(impl, 1, lambda _c: None)
        channel._set_state(channel.OPEN)
        impl._channels[1] = channel
        seen: list[bytes] = []

        def consumer(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            seen.append(body)
            ch.basic_ack(method.delivery_tag)

        channel._consumers["tag"] = consumer
        data = b""
        for n in (1, 2):
            data += pika.frame.Method(1, spec.Basic.Deliver("tag", n, False, "", "q")).marshal()
            data += pika.frame.Header(1, 1, spec.BasicProperties()).marshal()
            data += pika.frame.Body(1, b"%d" % n).marshal()
        proto.dataReceived(data)
        self.assertEqual(seen, [b"1", b"2"])
        acks = [pika.frame.Method(1, spec.Basic.Ack(n)).marshal() for n in (1, 2)]
        self.assertEqual(transport.writes, [b"".join(acks)])

    def test_real_frames(self) -> None:
        """
        pika's own frame output (a heartbeat) goes through the writer.
        """
        proto, transport = self.connect()
        proto._impl._send_frame(pika.frame.Heartbeat())
        self.assertEqual(len(transport.writes), 1)
        self.assertEqual(transport.writes[0][:1], bytes([spec.FRAME_HEARTBEAT]))


class EndpointTests(SynchronousTestCase):
    """
    AMQP connections use the write-through client transport when it applies.
    """

    def test_write_through_reactor(self) -> None:
        """
        The TCP endpoint of an C{amqp://} address connects through
        L{txmsg.net.transport.client_reactor}.
        """
        reactor = PosixReactorBase.__new__(EPollReactor)
        self.patch(os, "environ", {})
        address = parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/%2F")
        endpoint: Any = address.endpoint(reactor)
        self.assertIsInstance(endpoint._reactor, WriteThroughReactor)
        self.patch(os, "environ", {"TXMSG_WRITE_THROUGH": "0"})
        endpoint = address.endpoint(reactor)
        self.assertIs(endpoint._reactor, reactor)
