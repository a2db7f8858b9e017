# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The echo server: L{EchoServerFactory} and its L{EchoServerProtocol}.

Byte-exact echo, compatible with L{twisted.protocols.wire.Echo}, plus what a
real service needs:

  - a cap on concurrent connections (extra connections are closed at once,
    with a log line and an C{echo.rejected} event);
  - an idle timeout (a connection that sends nothing for that long is closed);
  - backpressure: while a peer does not read its replies, the server stops
    reading from it (the protocol registers itself as the transport's
    streaming producer), so a peer that sends without reading cannot grow the
    server's memory beyond the transport's buffer;
  - connection events (C{echo.connected}, C{echo.lost}, C{echo.rejected},
    C{echo.idle_timeout}, optionally C{echo.data}) sent to an
    L{txmsg.events.IEventSink}, and running counters in
    L{EchoServerFactory.stats}.

Public names are re-exported by L{txmsg.echo}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txmsg._lograte import should_log
from txmsg._reactor import maybe_global_reactor
from txmsg._sink import send_event
from txmsg.events import IEventSink

__all__ = ["EchoServerFactory", "EchoServerProtocol", "EchoStats"]


def _peer(transport: Any) -> str:
    try:
        peer = transport.getPeer()
    except Exception:
        return "?"
    host = getattr(peer, "host", None)
    if host is not None:
        return "{}:{}".format(host, getattr(peer, "port", ""))
    name = getattr(peer, "name", None)
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or peer)


@dataclass
class EchoStats:
    """
    Running counters of an echo server.

    @ivar connections_total: connections accepted since start.
    @ivar connections_current: connections open now.
    @ivar rejected: connections closed at once because of the connection cap.
    @ivar idle_timeouts: connections closed for being idle.
    @ivar pauses: times a connection stopped reading because its peer did not
        read its replies (backpressure).
    @ivar bytes_in: bytes received (closed connections plus open ones).
    @ivar bytes_out: bytes written back.
    """

    connections_total: int = 0
    connections_current: int = 0
    rejected: int = 0
    idle_timeouts: int = 0
    pauses: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@implementer(IPushProducer)
class EchoServerProtocol(Protocol):
    """
    Echo every byte back.

    The protocol is its transport's streaming producer: when the transport's
    write buffer is full (the peer is not reading), the transport calls
    L{pauseProducing} and the protocol stops reading from the peer until the
    buffer drains.

    A pause the transport asks for from inside our own C{write} is put off
    until the next chunk arrives: under streaming load the buffer goes over
    its limit for a moment on most writes and drains in the same reactor
    iteration, and stopping and restarting reading each time would cost two
    C{epoll_ctl} calls per write for nothing.  If the buffer is still full
    when the next chunk arrives, reading stops then, so at most one extra
    chunk is buffered beyond what an immediate pause allows.

    @ivar bytes_in: bytes received on this connection.
    @ivar bytes_out: bytes written back on this connection.
    """

    factory: EchoServerFactory
    transport: ITCPTransport
    bytes_in = 0
    bytes_out = 0
    _last_activity = 0.0
    _idle_call: IDelayedCall | None = None
    _started = 0.0
    _writing = False
    _pause_pending = False
    _paused = False

    def connectionMade(self) -> None:
        """
        Register as producer, start the idle timer and report the connection.
        """
        factory = self.factory
        cast(IConsumer, self.transport).registerProducer(self, True)
        self._started = self._last_activity = factory.clock.seconds()
        if factory.idle_timeout:
            self._idle_call = factory.clock.callLater(factory.idle_timeout, self._check_idle)
        factory._connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Write C{data} straight back.
        """
        if self._pause_pending:
            # The write buffer stayed full since the last chunk: stop reading now.
            self._pause_pending = False
            self._pause()
        n = len(data)
        self.bytes_in += n
        self._writing = True
        try:
            self.transport.write(data)
        finally:
            self._writing = False
        self.bytes_out += n
        factory = self.factory
        if factory.idle_timeout:
            self._last_activity = factory.clock.seconds()
        if factory.emit_data:
            factory._emit("echo.data", {"peer": _peer(self.transport), "bytes": n})

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Stop the idle timer and report the loss with this connection's counters.
        """
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        self.factory._connection_lost(self, reason)

    def _check_idle(self) -> None:
        factory = self.factory
        idle_for = factory.clock.seconds() - self._last_activity
        remaining = factory.idle_timeout - idle_for
        if remaining > 0:
            self._idle_call = factory.clock.callLater(remaining, self._check_idle)
            return
        self._idle_call = None
        factory._idle_timeout(self, idle_for)
        self.transport.loseConnection()

    # IPushProducer: backpressure from our own write buffer to our reads.

    def pauseProducing(self) -> None:
        """
        The peer is not reading its replies: stop reading from it (when
        called from inside our own C{write}, at the next chunk received).
        """
        if self._paused:
            return
        if self._writing:
            self._pause_pending = True
        else:
            self._pause()

    def resumeProducing(self) -> None:
        """
        The replies drained: read from the peer again.
        """
        self._pause_pending = False
        if self._paused:
            self._paused = False
            cast(IPushProducer, self.transport).resumeProducing()

    def _pause(self) -> None:
        self._paused = True
        self.factory.stats.pauses += 1
        cast(IPushProducer, self.transport).pauseProducing()

    def stopProducing(self) -> None:
        """
        The transport is going away; nothing to release.
        """


