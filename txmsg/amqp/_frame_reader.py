# -*- test-case-name: txmsg.test.test_amqp_frame_reader -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Reading what the broker sends on an open pika connection, with a short path
for consumer deliveries.

pika reads frame by frame: it decodes each frame into an object, copies the
rest of its buffer after each one, asks its callback manager about it, hands
it to the channel's content assembler and, on the third frame of a
delivery, calls the consumer.  A small delivery (method, content header and
body frames, which the broker writes one after the other) cost a quarter of
a worker's CPU for a no-op task there.

L{read_frames} does the same work with fewer steps: it walks the buffer by
offset, and when it finds a whole C{basic.deliver} for a consumer that pika
would call, it decodes the method and the properties into pika's own
C{Basic.Deliver} and C{BasicProperties} (the same values as pika's decoders
give: the tests compare them) and calls that consumer the way
C{Channel._on_deliver} does.
Everything else (and any delivery it is not sure about) goes through pika's
C{_process_frame}, one frame at a time, in order.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

from pika import frame as pika_frame
from pika import spec
from pika.channel import Channel
from pika.data import decode_table

_FRAME_HEADER = Struct(">BHI")  # type, channel, size
_CONTENT_HEADER = Struct(">HHQ")  # class, weight, body size
_DELIVER_ID = Struct(">I").pack(spec.Basic.Deliver.INDEX)
_FRAME_END = spec.FRAME_END
_METHOD = spec.FRAME_METHOD
_HEADER = spec.FRAME_HEADER
_BODY = spec.FRAME_BODY
_Deliver = spec.Basic.Deliver
_BasicProperties = spec.BasicProperties
_decode_frame = pika_frame.decode_frame
_OPEN = Channel.OPEN
#: Deliveries with bodies up to this size are waited for whole (from one
#: read to the next) and then handled on the short path; larger ones, whose
#: frames pika reads one by one as they arrive, take pika's path.
_WAIT_FOR = 128 * 1024
#: What L{_whole_delivery} returns when the rest of a delivery is still to come.
INCOMPLETE: Any = object()


def _short_string(encoded: bytes, offset: int) -> tuple[Any, int]:
    # pika.data.decode_short_string: text if it is UTF-8, else the bytes.
    length = encoded[offset]
    offset += 1
    value: Any = encoded[offset : offset + length]
    try:
        value = value.decode()
    except UnicodeDecodeError:
        pass
    return value, offset + length


_UNPACK_DELIVERY_TAG = Struct(">QB").unpack_from


def decode_deliver(payload: bytes) -> Any:
    """
    Decode the payload of a C{basic.deliver} method frame (its method id
    first) as pika's C{Basic.Deliver().decode(payload, 4)} does.
    """
    consumer_tag, offset = _short_string(payload, 4)
    delivery_tag, bits = _UNPACK_DELIVERY_TAG(payload, offset)
    exchange, offset = _short_string(payload, offset + 9)
    routing_key, offset = _short_string(payload, offset)
    return _Deliver(consumer_tag, delivery_tag, bool(bits & 1), exchange, routing_key)


_SHORT, _TABLE, _OCTET, _TIMESTAMP = range(4)
#: The properties of class basic, in the order of their flags.
_PROPERTY_FIELDS = tuple(
    (name, 1 << (15 - index), kind)
    for index, (name, kind) in enumerate(
        [
            ("content_type", _SHORT),
            ("content_encoding", _SHORT),
            ("headers", _TABLE),
            ("delivery_mode", _OCTET),
            ("priority", _OCTET),
            ("correlation_id", _SHORT),
            ("reply_to", _SHORT),
            ("expiration", _SHORT),
            ("message_id", _SHORT),
            ("timestamp", _TIMESTAMP),
            ("type", _SHORT),
            ("user_id", _SHORT),
            ("app_id", _SHORT),
            ("cluster_id", _SHORT),
        ]
    )
)
_NO_PROPERTIES: dict[str, Any] = {name: None for name, _flag, _kind in _PROPERTY_FIELDS}
_UNPACK_FLAGS = Struct(">H").unpack_from
_UNPACK_TIMESTAMP = Struct(">Q").unpack_from
#: Per flag word: the fields it announces, in order (messages of one kind
#: carry the same ones, so this stays small; it is bounded all the same).
_plans: dict[int, tuple[tuple[str, int], ...]] = {}


def _plan(flags: int) -> tuple[tuple[str, int], ...]:
    plan = tuple((name, kind) for name, flag, kind in _PROPERTY_FIELDS if flags & flag)
    if len(_plans) < 1024:
        _plans[flags] = plan
    return plan


