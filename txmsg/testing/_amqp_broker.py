# -*- test-case-name: txmsg.test.test_testing,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{MemoryBroker}: an in-memory RabbitMQ that a real
L{txmsg.amqp.AMQPConnection} connects to (through a real C{ClientService},
so reconnection and backoff run for real), with inspection helpers and
failure injection.  See L{txmsg.testing}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pika.exceptions import (
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
)
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from txmsg.amqp.connection import AMQPConnection
from txmsg.amqp.interfaces import IAMQPConnection
from txmsg.amqp.properties import make_properties
from txmsg.testing._amqp_channel import MemoryChannel
from txmsg.testing._amqp_control import BrokerControls
from txmsg.testing._amqp_state import BrokerError, BrokerMessage

__all__ = ["MemoryAMQPConnection", "MemoryBroker"]

_ADDRESS = IPv4Address("TCP", "127.0.0.1", 5672)


class _Transport:
    """Just enough of an ITransport: losing the connection is all it does."""

    def __init__(self, broker: MemoryBroker, protocol: Any) -> None:
        self.broker = broker
        self.protocol = protocol
        self.reason: Exception | None = None
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: list) -> None:
        pass

    def getPeer(self) -> IPv4Address:
        return _ADDRESS

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.broker.clock.callLater(0, self._lost)

    abortConnection = loseConnection

    def _lost(self) -> None:
        self.protocol.connectionLost(Failure(self.reason or ConnectionDone()))


class _Impl:
    """The adapter's C{_impl}: just the blocked/unblocked callback lists."""

    def __init__(self) -> None:
        self.blocked: list[Callable[..., object]] = []
        self.unblocked: list[Callable[..., object]] = []

    def add_on_connection_blocked_callback(self, cb: Callable[..., object]) -> None:
        self.blocked.append(cb)

    def add_on_connection_unblocked_callback(self, cb: Callable[..., object]) -> None:
        self.unblocked.append(cb)


