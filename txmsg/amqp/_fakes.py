# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
In-memory fakes of pika's C{TwistedProtocolConnection} and C{TwistedChannel}
for deterministic tests (no sockets, no reactor).

They mimic the adapter's observable behaviour that txmsg relies on (see
L{txmsg.amqp.interfaces.IChannel}): Deferred-returning methods errback with the close reason
when the channel closes; C{basic_ack}/C{basic_nack}/C{channel()} raise
synchronously on a closed channel/connection; C{basic_consume} fires with a
closable queue that discards its buffer when closed; with confirms on, each
C{basic_publish} returns a Deferred resolved by the test (L{FakeChannel.ack},
L{FakeChannel.nack}, L{FakeChannel.return_message}).

Connect a fake to an L{txmsg.amqp.connection.AMQPConnection} with
L{FakeConnection.open}, which calls the same C{_protocol_ready} hook as the
real protocol; L{FakeConnection.lose} calls C{_protocol_lost}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from txmsg.testing._amqp_queue import ClosableDeferredQueue as FakeQueue
from txmsg.testing._amqp_queue import ReceivedMessage

__all__ = [
    "FakeChannel",
    "FakeConnection",
    "FakeQueue",
    "ReceivedMessage",
    "fake_service",
]


class _Frame:
    def __init__(self, method: Any) -> None:
        self.method = method


