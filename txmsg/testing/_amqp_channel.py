# -*- test-case-name: txmsg.test.test_testing,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A pika C{TwistedChannel} look-alike on the in-memory broker: the methods
txmsg calls, with pika 1.4.4's observable behaviour (see L{txmsg.amqp.interfaces.IChannel}):
Deferreds that errback with the close reason, C{basic_ack}/C{basic_nack}
raising on a closed channel, consumer queues closed with
C{ConsumerCancelled}, publisher confirms firing with C{Basic.Ack} or failing
with C{NackError}/C{UnroutableError}, and channel errors (404, 405, 406)
closing the channel with C{ChannelClosedByBroker}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pika import spec
from pika.exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    ConsumerCancelled,
    NackError,
    UnroutableError,
)
from pika.spec import BasicProperties
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from txmsg.amqp.interfaces import IChannel
from txmsg.testing._amqp_control import ChannelRecord, recorded
from txmsg.testing._amqp_exchange_bind import ExchangeBindings
from txmsg.testing._amqp_queue import ReceivedMessage, _Consumer, _Frame
from txmsg.testing._amqp_state import DIRECT_REPLY_TO, BrokerError, BrokerMessage

__all__ = ["MemoryChannel"]


@implementer(IChannel)
class MemoryChannel(ExchangeBindings, ChannelRecord):
    """
    A C{TwistedChannel} on a L{txmsg.testing.MemoryBroker} connection; what
    its client sent is in C{calls}, C{published}, C{acks}, C{nacks} and
    C{deliveries} (see L{ChannelRecord}).
    """

    def __init__(self, connection: Any, number: int) -> None:
        super().__init__()
        self._conn = connection
        self._broker = connection.broker
        self.channel_number = number
        self.on_closed: Deferred = Deferred()
        self._closed: Any = None
        self._closing = False
        self._prefetch = 0
        self._confirming = False
        #: In transaction mode: what waits for the commit, in order.
        self._tx: list[Callable[[], object]] | None = None
        self._return_callbacks: list[Callable[[Any], object]] = []
        self._seq = 0
        self._tag = 0
        self._unconfirmed: dict[int, Deferred] = {}
        self._unacked: dict[int, tuple] = {}
        self._consumers: dict[str, _Consumer] = {}

    # -- state ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the channel is open."""
        return self._closed is None and not self._closing

    @property
    def is_closed(self) -> bool:
        """Whether the channel is closed."""
        return self._closed is not None

    @property
    def is_closing(self) -> bool:
        """Whether a close is in progress."""
        return self._closing and self._closed is None

    @property
    def consumer_tags(self) -> list:
        """Active consumer tags."""
        return list(self._consumers)

    def _run(self, fn: Any, *args: Any, **kw: Any) -> Deferred:
        if self._closed is not None:
            return fail(self._closed)
        try:
            result = fn(*args, **kw)
        except BrokerError as e:
            d: Deferred = Deferred()
            self._conn.clock.callLater(0, self._broker_close, e, [d])
            return d
        return succeed(result)

    # -- declarations ----------------------------------------------------------

    @recorded
    def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict | None = None,
    ) -> Deferred:
        """Declare an exchange."""
        return self._run(
            lambda: _Frame(
                self._broker.declare_exchange(
                    exchange, exchange_type, durable, auto_delete, internal, arguments, passive
                )
            )
        )

    @recorded
    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> Deferred:
        """Delete an exchange."""
        return self._run(lambda: _Frame(self._broker.delete_exchange(exchange or "")))

    @recorded
    def queue_declare(
        self,
        queue: str,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict | None = None,
    ) -> Deferred:
        """Declare a queue; fires with a frame whose C{method} is C{Queue.DeclareOk}."""

        def declare() -> Any:
            if queue.startswith(DIRECT_REPLY_TO):
                self._broker.check_reply_to(queue)
                return _Frame(spec.Queue.DeclareOk(queue, 0, 1))
            q = self._broker.declare_queue(
                queue, durable, exclusive, auto_delete, arguments, self._conn, passive
            )
            return _Frame(spec.Queue.DeclareOk(q.name, len(q.ready), len(q.consumers)))

        return self._run(declare)

    @recorded
    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str | None = None,
        arguments: dict | None = None,
    ) -> Deferred:
        """Bind a queue."""
        return self._run(
            lambda: _Frame(
                self._broker.bind(
                    queue,
                    exchange,
                    routing_key if routing_key is not None else queue,
                    arguments,
                    self._conn,
                )
            )
        )

    @recorded
    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str | None = None,
        arguments: dict | None = None,
    ) -> Deferred:
        """Unbind a queue."""
        return self._run(
            lambda: _Frame(
                self._broker.unbind(
                    queue,
                    exchange or "",
                    routing_key if routing_key is not None else queue,
                    arguments,
                )
            )
        )

    @recorded
    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False) -> Deferred:
        """Delete a queue."""

        return self._run(lambda: _Frame(spec.Queue.DeleteOk(self._broker.delete_queue(queue))))

    @recorded
    def queue_purge(self, queue: str) -> Deferred:
        """Drop a queue's ready messages."""

        def purge() -> Any:
            q = self._broker.queue(queue, self._conn)
            n = len(q.ready)
            q.ready.clear()
            return _Frame(spec.Queue.PurgeOk(n))

        return self._run(purge)

    @recorded
    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False
    ) -> Deferred:
        """Set the prefetch of consumers started after this call."""

        def qos() -> Any:
            self._prefetch = prefetch_count
            return _Frame(None)

        return self._run(qos)

    @recorded
    def confirm_delivery(self) -> Deferred:
        """Turn publisher confirms on."""

        def on() -> Any:
            self._confirming = True
            return _Frame(None)

        return self._run(on)

    @recorded
    def tx_select(self) -> Deferred:
        """
        Turn transaction mode on: publishes, acks and nacks then take
        effect at L{tx_commit}.
        """

        def on() -> Any:
            if self._confirming:
                raise BrokerError(
                    406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
                )
            if self._tx is None:
                self._tx = []
            return _Frame(None)

        return self._run(on)

    @recorded
    def tx_commit(self) -> Deferred:
        """
        Apply what was sent since the last commit, in order (returned
        mandatory publishes go to the return callbacks first, as RabbitMQ
        sends C{basic.return} before C{tx.commit-ok}).
        """

        def commit() -> Any:
            if self._tx is None:
                raise BrokerError(406, "PRECONDITION_FAILED - channel is not transactional")
            ops, self._tx = self._tx, []
            for op in ops:
                op()
            return _Frame(None)

        return self._run(commit)

    # -- consuming -------------------------------------------------------------

    @recorded
    def basic_consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: dict | None = None,
    ) -> Deferred:
        """Start a consumer; fires with C{(queue, consumer_tag)}."""
        tag = consumer_tag or "ctag{}.{}".format(self.channel_number, self._conn.next_id())

        def consume() -> Any:
            if queue == DIRECT_REPLY_TO:
                if not auto_ack:
                    raise BrokerError(
                        406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"
                    )
                c = _Consumer(self, queue, tag, True, 0)
                self._consumers[tag] = c
                self._reply_consumer = c
                return (c.buffer, tag)
            q = self._broker.queue(queue, self._conn)
            if (
                exclusive
                and q.consumers
                or any(getattr(x, "exclusive", False) for x in q.consumers)
            ):
                raise BrokerError(
                    403, f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
                )
            c = _Consumer(self, queue, tag, auto_ack, self._prefetch)
            c.exclusive = exclusive  # type: ignore[attr-defined]
            self._consumers[tag] = c
            q.consumers.append(c)
            q.had_consumer = True
            self._broker.kick(queue)
            return (c.buffer, tag)

        return self._run(consume)

    @recorded
    def basic_cancel(self, consumer_tag: str = "") -> Deferred:
        """Cancel a consumer (its buffer is dropped; unacked stay unacked)."""
        c = self._consumers.get(consumer_tag)
        if c is not None:
            self._drop_consumer(c, broker=False)
        return self._run(lambda: _Frame(None))

    def _drop_consumer(self, c: _Consumer, broker: bool) -> None:

        self._detach_consumer(c, auto_delete=not broker)
        c.buffer.close(ConsumerCancelled())

    def _detach_consumer(self, c: _Consumer, auto_delete: bool) -> None:
        self._consumers.pop(c.tag, None)
        if c.queue == DIRECT_REPLY_TO:
            self._broker.forget_reply_to(c)
        q = self._broker._queues.get(c.queue)
        if q is not None and c in q.consumers:
            q.consumers.remove(c)
            if auto_delete and q.auto_delete and q.had_consumer and not q.consumers:
                self._broker.delete_queue(q.name)

    def _deliver(self, c: _Consumer, msg: BrokerMessage) -> None:

        self._tag += 1
        if not c.auto_ack:
            c.unacked += 1
            self._unacked[self._tag] = (c, msg)
            q = self._broker._queues.get(c.queue)
            if q is not None:
                q.unacked += 1
        method = spec.Basic.Deliver(
            c.tag, self._tag, msg.redelivered, msg.exchange, msg.routing_key
        )
        delivery = ReceivedMessage(self, method, msg.properties, msg.body)
        self.deliveries.append(delivery)
        c.buffer.put(delivery)

    def _check_open(self) -> None:
        if self._closed is not None or self._closing:
            raise ChannelWrongStateError("Channel is closed.")

    def _settle(self, delivery_tag: int, multiple: bool) -> list:
        if multiple:
            tags = [t for t in sorted(self._unacked) if t <= delivery_tag or not delivery_tag]
        else:
            tags = [delivery_tag] if delivery_tag in self._unacked else []
        if not tags:
            err = BrokerError(406, f"PRECONDITION_FAILED - unknown delivery tag {delivery_tag}")
            self._conn.clock.callLater(0, self._broker_close, err, [])
            return []
        out = []
        for t in tags:
            c, msg = self._unacked.pop(t)
            c.unacked -= 1
            q = self._broker._queues.get(c.queue)
            if q is not None:
                q.unacked -= 1
            out.append((c, msg, q))
            self._broker.kick(c.queue)
        return out

    @recorded
    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Ack (raises C{ChannelWrongStateError} on a closed channel, like pika)."""
        self._check_open()
        if self._tx is not None:
            self._tx.append(lambda: self._ack(delivery_tag, multiple))
        else:
            self._ack(delivery_tag, multiple)

    def _ack(self, delivery_tag: int, multiple: bool) -> None:
        self._conn.broker.acked += len(self._settle(delivery_tag, multiple))

    @recorded
    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Nack: requeue (redelivered) or dead-letter."""
        self._check_open()
        if self._tx is not None:
            self._tx.append(lambda: self._nack(delivery_tag, multiple, requeue))
        else:
            self._nack(delivery_tag, multiple, requeue)

    def _nack(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        for _channel, msg, q in self._settle(delivery_tag, multiple):
            if q is None:
                continue
            if requeue:
                self._broker.requeue(q.name, [msg])
            else:
                self._broker.dead_letter(q, msg, "rejected")

    @recorded
    def basic_get(self, queue: str, auto_ack: bool = False) -> Deferred:
        """
        Take the head message of C{queue}: fires with it (as pika's
        C{ReceivedMessage}, the method a C{Basic.GetOk}), or with L{None}
        when the queue has no ready message.
        """

        def get() -> Any:
            q = self._broker.queue(queue, self._conn)
            self._broker._expire(q)
            if not q.ready:
                return None
            msg = q.ready.popleft()
            self._tag += 1
            if not auto_ack:
                c = _Consumer(self, queue, "", False, 0)
                c.unacked += 1
                self._unacked[self._tag] = (c, msg)
                q.unacked += 1
            method = spec.Basic.GetOk(
                self._tag, msg.redelivered, msg.exchange, msg.routing_key, len(q.ready)
            )
            return ReceivedMessage(self, method, msg.properties, msg.body)

        return self._run(get)

    @recorded
    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """Reject one delivery."""
        self.basic_nack(delivery_tag, False, requeue)

    # -- publishing --------------------------------------------------------------

    @recorded
    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Any = None,
        mandatory: bool = False,
    ) -> Deferred:
        """Publish; with confirms on, fires with C{Basic.Ack} when confirmed."""

        if self._closing and self._closed is None:
            raise ChannelWrongStateError("Channel is closing.")
        if self._closed is not None:
            return fail(self._closed)
        if isinstance(body, str):
            body = body.encode("utf-8")
        props = properties if properties is not None else spec.BasicProperties()
        if props.reply_to == DIRECT_REPLY_TO:
            c = getattr(self, "_reply_consumer", None)
            if c is None or c.tag not in self._consumers:
                err = BrokerError(406, "PRECONDITION_FAILED - fast reply consumer does not exist")
                self._conn.clock.callLater(0, self._broker_close, err, [])
                return Deferred() if self._confirming else succeed(None)

            props = BasicProperties(**vars(props))
            props.reply_to = self._broker.reply_to_address(c)
        d: Deferred | None = None
        seq = 0
        if self._confirming:
            self._seq += 1
            seq = self._seq
            d = Deferred()
            self._unconfirmed[seq] = d
        msg = BrokerMessage(exchange, routing_key, body, props)
        if self._tx is not None:
            self._tx.append(lambda: self._conn.broker._accept(self, seq, msg, mandatory))
        else:
            self._conn.broker._accept(self, seq, msg, mandatory)
        return d if d is not None else succeed(None)

    def _confirm(self, seq: int, outcome: Any, multiple_upto: int | None = None) -> None:
        """Settle publish C{seq}: C{"ack"}, C{"nack"} or the returned message."""
        d = self._unconfirmed.pop(seq, None)
        if d is None:
            return
        if outcome == "ack":
            if multiple_upto is not None:
                d.callback(spec.Basic.Ack(delivery_tag=multiple_upto, multiple=True))
            else:
                d.callback(spec.Basic.Ack(delivery_tag=seq, multiple=False))
        elif outcome == "nack":
            d.errback(NackError([]))
        else:
            d.errback(UnroutableError([outcome]))

    def _returned(self, msg: BrokerMessage) -> Any:

        method = spec.Basic.Return(312, "NO_ROUTE", msg.exchange, msg.routing_key)
        return ReceivedMessage(self, method, msg.properties, msg.body)

    def _return_unconfirmed(self, msg: BrokerMessage) -> None:
        """A mandatory publish without a confirm came back: tell the callbacks."""
        returned = self._returned(msg)
        for callback in self._return_callbacks:
            callback(returned)

    def add_on_return_callback(self, callback: Any) -> None:
        """
        Call C{callback} with each returned publish made without confirms
        (with confirms, a return surfaces as C{UnroutableError} on the
        confirm).
        """
        self._return_callbacks.append(callback)

    # -- closing -----------------------------------------------------------------

    @recorded
    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close by the client (completes on the next turn)."""

        self._check_open()
        self._closing = True
        reason = ChannelClosedByClient(reply_code, reply_text)
        if self._broker._holds("Channel.Close"):
            self._broker._hold(self, "Channel.Close", lambda: self._close(reason), lambda _: None)
        else:
            self._conn.clock.callLater(0, self._close, reason)

    def _broker_close(self, error: BrokerError, calls: list) -> None:

        reason = ChannelClosedByBroker(error.reply_code, error.reply_text)
        self._close(reason)
        for d in calls:
            if not d.called:
                d.errback(reason)

    def _close(self, reason: Any) -> None:
        """Close with C{reason}: requeue unacked, drop consumers, fail confirms."""
        if self._closed is not None:
            return
        self._closed = reason
        self._closing = False
        self._broker._fail_held(self, reason)
        for c in list(self._consumers.values()):
            self._detach_consumer(c, auto_delete=True)
            c.buffer.close(reason)
        unacked, self._unacked = self._unacked, {}
        by_queue: dict[str, list] = {}
        for _tag, (c, msg) in sorted(unacked.items()):
            by_queue.setdefault(c.queue, []).append(msg)
            q = self._broker._queues.get(c.queue)
            if q is not None:
                q.unacked -= 1
        for name, msgs in by_queue.items():
            self._broker.requeue(name, msgs)
        pending, self._unconfirmed = self._unconfirmed, {}
        for d in pending.values():
            d.errback(reason)
        self._conn._channel_closed(self)
        self.on_closed.callback(reason)