@implementer(IAMQPConnection)
class MemoryAMQPProtocol(Protocol):
    """A pika C{TwistedProtocolConnection} look-alike on a L{MemoryBroker}."""

    def __init__(self, broker: MemoryBroker, owner: Any = None) -> None:
        self.broker = broker
        self.owner = owner
        self.clock = broker.clock
        self.ready: Deferred | None = Deferred()
        self.closed: Deferred | None = None
        self.channels: list[MemoryChannel] = []
        self.close_calls = 0
        self._impl = _Impl()
        self._open = False
        self._lost = False

    @property
    def is_open(self) -> bool:
        """Whether the connection is open."""
        return self._open

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed."""
        return not self._open

    def next_id(self) -> int:
        """A broker-unique number (consumer tags)."""
        self.broker._ids += 1
        return self.broker._ids

    def connectionMade(self) -> None:
        self.broker.connections.append(self)
        self.clock.callLater(0, self._handshake)

    def _handshake(self) -> None:
        if self._lost or self.ready is None:
            return
        self._open = True
        self.closed = Deferred()
        if self.owner is not None:
            self.owner._protocol_ready(self)
        d, self.ready = self.ready, None
        if d is not None:
            d.callback(self)

    def channel(self, channel_number: int | None = None) -> Deferred:
        """Open a channel (raises on a closed connection, like pika)."""
        if not self._open:
            raise ConnectionWrongStateError("Connection is closed.")
        ch = MemoryChannel(self, len(self.channels) + 1)
        self.channels.append(ch)
        return self.broker._reply(self, "Channel.Open", succeed(ch))

    def open_channels(self) -> list[MemoryChannel]:
        """The channels still open."""
        return [c for c in self.channels if c.is_open]

    def _channel_closed(self, channel: MemoryChannel) -> None:
        pass

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> Any:
        """
        Close from the client side; fires C{closed} when done (counted in
        C{close_calls}; withheld while the broker holds C{Connection.Close}).
        """
        self.close_calls += 1
        if not self._open:
            return None
        transport = cast(Any, self.transport)
        transport.reason = ConnectionClosedByClient(reply_code, reply_text)
        if self.broker._holds("Connection.Close"):
            self.broker._hold(self, "Connection.Close", transport.loseConnection, lambda _: None)
        else:
            transport.loseConnection()
        return self.closed

    def lose(self, reason: BaseException) -> None:
        """
        Lose the connection at once with C{reason} (a network failure such
        as C{ConnectionLost}, or the broker's C{ConnectionClosedByBroker}):
        every channel closes with it, unacked deliveries are requeued and
        the owner is told.  Use L{MemoryBroker.drop_connections} for the
        broker's own forced close on the next turn.
        """
        if self._lost:
            return
        if self.transport is not None:
            cast(Any, self.transport).disconnecting = True
        self.connectionLost(Failure(reason))

    def connectionLost(self, reason: Any = None) -> None:
        was_open, self._open = self._open, False
        self._lost = True
        exc: Any = reason.value if isinstance(reason, Failure) else reason
        if self in self.broker.connections:
            self.broker.connections.remove(self)
        self.broker._fail_held(self, exc)
        for ch in self.channels:
            ch._close(exc)
        for name in [n for n, q in self.broker._queues.items() if q.owner is self]:
            self.broker.delete_queue(name)
        if self.ready is not None:
            d, self.ready = self.ready, None
            d.errback(reason)
        if self.closed is not None:
            d, self.closed = self.closed, None
            d.callback(exc)
        if self.owner is not None and was_open:
            self.owner._protocol_lost(self, reason if isinstance(reason, Failure) else Failure(exc))


class _Factory(Factory):
    def __init__(self, broker: MemoryBroker, owner: Any) -> None:
        self.broker = broker
        self.owner = owner

    def buildProtocol(self, addr: Any) -> MemoryAMQPProtocol:
        return MemoryAMQPProtocol(self.broker, self.owner)


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def connect(self, factory: Any) -> Deferred:
        if self.broker.refusing:
            return fail(ConnectionRefusedError("the memory broker refuses connections"))
        proto = factory.buildProtocol(_ADDRESS)
        proto.makeConnection(_Transport(self.broker, proto))
        return succeed(proto)


class MemoryAMQPConnection(AMQPConnection):
    """
    A real L{AMQPConnection} whose endpoint is a L{MemoryBroker}: topology
    replay, participants, reconnection and events are txmsg's own code.

    @ivar broker: the L{MemoryBroker}.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        url: str = "amqp://guest:guest@memory-broker:5672/%2F",
        **kw: Any,
    ) -> None:
        """
        @param url: the AMQP URL the connection reports (logs, events,
            errors); it always connects to C{broker}.
        @param kw: passed to L{AMQPConnection}.
        """
        kw.setdefault("reactor", broker.clock)
        kw.setdefault(
            "retry_policy", backoffPolicy(initialDelay=0.5, maxDelay=10.0, jitter=lambda: 0.0)
        )
        super().__init__(url, **kw)
        self.broker = broker

    def startService(self) -> None:
        """Connect (and reconnect) to the memory broker."""

        Service.startService(self)
        self._stopping = False
        self.log.info("Connecting to the memory AMQP broker")
        self._client_service = ClientService(
            _Endpoint(self.broker),
            _Factory(self.broker, self),
            retryPolicy=self._retry_policy,
            clock=self._reactor,
            prepareConnection=lambda p: cast(Any, p).ready,
        )
        self._client_service.startService()