class FakeChannel:
    """
    A fake C{TwistedChannel}.

    @ivar calls: C{(method_name, kwargs)} for every call, in order.
    @ivar published: C{(exchange, routing_key, body, properties, mandatory)}
        tuples.
    @ivar acks: delivery tags acked; C{nacks}: C{(tag, requeue)} pairs.
    @ivar hold: method names whose Deferreds stay pending (fire them with
        L{release}).
    """

    def __init__(self, connection: FakeConnection, number: int) -> None:
        self.connection = connection
        self.channel_number = number
        self.calls: list = []
        self.published: list = []
        self.acks: list = []
        self.nacks: list = []
        self.hold: set = set()
        self.held: list = []
        self.on_closed: Deferred = Deferred()
        self.consumers: dict = {}
        self.is_open = True
        self.is_closing = False
        self._closed: Any = None
        self._calls: set = set()
        self._confirming = False
        self._unconfirmed: dict = {}
        self._publish_seq = 0
        self._delivery_tag = 0

    @property
    def is_closed(self) -> bool:
        """Whether the channel is closed."""
        return not self.is_open

    # -- Deferred-returning methods ------------------------------------

    def _call(self, name: str, result: Any, **kw: Any) -> Deferred:
        self.calls.append((name, kw))
        if self._closed is not None:
            return fail(self._closed)
        error = self.connection.channel_errors.get((name, kw.get("queue") or kw.get("exchange")))
        if error is not None:
            d: Deferred = Deferred()
            self._calls.add(d)
            self.close_by_broker(*error)
            return d
        if name in self.hold:
            d = Deferred()
            self._calls.add(d)
            self.held.append((d, result))
            return d
        return succeed(result)

    def release(self) -> None:
        """Fire every held Deferred with its result."""
        held, self.held = self.held, []
        for d, result in held:
            self._calls.discard(d)
            if not d.called:
                d.callback(result)

    def exchange_declare(self, exchange: str, **kw: Any) -> Deferred:
        """Record an exchange declaration."""
        return self._call("exchange_declare", _Frame(None), exchange=exchange, **kw)

    def queue_declare(self, queue: str, **kw: Any) -> Deferred:
        """Record a queue declaration; empty names get C{amq.gen-N}."""
        name = queue or self.connection.server_name()
        from pika import spec

        frame = _Frame(spec.Queue.DeclareOk(queue=name))
        return self._call("queue_declare", frame, queue=queue, **kw)

    def queue_bind(self, queue: str, exchange: str, **kw: Any) -> Deferred:
        """Record a binding."""
        return self._call("queue_bind", _Frame(None), queue=queue, exchange=exchange, **kw)

    def basic_qos(self, **kw: Any) -> Deferred:
        """Record QoS settings."""
        return self._call("basic_qos", _Frame(None), **kw)

    def confirm_delivery(self) -> Deferred:
        """Turn confirms on when the (possibly held) reply arrives."""
        d = self._call("confirm_delivery", None)

        def on(result: Any) -> Any:
            self._confirming = True
            return result

        return d.addCallback(on)

    def basic_consume(self, queue: str, auto_ack: bool = False, **kw: Any) -> Deferred:
        """Start a consumer; fires with C{(FakeQueue, consumer_tag)}."""
        tag = f"ctag{self.channel_number}.{len(self.consumers) + 1}"
        q = FakeQueue()
        d = self._call("basic_consume", (q, tag), queue=queue, auto_ack=auto_ack, **kw)

        def started(result: Any) -> Any:
            self.consumers[tag] = q
            return result

        return d.addCallback(started)

    def basic_cancel(self, consumer_tag: str = "") -> Deferred:
        """Cancel a consumer: its queue closes with C{ConsumerCancelled}."""
        self.cancel_consumer(consumer_tag)
        return self._call("basic_cancel", None, consumer_tag=consumer_tag)

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Any = None,
        mandatory: bool = False,
    ) -> Deferred:
        """Record a publish; with confirms on, return a pending Deferred."""
        if self.is_closing and self._closed is None:
            from pika.exceptions import ChannelWrongStateError

            raise ChannelWrongStateError("Channel is closing.")
        if self._closed is not None:
            return fail(self._closed)
        self.published.append((exchange, routing_key, body, properties, mandatory))
        if not self._confirming:
            return succeed(None)
        self._publish_seq += 1
        d: Deferred = Deferred()
        self._unconfirmed[self._publish_seq] = d
        return d

    # -- fire-and-forget methods -------------------------------------------

    def _check_open(self) -> None:
        if not self.is_open:
            from pika.exceptions import ChannelWrongStateError

            raise ChannelWrongStateError("Channel is closed.")

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Record an ack (raises on a closed channel, like pika)."""
        self._check_open()
        self.acks.append(delivery_tag)

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Record a nack (raises on a closed channel, like pika)."""
        self._check_open()
        self.nacks.append((delivery_tag, requeue))

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close by the client; completes at once unless C{"close"} is held."""
        self._check_open()
        self.is_closing = True
        self.calls.append(("close", {}))
        from pika.exceptions import ChannelClosedByClient

        if "close" not in self.hold:
            self._close(ChannelClosedByClient(reply_code, reply_text))

    # -- test controls --------------------------------------------------------

    def add_on_return_callback(self, callback: Any) -> None:
        """Accepted and ignored (returns are modelled by L{return_message})."""

    def unconfirmed(self) -> list:
        """The publish sequence numbers still waiting for a confirm."""
        return sorted(self._unconfirmed)

    def ack(self, seq: int | None = None, multiple: bool = False) -> None:
        """Confirm publish C{seq} (default: the oldest); C{multiple}: up to it."""
        from pika import spec

        seq = seq or min(self._unconfirmed)
        tags = [t for t in sorted(self._unconfirmed) if t <= seq] if multiple else [seq]
        for t in tags:
            self._unconfirmed.pop(t).callback(spec.Basic.Ack(delivery_tag=seq, multiple=multiple))

    def nack(self, seq: int | None = None) -> None:
        """Nack publish C{seq} (default: the oldest)."""
        from pika.exceptions import NackError

        seq = seq or min(self._unconfirmed)
        self._unconfirmed.pop(seq).errback(NackError([]))

    def return_message(self, seq: int | None = None, reply_code: int = 312) -> None:
        """Return publish C{seq} as unroutable (then acked, as RabbitMQ does)."""
        from pika import spec
        from pika.exceptions import UnroutableError

        seq = seq or min(self._unconfirmed)
        exchange, key, body, props, _ = self.published[seq - 1]
        method = spec.Basic.Return(reply_code, "NO_ROUTE", exchange, key)
        msg = ReceivedMessage(self, method, props, body)
        self._unconfirmed.pop(seq).errback(UnroutableError([msg]))

    def deliver(
        self,
        body: bytes,
        properties: Any = None,
        consumer_tag: str | None = None,
        redelivered: bool = False,
        routing_key: str = "",
        exchange: str = "",
    ) -> int:
        """Put a delivery into a consumer's queue; returns its delivery tag."""
        from pika import spec

        tag = consumer_tag or next(iter(self.consumers))
        self._delivery_tag += 1
        method = spec.Basic.Deliver(tag, self._delivery_tag, redelivered, exchange, routing_key)
        props = properties if properties is not None else spec.BasicProperties()
        self.consumers[tag].put(ReceivedMessage(self, method, props, body))
        return self._delivery_tag

    def cancel_consumer(self, consumer_tag: str) -> None:
        """The broker cancels a consumer (e.g. its queue was deleted)."""
        from pika.exceptions import ConsumerCancelled

        q = self.consumers.pop(consumer_tag, None)
        if q is not None:
            q.close(ConsumerCancelled())

    def close_by_broker(self, reply_code: int = 404, reply_text: str = "NOT_FOUND") -> None:
        """A channel error: the broker closes this channel."""
        from pika.exceptions import ChannelClosedByBroker

        self._close(ChannelClosedByBroker(reply_code, reply_text))

    def _close(self, reason: Any) -> None:
        if self._closed is not None:
            return
        self.is_open = False
        self.is_closing = False
        self._closed = reason
        calls, self._calls = self._calls, set()
        for d in calls:
            if not d.called:
                d.errback(reason)
        self.held = []
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        for d in unconfirmed.values():
            d.errback(reason)
        consumers, self.consumers = self.consumers, {}
        for q in consumers.values():
            q.close(reason)
        self.on_closed.callback(reason)