class _RejectedProtocol(Protocol):
    """
    Closes the connection as soon as it is made (connection cap reached).
    """

    transport: ITCPTransport

    def connectionMade(self) -> None:
        self.transport.loseConnection()


if TYPE_CHECKING:  # Factory is generic only in recent Twisted releases
    _EchoServerFactoryBase = Factory[Protocol]
else:
    _EchoServerFactoryBase = Factory


class EchoServerFactory(_EchoServerFactoryBase):
    """
    Build L{EchoServerProtocol}s, enforce the connection cap, keep the counters.

    @ivar stats: the running L{EchoStats}.
    @ivar connections: the open L{EchoServerProtocol}s.
    """

    protocol = EchoServerProtocol
    log = Logger()

    def __init__(
        self,
        *,
        max_connections: int = 0,
        idle_timeout: float = 0,
        events: IEventSink | None = None,
        emit_data: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param max_connections: close connections beyond this many open ones
            at once; C{0} means no cap.
        @param idle_timeout: close a connection that received nothing for
            this many seconds; C{0} means never.
        @param events: where to send C{echo.*} events (an
            L{txmsg.events.IEventSink} such as L{txmsg.events.EventRegistry});
            L{None} for none.
        @param emit_data: also send an C{echo.data} event for every chunk
            received (off by default: it costs a dispatch per read).
        @param clock: the reactor (or a L{Clock}) for timers; the global
            reactor by default.
        """
        if max_connections < 0:
            raise ValueError("max_connections must be >= 0, got {!r}".format(max_connections))
        if idle_timeout < 0:
            raise ValueError("idle_timeout must be >= 0, got {!r}".format(idle_timeout))
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.events = events
        self.emit_data = emit_data and events is not None
        self.clock = maybe_global_reactor(clock)
        self.stats = EchoStats()
        self.connections: set[EchoServerProtocol] = set()
        self._closed_in = 0
        self._closed_out = 0
        self._all_closed: list[Deferred[None]] = []

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """
        Build an echo protocol, or a protocol that closes at once when the
        connection cap is reached.
        """
        if self.max_connections and len(self.connections) >= self.max_connections:
            self.stats.rejected += 1
            peer = getattr(addr, "host", str(addr))
            if should_log(self.stats.rejected):
                self.log.warn(
                    "Refusing connection from {peer}: {open} connections open, limit "
                    "{limit} ({count} refused so far)",
                    peer=peer,
                    open=len(self.connections),
                    limit=self.max_connections,
                    count=self.stats.rejected,
                )
            self._emit("echo.rejected", {"peer": str(peer), "limit": self.max_connections})
            return _RejectedProtocol()
        return super().buildProtocol(addr)

    def snapshot(self) -> EchoStats:
        """
        @return: a copy of the counters with the byte counts of open
            connections included.
        """
        s = self.stats
        return EchoStats(
            connections_total=s.connections_total,
            connections_current=len(self.connections),
            rejected=s.rejected,
            idle_timeouts=s.idle_timeouts,
            pauses=s.pauses,
            bytes_in=self._closed_in + sum(p.bytes_in for p in self.connections),
            bytes_out=self._closed_out + sum(p.bytes_out for p in self.connections),
        )

    def close_all(self) -> Deferred[None]:
        """
        Close every open connection after its pending replies are written.

        @return: a L{Deferred} that fires when the last connection is gone.
        """
        if not self.connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._all_closed.append(d)
        for proto in list(self.connections):
            proto.transport.loseConnection()
        return d

    # Called by the protocols.

    def _connection_made(self, proto: EchoServerProtocol) -> None:
        self.connections.add(proto)
        self.stats.connections_total += 1
        self.stats.connections_current = len(self.connections)
        if self.events is not None:
            self._emit(
                "echo.connected",
                {"peer": _peer(proto.transport), "connections": len(self.connections)},
            )

    def _connection_lost(self, proto: EchoServerProtocol, reason: Failure) -> None:
        self.connections.discard(proto)
        self.stats.connections_current = len(self.connections)
        self._closed_in += proto.bytes_in
        self._closed_out += proto.bytes_out
        self.stats.bytes_in = self._closed_in
        self.stats.bytes_out = self._closed_out
        if self.events is not None:
            self._emit(
                "echo.lost",
                {
                    "peer": _peer(proto.transport),
                    "bytes_in": proto.bytes_in,
                    "bytes_out": proto.bytes_out,
                    "duration": self.clock.seconds() - proto._started,
                    "reason": reason.getErrorMessage(),
                    "connections": len(self.connections),
                },
            )
        if not self.connections and self._all_closed:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    def _idle_timeout(self, proto: EchoServerProtocol, idle_for: float) -> None:
        self.stats.idle_timeouts += 1
        peer = _peer(proto.transport)
        self.log.info(
            "Closing connection from {peer}: idle for {idle:.1f}s (limit {limit}s)",
            peer=peer,
            idle=idle_for,
            limit=self.idle_timeout,
        )
        self._emit("echo.idle_timeout", {"peer": peer, "idle": idle_for})

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        send_event(self.events, name, payload, "echo", self.log)