class MemoryBroker(BrokerControls):
    """
    An in-memory RabbitMQ driven by a clock.

    Connect real txmsg services with L{connection} (or
    L{txmsg.testing.memory_amqp}); inspect queues with L{messages},
    L{message_count}, L{unacked_count}, L{consumer_count}; inject failures
    with L{drop_connections}, L{refuse_connections}, L{nack_next},
    L{return_next}, L{delay_next}, L{hold_confirms} / L{release_confirm},
    L{hold_replies} and L{block_connections} (the control API of
    L{txmsg.testing._amqp_control.BrokerControls}); attach a service that
    is not started with L{connect}.

    Nothing happens until the clock runs: call C{clock.advance(0)} (or
    L{flush}) to let the broker deliver and confirm.

    @ivar clock: the clock.
    @ivar published: every accepted publish, as L{BrokerMessage}s.
    @ivar connections: the open client connections.
    @ivar acked: how many deliveries were acked.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        """
        @param clock: a C{Clock} (default: a new one).
        """
        if clock is None:
            clock = Clock()
        super().__init__(clock)
        self.published: list[BrokerMessage] = []
        self.refusing = False
        self.confirm_delay = 0.0
        self.acked = 0
        self._ids = 0

    def connection(self, **kw: Any) -> MemoryAMQPConnection:
        """A new (not started) L{AMQPConnection} to this broker."""
        return MemoryAMQPConnection(self, **kw)

    def connect(self, owner: Any) -> MemoryAMQPProtocol:
        """
        Accept one connection for C{owner} at once, without its
        C{ClientService}: for an L{AMQPConnection} that is not started, each
        call is one connection attempt that succeeded.  The connection is
        ready (C{owner} has been told) when this returns; lose it with
        L{MemoryAMQPProtocol.lose}.
        """
        proto = MemoryAMQPProtocol(self, owner)
        proto.connected = True
        proto.transport = cast(Any, _Transport(self, proto))
        self.connections.append(proto)
        proto._handshake()
        return proto

    def flush(self) -> None:
        """Run everything due now (deliveries, confirms, acks)."""
        self.clock.advance(0)

    # -- inspection --------------------------------------------------------------

    def messages(self, queue: str) -> list[BrokerMessage]:
        """The ready (not delivered) messages of C{queue}, head first."""
        return list(self.queue(queue).ready)

    def message_count(self, queue: str) -> int:
        """How many messages of C{queue} are ready."""
        return len(self.queue(queue).ready)

    def unacked_count(self, queue: str) -> int:
        """How many deliveries of C{queue} wait for an ack."""
        return self.queue(queue).unacked

    def consumer_count(self, queue: str) -> int:
        """How many consumers C{queue} has."""
        return len(self.queue(queue).consumers)

    def has_queue(self, queue: str) -> bool:
        """Whether C{queue} exists."""
        return queue in self._queues

    def get(self, queue: str) -> BrokerMessage | None:
        """Take the head message of C{queue} out (like C{basic_get} with auto-ack)."""
        q = self.queue(queue)
        self._expire(q)
        return q.ready.popleft() if q.ready else None

    def purge(self, queue: str) -> int:
        """Drop the ready messages of C{queue}; returns how many."""
        q = self.queue(queue)
        n = len(q.ready)
        q.ready.clear()
        return n

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: Any = None,
        **fields: Any,
    ) -> list[str]:
        """
        Publish from outside any connection (as another client would).

        @param fields: message properties (C{headers}, C{content_type}, ...).
        @return: the queues the message was routed to.
        """

        if isinstance(body, str):
            body = body.encode("utf-8")
        props = make_properties(properties, persistent=False, **fields)
        msg = BrokerMessage(exchange, routing_key, body, props)
        names = self.route(exchange, routing_key, props)
        self.published.append(msg)
        self.enqueue(names, msg)
        return names

    # -- failure injection ---------------------------------------------------------

    def drop_connections(
        self, reply_text: str = "CONNECTION_FORCED - closed by the test", only: Any = None
    ) -> int:
        """
        Close every client connection as the broker would (320): unacked
        deliveries are requeued, exclusive queues deleted, clients reconnect.

        @param only: an L{AMQPConnection}: drop just its connection.
        @return: how many connections were dropped.
        """

        conns = [c for c in self.connections if only is None or c.owner is only]
        for conn in conns:
            if conn.transport is not None:
                cast(Any, conn.transport).reason = ConnectionClosedByBroker(320, reply_text)
                conn.transport.loseConnection()
        return len(conns)

    def refuse_connections(self, refuse: bool = True) -> None:
        """Make new connection attempts fail (C{ConnectionRefusedError}) or succeed."""
        self.refusing = refuse

    # -- publishing (called by MemoryChannel) ------------------------------------

    def _accept(
        self, channel: MemoryChannel, seq: int, msg: BrokerMessage, mandatory: bool
    ) -> None:
        self._route(channel, seq, msg, mandatory, self._rule(msg))

    def _route(
        self,
        channel: MemoryChannel,
        seq: int,
        msg: BrokerMessage,
        mandatory: bool,
        rule: Any,
    ) -> None:
        if channel.is_closed:
            return
        try:
            names = self.route(msg.exchange, msg.routing_key, msg.properties)
        except BrokerError as e:
            self.clock.callLater(0, channel._broker_close, e, [])
            return
        if rule is not None and rule.kind == "nack":
            outcome: Any = "nack"
        else:
            if rule is not None and rule.kind == "return":
                names = []
            self.published.append(msg)
            if rule is not None and rule.kind == "delay":
                self.clock.callLater(rule.seconds, self.enqueue, names, msg)
            else:
                self.enqueue(names, msg)
            outcome = channel._returned(msg) if (mandatory and self.returned(names)) else "ack"
        if seq:
            self._send_confirm(channel, seq, outcome, self.confirm_delay)
        elif outcome not in ("ack", "nack"):
            channel._return_unconfirmed(msg)