def decode_properties(encoded: bytes) -> Any:
    """
    Decode the properties of a content header (what follows its class,
    weight and body size) as pika's C{BasicProperties().decode(encoded)}
    does, into a C{pika.BasicProperties}.
    """
    (flags,) = _UNPACK_FLAGS(encoded, 0)
    offset = 2
    if flags & 1:  # more flag words follow (none is defined: skipped, as pika does)
        shift = 16
        word = flags
        while word & 1:
            (word,) = _UNPACK_FLAGS(encoded, offset)
            offset += 2
            flags |= word << shift
            shift += 16
    plan = _plans.get(flags)
    if plan is None:
        plan = _plan(flags)
    values = _NO_PROPERTIES.copy()
    for name, kind in plan:
        if kind == _SHORT:
            values[name], offset = _short_string(encoded, offset)
        elif kind == _TABLE:
            values[name], offset = decode_table(encoded, offset)
        elif kind == _OCTET:
            values[name] = encoded[offset]
            offset += 1
        else:
            (values[name],) = _UNPACK_TIMESTAMP(encoded, offset)
            offset += 8
    properties = _BasicProperties.__new__(_BasicProperties)
    properties.__dict__ = values
    return properties


def read_frames(impl: Any, data: bytes) -> None:
    """
    Handle C{data} read from the socket of pika connection C{impl} (an open
    C{pika.connection.Connection}): what pika's C{_on_data_available}
    does, with the short path for deliveries.

    Frames are handled in the order they arrived.  A frame that is not
    complete yet waits in C{impl._frame_buffer} for the next read.  A frame
    is taken off the buffer before it is handled, so a handler's exception
    (which reaches the transport, as pika's would) does not handle it
    twice.  If handling a frame resets the connection's state (pika
    replaces its buffer when the connection closes), the rest is dropped,
    as pika does.
    """
    buf = impl._frame_buffer
    buf = buf + data if buf else data
    impl._frame_buffer = buf
    size = len(buf)
    pos = 0
    unpack_header = _FRAME_HEADER.unpack_from
    channels = impl._channels
    try:
        while size - pos >= 8:
            if buf[pos] == 65 and buf.startswith(b"AMQP", pos):
                end = pos + 8  # a protocol header: pika ignores it
            else:
                kind, number, length = unpack_header(buf, pos)
                end = pos + length + 8
                if end > size:
                    break
                if kind == _METHOD and buf[pos + 7 : pos + 11] == _DELIVER_ID:
                    delivery = _whole_delivery(channels.get(number), number, buf, pos, end, size)
                    if delivery is INCOMPLETE:
                        break  # the rest of it comes with the next read
                    if delivery is not None:
                        consumer, channel, method, properties, body, frames, pos_after = delivery
                        impl.frames_received += frames
                        impl.bytes_received += pos_after - pos
                        pos = pos_after
                        consumer(channel, method, properties, body)
                        if impl._frame_buffer is not buf:
                            return  # the connection was reset meanwhile
                        continue
            consumed, value = _decode_frame(buf[pos:end])
            pos = end
            impl.bytes_received += consumed
            impl._process_frame(value)
            if impl._frame_buffer is not buf:
                return
    finally:
        if impl._frame_buffer is buf:
            impl._frame_buffer = buf[pos:] if pos else buf


def _whole_delivery(
    channel: Any, number: int, buf: bytes, pos: int, end: int, size: int
) -> tuple | None:
    """
    The delivery whose method frame spans C{buf[pos:end]}, if all of it is
    in C{buf} and pika would hand it to a consumer as it is.

    @return: C{(consumer, channel, method, properties, body, frame count,
        end of its frames in buf)}; L{INCOMPLETE} if part of a delivery
        that is worth waiting for is still to come; or L{None} to let pika handle the
        method frame (and the rest of the delivery) itself: pika then does
        what it does with it (waits for the rest, rejects it for a
        cancelled consumer, raises for a malformed frame, ...).
    """
    if buf[end - 1] != _FRAME_END or channel is None or channel._state != _OPEN:
        return None
    if channel._content_assembler._method_frame is not None:
        return None
    # The content header.
    if size - end < 8:
        return INCOMPLETE
    kind, header_number, length = _FRAME_HEADER.unpack_from(buf, end)
    header_end = end + length + 8
    if kind != _HEADER or header_number != number or length < 14:
        return None
    if header_end > size:
        return INCOMPLETE if length <= _WAIT_FOR else None
    if buf[header_end - 1] != _FRAME_END:
        return None
    class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(buf, end + 7)
    if class_id != _BasicProperties.INDEX:
        return None
    # The body: as many frames as it takes.
    body_pos = header_end
    parts = []
    seen = 0
    while seen < body_size:
        if size - body_pos < 8:
            return INCOMPLETE if body_size <= _WAIT_FOR else None
        kind, body_number, length = _FRAME_HEADER.unpack_from(buf, body_pos)
        body_end = body_pos + length + 8
        if kind != _BODY or body_number != number:
            return None
        if body_end > size:
            return INCOMPLETE if body_size <= _WAIT_FOR else None
        if buf[body_end - 1] != _FRAME_END:
            return None
        parts.append(buf[body_pos + 7 : body_end - 1])
        seen += length
        body_pos = body_end
    if seen != body_size:
        return None  # too long: pika raises BodyTooLongError
    try:
        method = decode_deliver(buf[pos + 7 : end - 1])
        properties = decode_properties(buf[end + 19 : header_end - 1])
    except Exception:
        return None  # malformed: pika raises its own error
    tag = method.consumer_tag
    consumer = channel._consumers.get(tag)
    if consumer is None or tag in channel._cancelled:
        return None  # pika logs it, or rejects it
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    return consumer, channel, method, properties, body, 2 + len(parts), body_pos
