# -*- test-case-name: txmsg.test.test_amqp_frame_reader -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._frame_reader}: whatever the broker sends and however
the reads cut it, L{read_frames} has the same effect as pika's own reader:
the same consumer calls with the same values, in the same order, the same
frames sent back (rejects), the same counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pika
from pika import frame, spec
from pika.channel import Channel
from pika.exceptions import InvalidFrameError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._frame_reader import decode_deliver, decode_properties, read_frames
from txmsg.amqp._protocol import reason_preserving_protocol
from txmsg.test._optional import fuzz

CONSUMERS = {1: ("ctag-1", "ctag-1b"), 2: ("ctag-2",)}
CANCELLED = "ctag-cancelled"  # a consumer of channel 1 cancelled by the client
UNKNOWN = "ctag-unknown"


class Recorder:
    """
    A pika connection object, open, with channels 1 and 2 and their
    consumers, that records what reaches the consumers and what it sends.
    """

    def __init__(self) -> None:
        proto = reason_preserving_protocol()(pika.ConnectionParameters(), custom_reactor=Clock())
        impl = self.impl = proto._impl
        impl.connection_state = impl.CONNECTION_OPEN
        self.calls: list[tuple] = []
        self.sent: list[bytes] = []
        impl._output_marshaled_frames = self.sent.extend
        for number, tags in CONSUMERS.items():
            channel = Channel(impl, number, lambda _c: None)
            channel._set_state(channel.OPEN)
            impl._channels[number] = channel
            for tag in tags:
                channel._consumers[tag] = self.consumer
        impl._channels[1]._cancelled.add(CANCELLED)

    def consumer(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.calls.append(
            (
                channel.channel_number,
                type(method),
                dict(vars(method)),
                type(properties),
                dict(vars(properties)),
                body,
            )
        )

    def state(self) -> tuple:
        """What the reader did, to compare."""
        impl = self.impl
        return (self.calls, self.sent, impl.frames_received, impl.bytes_received)


def marshal_delivery(
    number: int,
    tag: str,
    delivery_tag: int,
    properties: Any,
    body: bytes,
    frame_size: int = 131072,
    redelivered: bool = False,
) -> list[bytes]:
    """The frames of one delivery, as the broker writes them."""
    frames = [
        frame.Method(
            number, spec.Basic.Deliver(tag, delivery_tag, redelivered, "ex", "key")
        ).marshal(),
        frame.Header(number, len(body), properties).marshal(),
    ]
    for start in range(0, len(body), frame_size):
        frames.append(frame.Body(number, body[start : start + frame_size]).marshal())
    return frames


TASK_PROPERTIES = spec.BasicProperties(
    content_type="application/json",
    message_id="0123456789abcdef",
    delivery_mode=2,
    headers={"x-attempts": 1, "nested": {"list": [1, "two"]}},
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """C{data} cut at C{cuts} (positions, in any order)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


class SameAsPika:
    """A mixin: compare L{read_frames} with pika's reader on one stream."""

    def assertSameAsPika(self, data: bytes, cuts: Sequence[int] = ()) -> Recorder:
        pika_side = Recorder()
        pika_side.impl._on_data_available(data)
        ours = Recorder()
        for piece in chunks(data, list(cuts)):
            read_frames(ours.impl, piece)
        self.assertEqual(ours.state(), pika_side.state())  # type: ignore[attr-defined]
        self.assertEqual(ours.impl._frame_buffer, pika_side.impl._frame_buffer)  # type: ignore[attr-defined]
        return ours


class ReadFramesTests(SameAsPika, SynchronousTestCase):
    """
    L{read_frames} against pika's reader, on streams written by hand.
    """

    def test_deliveries(self) -> None:
        """
        Deliveries reach their consumers with pika's method and properties
        objects and the body, in order.
        """
        data = b"".join(
            b"".join(marshal_delivery(number, tag, n, TASK_PROPERTIES, b"body %d" % n))
            for n, (number, tag) in enumerate(
                [(1, "ctag-1"), (2, "ctag-2"), (1, "ctag-1b"), (1, "ctag-1")], 1
            )
        )
        ours = self.assertSameAsPika(data)
        self.assertEqual(len(ours.calls), 4)
        self.assertEqual([call[0] for call in ours.calls], [1, 2, 1, 1])
        self.assertEqual(ours.calls[0][1], spec.Basic.Deliver)
        self.assertEqual(ours.calls[0][2]["delivery_tag"], 1)
        self.assertEqual(ours.calls[0][4]["headers"], TASK_PROPERTIES.headers)
        self.assertEqual(ours.calls[3][5], b"body 4")

    def test_every_cut(self) -> None:
        """
        However the reads cut a stream of deliveries, the result is the same.
        """
        data = b"".join(
            b"".join(marshal_delivery(1, "ctag-1", n, TASK_PROPERTIES, b"x" * n)) for n in range(3)
        )
        for cut in range(len(data) + 1):
            self.assertSameAsPika(data, [cut])
        for cut in range(0, len(data), 7):
            self.assertSameAsPika(data, list(range(cut % 13, len(data), 13)))

    def test_short_path(self) -> None:
        """
        Deliveries for consumers take the short path, cut or not: pika's
        per-frame handling is not called for them (it is for other frames,
        and for a body too large to wait for).
        """
        data = b"".join(
            b"".join(marshal_delivery(1, "ctag-1", n, TASK_PROPERTIES, b"x" * 40, frame_size=16))
            for n in range(1, 4)
        )
        for cuts in ([], [10], [30, 60, 200], list(range(0, len(data), 5))):
            ours = Recorder()
            handled: list[Any] = []
            ours.impl._process_frame = handled.append
            for piece in chunks(data, cuts):
                read_frames(ours.impl, piece)
            self.assertEqual((len(ours.calls), handled), (3, []))
        ours = Recorder()
        handled = []
        ours.impl._process_frame = handled.append
        read_frames(ours.impl, frame.Heartbeat().marshal())
        big = marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"x" * 200000)
        read_frames(ours.impl, b"".join(big)[:70000])
        self.assertEqual([type(f) for f in handled], [frame.Heartbeat, frame.Method, frame.Header])

    def test_empty_and_many_frame_bodies(self) -> None:
        """
        A delivery with no body frame, and one whose body takes several.
        """
        data = b"".join(
            marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"")
            + marshal_delivery(1, "ctag-1", 2, TASK_PROPERTIES, b"0123456789" * 5, frame_size=7)
        )
        ours = self.assertSameAsPika(data, [3, 50, 51, 120])
        self.assertEqual([call[5] for call in ours.calls], [b"", b"0123456789" * 5])

    def test_large_body_in_pieces(self) -> None:
        """
        A body larger than what is waited for whole arrives in many reads;
        pika assembles it, and what follows it is delivered after it.
        """
        big = bytes(range(256)) * 2000  # 512,000 bytes
        data = b"".join(
            marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, big)
            + marshal_delivery(1, "ctag-1", 2, TASK_PROPERTIES, b"after")
        )
        ours = self.assertSameAsPika(data, list(range(0, len(data), 65536)))
        self.assertEqual([call[5] for call in ours.calls], [big, b"after"])

    def test_interleaved_channels(self) -> None:
        """
        Frames of another channel between the frames of a delivery (the
        protocol allows it): pika's assembler handles that delivery.
        """
        one = marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"one")
        two = marshal_delivery(2, "ctag-2", 1, TASK_PROPERTIES, b"two")
        data = b"".join([one[0], two[0], one[1], two[1], two[2], one[2]])
        ours = self.assertSameAsPika(data, [5, 40])
        self.assertEqual([call[5] for call in ours.calls], [b"two", b"one"])

    def test_cancelled_and_unknown_consumers(self) -> None:
        """
        A delivery for a consumer the client cancelled is rejected (pika's
        rule), one for an unknown consumer is dropped; those around them
        are delivered.
        """
        data = b"".join(
            marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a")
            + marshal_delivery(1, CANCELLED, 2, TASK_PROPERTIES, b"b")
            + marshal_delivery(1, UNKNOWN, 3, TASK_PROPERTIES, b"c")
            + marshal_delivery(1, "ctag-1", 4, TASK_PROPERTIES, b"d")
        )
        ours = self.assertSameAsPika(data)
        self.assertEqual([call[5] for call in ours.calls], [b"a", b"d"])
        self.assertEqual(len(ours.sent), 1)  # the reject of delivery 2

    def test_other_frames(self) -> None:
        """
        Heartbeats, methods without content and a protocol header go to
        pika as they are, between the deliveries.
        """
        data = b"".join(
            [
                frame.Heartbeat().marshal(),
                *marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a"),
                frame.Method(1, spec.Basic.Ack(5, False)).marshal(),
                frame.ProtocolHeader().marshal(),
                *marshal_delivery(2, "ctag-2", 1, TASK_PROPERTIES, b"b"),
                frame.Method(2, spec.Basic.QosOk()).marshal(),
            ]
        )
        ours = self.assertSameAsPika(data, [1, 9, 30])
        self.assertEqual([call[5] for call in ours.calls], [b"a", b"b"])

    def test_channel_not_open(self) -> None:
        """
        On a channel that is closing, pika's reader decides.
        """
        data = b"".join(marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a"))
        pika_side = Recorder()
        pika_side.impl._channels[1]._set_state(Channel.CLOSING)
        pika_side.impl._on_data_available(data)
        ours = Recorder()
        ours.impl._channels[1]._set_state(Channel.CLOSING)
        read_frames(ours.impl, data)
        self.assertEqual(ours.state(), pika_side.state())

    def test_bad_frame_end(self) -> None:
        """
        A frame without its end marker fails as it does in pika, and what
        came before it was delivered.
        """
        good = b"".join(marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a"))
        bad = bytearray(b"".join(marshal_delivery(1, "ctag-1", 2, TASK_PROPERTIES, b"b")))
        bad[-1] = 0
        ours = Recorder()
        self.assertRaises(InvalidFrameError, read_frames, ours.impl, good + bytes(bad))
        self.assertEqual([call[5] for call in ours.calls], [b"a"])

    def test_consumer_raises(self) -> None:
        """
        A consumer's exception reaches the caller (the transport closes the
        connection, as with pika's reader); the delivery is off the buffer.
        """
        ours = Recorder()

        def boom(*args: Any) -> None:
            raise ZeroDivisionError()

        ours.impl._channels[1]._consumers["ctag-1"] = boom
        one = b"".join(marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a"))
        two = b"".join(marshal_delivery(2, "ctag-2", 1, TASK_PROPERTIES, b"b"))
        self.assertRaises(ZeroDivisionError, read_frames, ours.impl, one + two)
        self.assertEqual(ours.impl._frame_buffer, two)
        read_frames(ours.impl, b"")
        self.assertEqual([call[5] for call in ours.calls], [b"b"])

    def test_reset_while_reading(self) -> None:
        """
        When a consumer's call resets the connection's state (pika's close
        does), the rest of the read is dropped, as pika drops it.
        """
        for reader in ("pika", "ours"):
            side = Recorder()
            impl = side.impl

            def reset(*args: Any, impl: Any = impl, side: Recorder = side) -> None:
                side.consumer(*args)
                impl._init_connection_state()

            impl._channels[1]._consumers["ctag-1"] = reset
            data = b"".join(
                marshal_delivery(1, "ctag-1", 1, TASK_PROPERTIES, b"a")
                + marshal_delivery(2, "ctag-2", 1, TASK_PROPERTIES, b"b")
            )
            if reader == "pika":
                impl._on_data_available(data)
            else:
                read_frames(impl, data)
            self.assertEqual([call[5] for call in side.calls], [b"a"])
            self.assertEqual(impl._frame_buffer, b"")


def _properties(st: Any) -> Any:
    text = st.one_of(st.text(max_size=20), st.binary(max_size=20).map(bytes))
    table_value = st.one_of(st.integers(-(2**31), 2**31 - 1), st.text(max_size=10), st.booleans())
    optional = st.none
    return st.builds(
        spec.BasicProperties,
        content_type=st.one_of(optional(), st.text(max_size=30)),
        content_encoding=st.one_of(optional(), st.text(max_size=10)),
        headers=st.one_of(
            optional(), st.dictionaries(st.text(max_size=8), table_value, max_size=4)
        ),
        delivery_mode=st.one_of(optional(), st.integers(1, 2)),
        priority=st.one_of(optional(), st.integers(0, 255)),
        correlation_id=st.one_of(optional(), text),
        reply_to=st.one_of(optional(), st.text(max_size=30)),
        expiration=st.one_of(optional(), st.text(max_size=10)),
        message_id=st.one_of(optional(), text),
        timestamp=st.one_of(optional(), st.integers(0, 2**63)),
        type=st.one_of(optional(), st.text(max_size=10)),
        user_id=st.one_of(optional(), st.text(max_size=10)),
        app_id=st.one_of(optional(), st.text(max_size=10)),
        cluster_id=st.one_of(optional(), st.text(max_size=10)),
    )


def _encoded_properties(properties: Any) -> bytes:
    return b"".join(properties.encode())


def _outcome(decode: Any, data: bytes) -> Any:
    try:
        value = decode(data)
    except Exception as e:
        return type(e)
    return type(value), vars(value)


class DecoderTests(SynchronousTestCase):
    """
    The method and property decoders agree with pika's on any input.
    """

    @fuzz(_properties)
    def test_properties(self, properties: Any) -> None:
        """
        Any properties pika encodes decode as pika decodes them.
        """
        encoded = _encoded_properties(properties)
        self.assertEqual(
            vars(decode_properties(encoded)), vars(spec.BasicProperties().decode(encoded))
        )

    @fuzz(lambda st: st.binary(max_size=80))
    def test_properties_any_bytes(self, data: bytes) -> None:
        """
        On any bytes, both decode the same values or both fail.
        """
        mine = _outcome(decode_properties, data)
        theirs = _outcome(lambda d: spec.BasicProperties().decode(d), data)
        if isinstance(theirs, tuple):
            self.assertEqual(mine, theirs)
        else:
            self.assertIsInstance(mine, type)  # failed too (the error may differ)

    @fuzz(
        lambda st: st.text(max_size=255),
        lambda st: st.integers(0, 2**64 - 1),
        lambda st: st.booleans(),
        lambda st: st.text(max_size=40),
        lambda st: st.text(max_size=40),
    )
    def test_deliver(
        self, tag: str, delivery_tag: int, redelivered: bool, exchange: str, key: str
    ) -> None:
        """
        Any C{basic.deliver} pika encodes decodes as pika decodes it.
        """
        method = spec.Basic.Deliver(tag, delivery_tag, redelivered, exchange, key)
        payload = frame.Method(1, method).marshal()[7:-1]
        self.assertEqual(
            _outcome(decode_deliver, payload),
            _outcome(lambda p: spec.Basic.Deliver().decode(p, 4), payload),
        )

    @fuzz(lambda st: st.binary(max_size=60))
    def test_deliver_any_bytes(self, data: bytes) -> None:
        """
        On any bytes, both decode the same values or both fail.
        """
        payload = spec.Basic.Deliver.INDEX.to_bytes(4, "big") + data
        mine = _outcome(decode_deliver, payload)
        theirs = _outcome(lambda p: spec.Basic.Deliver().decode(p, 4), payload)
        if isinstance(theirs, tuple):
            self.assertEqual(mine, theirs)
        else:
            self.assertIsInstance(mine, type)


def _stream(st: Any) -> Any:
    """A broker's stream: deliveries on two channels, other frames, cuts."""
    delivery = st.tuples(
        st.sampled_from(
            [(1, "ctag-1"), (1, "ctag-1b"), (2, "ctag-2"), (1, CANCELLED), (2, UNKNOWN)]
        ),
        _properties(st),
        st.binary(max_size=300),
        st.integers(1, 400),  # body frame size
        st.booleans(),
    )
    other = st.sampled_from(
        [
            frame.Heartbeat().marshal(),
            frame.Method(1, spec.Basic.Ack(1, False)).marshal(),
            frame.Method(2, spec.Basic.QosOk()).marshal(),
        ]
    )
    return st.tuples(
        st.lists(st.one_of(delivery, other), max_size=12),
        st.lists(st.integers(0, 100000), max_size=12),
        st.booleans(),
    )


class FuzzedStreamTests(SameAsPika, SynchronousTestCase):
    """
    Generated streams, cut anywhere: the same effect as pika's reader.
    """

    @fuzz(_stream, examples=400)
    def test_same_as_pika(self, stream: Any) -> None:
        items, cuts, interleave = stream
        per_channel: dict[int, list[bytes]] = {1: [], 2: []}
        frames: list[bytes] = []
        for n, item in enumerate(items, 1):
            if isinstance(item, bytes):
                frames.append(item)
                continue
            (number, tag), properties, body, size, redelivered = item
            marshaled = marshal_delivery(number, tag, n, properties, body, size, redelivered)
            if interleave:
                per_channel[number].extend(marshaled)
            else:
                frames.extend(marshaled)
        # Interleaved: the two channels' frames alternate (each in order).
        ones, twos = per_channel[1], per_channel[2]
        for i in range(max(len(ones), len(twos))):
            frames.extend(ones[i : i + 1] + twos[i : i + 1])
        self.assertSameAsPika(b"".join(frames), cuts)