class _FakeImpl:
    def __init__(self) -> None:
        self.blocked: list = []
        self.unblocked: list = []

    def add_on_connection_blocked_callback(self, cb: Any) -> None:
        self.blocked.append(cb)

    def add_on_connection_unblocked_callback(self, cb: Any) -> None:
        self.unblocked.append(cb)


class FakeConnection:
    """
    A fake C{TwistedProtocolConnection}.

    @ivar channels: every channel opened, in order.
    @ivar channel_errors: C{{(method, queue_or_exchange): (code, text)}}:
        calls that make the broker close the channel.
    @ivar hold_channels: when true, C{channel()} Deferreds stay pending
        (in C{pending_channels}).
    """

    _names = 0

    def __init__(self, owner: Any = None) -> None:
        self.owner = owner
        self.channels: list[FakeChannel] = []
        self.channel_errors: dict = {}
        self.hold_channels = False
        self.pending_channels: list = []
        self.is_open = False
        self.close_calls = 0
        self.hold_close = False
        self._impl = _FakeImpl()

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed."""
        return not self.is_open

    def server_name(self) -> str:
        """A fresh broker-style server-generated queue name."""
        FakeConnection._names += 1
        return f"amq.gen-{FakeConnection._names}"

    def open(self) -> FakeConnection:
        """Become ready and tell the owner (like C{connectionReady})."""
        self.is_open = True
        if self.owner is not None:
            self.owner._protocol_ready(self)
        return self

    def channel(self, channel_number: int | None = None) -> Deferred:
        """Open a channel (raises on a closed connection, like pika)."""
        if not self.is_open:
            from pika.exceptions import ConnectionWrongStateError

            raise ConnectionWrongStateError("Connection is closed.")
        ch = FakeChannel(self, len(self.channels) + 1)
        self.channels.append(ch)
        if self.hold_channels:
            d: Deferred = Deferred()
            self.pending_channels.append((d, ch))
            return d
        return succeed(ch)

    def release_channels(self) -> None:
        """Fire held C{channel()} Deferreds."""
        pending, self.pending_channels = self.pending_channels, []
        for d, ch in pending:
            d.callback(ch)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Client close: completes at once unless C{hold_close}."""
        self.close_calls += 1
        if not self.hold_close and self.is_open:
            from pika.exceptions import ConnectionClosedByClient

            self.lose(ConnectionClosedByClient(reply_code, reply_text))

    def lose(self, reason: Any) -> None:
        """The connection is lost with C{reason}: every channel closes with it."""
        if not self.is_open:
            return
        self.is_open = False
        pending, self.pending_channels = self.pending_channels, []
        for d, _ in pending:
            d.errback(reason)
        for ch in self.channels:
            ch._close(reason)
        if self.owner is not None:
            self.owner._protocol_lost(self, Failure(reason))

    def open_channels(self) -> list:
        """The channels still open."""
        return [c for c in self.channels if c.is_open]


def fake_service(clock: Any = None, events: Any = None, **kw: Any) -> Any:
    """
    An L{txmsg.amqp.connection.AMQPConnection} on C{clock} (default: a new
    L{twisted.internet.task.Clock}) that is never started: drive it with
    L{FakeConnection}C{(owner=service).open()}.
    """
    from twisted.internet.task import Clock

    from txmsg.amqp.connection import AMQPConnection

    return AMQPConnection(
        "amqp://guest:secret@broker.example:5672/%2F",
        reactor=clock if clock is not None else Clock(),
        events=events,
        **kw,
    )
