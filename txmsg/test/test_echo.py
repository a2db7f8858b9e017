# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.echo}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.wire import Echo
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import txmsg.echo
from txmsg.echo import (
    EchoClientProtocol,
    EchoConnectFailed,
    EchoConnectionLost,
    EchoDatagramProtocol,
    EchoServerFactory,
    EchoServerProtocol,
    EchoTimeout,
    _client,
    _server,
    _udp,
    connect_echo,
    echo,
)
from txmsg.events import IEventSink
from txmsg.testing import RecordingEvents

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def connect_server(
    factory: EchoServerFactory,
) -> tuple[EchoServerProtocol, StringTransport]:
    """
    Build a server protocol from C{factory} and connect it to a StringTransport.
    """
    proto = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    proto.makeConnection(transport)
    return proto, transport  # type: ignore[return-value]


class EchoServerProtocolTests(SynchronousTestCase):
    """
    Tests for L{EchoServerProtocol} and L{EchoServerFactory}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_echo_exact_bytes(self) -> None:
        """
        Every byte received, including every binary value, is written back
        unchanged and in order, however it was split.
        """
        proto, transport = connect_server(EchoServerFactory(clock=self.clock))
        data = bytes(range(256)) * 3
        for i in range(0, len(data), 7):
            proto.dataReceived(data[i : i + 7])
        self.assertEqual(transport.value(), data)
        proto.connectionLost(Failure(ConnectionDone()))

    def test_large_payload(self) -> None:
        """
        A large payload comes back whole.
        """
        proto, transport = connect_server(EchoServerFactory(clock=self.clock))
        data = b"x" * (4 * 1024 * 1024)
        proto.dataReceived(data)
        self.assertEqual(transport.value(), data)
        self.assertEqual((proto.bytes_in, proto.bytes_out), (len(data), len(data)))
        proto.connectionLost(Failure(ConnectionDone()))

    def test_same_as_wire_echo(self) -> None:
        """
        For the same input, the output is byte for byte that of
        L{twisted.protocols.wire.Echo}.
        """
        ours, ours_t = connect_server(EchoServerFactory(clock=self.clock))
        theirs = Factory.forProtocol(Echo).buildProtocol(PEER)
        theirs_t = StringTransport()
        theirs.makeConnection(theirs_t)
        for chunk in [b"a", b"\x00\xff", b"hello\r\n", b""]:
            ours.dataReceived(chunk)
            theirs.dataReceived(chunk)
        self.assertEqual(ours_t.value(), theirs_t.value())
        ours.connectionLost(Failure(ConnectionDone()))

    def test_registers_as_streaming_producer(self) -> None:
        """
        The protocol registers itself as its transport's streaming producer.
        """
        proto, transport = connect_server(EchoServerFactory(clock=self.clock))
        self.assertIs(transport.producer, proto)
        self.assertTrue(transport.streaming)
        self.assertTrue(verifyObject(IPushProducer, proto))
        proto.connectionLost(Failure(ConnectionDone()))

    def test_backpressure_pauses_and_resumes_reading(self) -> None:
        """
        When the transport asks the protocol to pause (its write buffer is
        full), the protocol stops reading from the peer; on resume it reads
        again.  Each pause is counted.
        """
        factory = EchoServerFactory(clock=self.clock)
        proto, transport = connect_server(factory)
        proto.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(factory.stats.pauses, 1)
        proto.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        proto.stopProducing()
        proto.connectionLost(Failure(ConnectionDone()))

    def test_pause_during_write_waits_for_next_chunk(self) -> None:
        """
        A pause the transport asks for from inside the protocol's own write
        does not stop reading at once; if the transport has not resumed by the
        time the next chunk arrives, reading stops then (and is counted once,
        however often the transport repeats the request), and the transport's
        resume starts it again.
        """
        factory = EchoServerFactory(clock=self.clock)
        proto, transport = connect_server(factory)
        transport.write = lambda data: proto.pauseProducing()  # type: ignore[method-assign]
        proto.dataReceived(b"first")
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(factory.stats.pauses, 0)
        proto.dataReceived(b"second")
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(factory.stats.pauses, 1)
        # The transport asks again on every write while its buffer is full.
        proto.pauseProducing()
        proto.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(factory.stats.pauses, 1)
        proto.connectionLost(Failure(ConnectionDone()))

    def test_pause_during_write_cancelled_by_resume(self) -> None:
        """
        When the transport resumes before the next chunk arrives (its buffer
        drained in the same reactor iteration), reading never stops and no
        pause is counted; the next chunk is read and echoed as usual.
        """
        factory = EchoServerFactory(clock=self.clock)
        proto, transport = connect_server(factory)
        write = transport.write
        transport.write = lambda data: proto.pauseProducing()  # type: ignore[method-assign]
        proto.dataReceived(b"first")
        proto.resumeProducing()
        transport.write = write  # type: ignore[method-assign]
        proto.dataReceived(b"second")
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(factory.stats.pauses, 0)
        self.assertEqual(transport.value(), b"second")
        proto.connectionLost(Failure(ConnectionDone()))

    def test_rejections_logged_rate_limited(self) -> None:
        """
        Refused connections are all counted, but only the first ten and then
        one in a thousand are logged, so a flood cannot flood the log.
        """
        factory = EchoServerFactory(max_connections=1, clock=self.clock)
        connect_server(factory)
        with capturedLogs() as events:
            for _ in range(2000):
                connect_server(factory)
        self.assertEqual(factory.stats.rejected, 2000)
        counts = [e["count"] for e in events if e.get("log_format", "").startswith("Refusing")]
        self.assertEqual(counts, list(range(1, 11)) + [1000, 2000])

    def test_connection_cap(self) -> None:
        """
        Connections beyond C{max_connections} are closed as soon as they are
        made, counted, logged and reported; when one closes, a new one is
        accepted again.
        """
        sink = RecordingEvents()
        factory = EchoServerFactory(max_connections=2, clock=self.clock, events=sink)
        first, _ = connect_server(factory)
        connect_server(factory)
        extra, extra_t = connect_server(factory)
        self.assertNotIsInstance(extra, EchoServerProtocol)
        self.assertTrue(extra_t.disconnecting)
        self.assertEqual(factory.stats.rejected, 1)
        self.assertIn("echo.rejected", sink.names())
        first.connectionLost(Failure(ConnectionDone()))
        again, again_t = connect_server(factory)
        self.assertIsInstance(again, EchoServerProtocol)
        self.assertFalse(again_t.disconnecting)
        for p in list(factory.connections):
            p.connectionLost(Failure(ConnectionDone()))

    def test_idle_timeout(self) -> None:
        """
        A connection that receives nothing for C{idle_timeout} seconds is
        closed; activity pushes the deadline back.
        """
        sink = RecordingEvents()
        factory = EchoServerFactory(idle_timeout=10, clock=self.clock, events=sink)
        proto, transport = connect_server(factory)
        self.clock.advance(6)
        proto.dataReceived(b"ping")
        self.clock.advance(6)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(4)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(factory.stats.idle_timeouts, 1)
        self.assertIn("echo.idle_timeout", sink.names())
        proto.connectionLost(Failure(ConnectionDone()))

    def test_no_idle_timer_without_timeout(self) -> None:
        """
        With C{idle_timeout=0} no timer is scheduled.
        """
        proto, _ = connect_server(EchoServerFactory(clock=self.clock))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        proto.connectionLost(Failure(ConnectionDone()))

    def test_lost_cancels_idle_timer(self) -> None:
        """
        Losing the connection cancels its idle timer.
        """
        proto, _ = connect_server(EchoServerFactory(idle_timeout=5, clock=self.clock))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_events_and_stats(self) -> None:
        """
        Connection, loss and per-connection byte counts are reported to the
        event sink with source C{echo}, and the counters add up.
        """
        sink = RecordingEvents()
        factory = EchoServerFactory(clock=self.clock, events=sink)
        proto, _ = connect_server(factory)
        proto.dataReceived(b"12345")
        self.assertEqual(factory.snapshot().bytes_in, 5)
        self.clock.advance(2)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(sink.names(), ["echo.connected", "echo.lost"])
        lost = sink.events[1][1]
        self.assertEqual((lost["bytes_in"], lost["bytes_out"]), (5, 5))
        self.assertEqual(lost["duration"], 2)
        self.assertEqual(lost["peer"], "127.0.0.1:40000")
        self.assertEqual({source for _, _, source in sink.events}, {"echo"})
        stats = factory.snapshot()
        self.assertEqual(
            (stats.connections_total, stats.connections_current, stats.bytes_out), (1, 0, 5)
        )

    def test_data_events_optional(self) -> None:
        """
        C{echo.data} events are sent only when asked for.
        """
        sink = RecordingEvents()
        proto, _ = connect_server(EchoServerFactory(clock=self.clock, events=sink))
        proto.dataReceived(b"abc")
        self.assertNotIn("echo.data", sink.names())
        proto.connectionLost(Failure(ConnectionDone()))
        sink = RecordingEvents()
        proto, _ = connect_server(EchoServerFactory(clock=self.clock, events=sink, emit_data=True))
        proto.dataReceived(b"abc")
        self.assertIn(("echo.data", {"peer": "127.0.0.1:40000", "bytes": 3}, "echo"), sink.events)
        proto.connectionLost(Failure(ConnectionDone()))

    def test_broken_sink_does_not_break_echo(self) -> None:
        """
        An event sink that raises is logged; the echo goes on.
        """

        @implementer(IEventSink)
        class Broken:
            def dispatch(self, *a: Any, **kw: Any) -> None:
                raise RuntimeError("sink down")

        proto, transport = connect_server(EchoServerFactory(clock=self.clock, events=Broken()))
        proto.dataReceived(b"still here")
        self.assertEqual(transport.value(), b"still here")
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_close_all(self) -> None:
        """
        C{close_all} closes every connection and fires once the last is gone.
        """
        factory = EchoServerFactory(clock=self.clock)
        self.successResultOf(factory.close_all())
        protos = [connect_server(factory) for _ in range(3)]
        d = factory.close_all()
        self.assertNoResult(d)
        self.assertTrue(all(t.disconnecting for _, t in protos))
        for p, _ in protos:
            p.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))

    def test_invalid_limits(self) -> None:
        """
        Negative limits are refused with a clear error.
        """
        self.assertRaises(ValueError, EchoServerFactory, max_connections=-1)
        self.assertRaises(ValueError, EchoServerFactory, idle_timeout=-1)


class EchoDatagramProtocolTests(SynchronousTestCase):
    """
    Tests for L{EchoDatagramProtocol}.
    """

    def test_datagram_echoed_to_sender(self) -> None:
        """
        A datagram goes back to the address it came from.
        """
        sent: list[tuple[bytes, Any]] = []

        class Transport:
            def write(self, data: bytes, addr: Any) -> None:
                sent.append((data, addr))

        proto = EchoDatagramProtocol()
        proto.transport = Transport()  # type: ignore[assignment]
        proto.datagramReceived(b"\x00ping", ("127.0.0.1", 5555))
        self.assertEqual(sent, [(b"\x00ping", ("127.0.0.1", 5555))])
        self.assertEqual((proto.datagrams, proto.bytes), (1, 5))


class EchoClientProtocolTests(SynchronousTestCase):
    """
    Tests for L{EchoClientProtocol}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.proto = EchoClientProtocol(self.clock)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_fires_when_all_bytes_back(self) -> None:
        """
        The Deferred fires only once the whole payload came back, in however
        many chunks.
        """
        d = self.proto.echo(b"hello world", timeout=5)
        self.assertEqual(self.transport.value(), b"hello world")
        self.proto.dataReceived(b"hel")
        self.assertNoResult(d)
        self.proto.dataReceived(b"lo wor")
        self.assertNoResult(d)
        self.proto.dataReceived(b"ld")
        self.assertEqual(self.successResultOf(d), b"hello world")

    def test_pipelined(self) -> None:
        """
        Several pipelined echoes fire in order with their own bytes, even when
        the replies arrive in one chunk.
        """
        d1 = self.proto.echo(b"one")
        d2 = self.proto.echo(b"\x00two")
        self.proto.dataReceived(b"one\x00two")
        self.assertEqual(self.successResultOf(d1), b"one")
        self.assertEqual(self.successResultOf(d2), b"\x00two")

    def test_empty_payload(self) -> None:
        """
        An empty payload returns at once without writing.
        """
        self.assertEqual(self.successResultOf(self.proto.echo(b"")), b"")
        self.assertEqual(self.transport.value(), b"")

    def test_rejects_text(self) -> None:
        """
        A str payload is a TypeError: the echo is of bytes.
        """
        self.assertRaises(TypeError, self.proto.echo, "text")

    def test_timeout(self) -> None:
        """
        An echo that does not complete within its timeout fails with
        L{EchoTimeout} and the connection is aborted; the other pending echoes
        fail with L{EchoConnectionLost}.
        """
        d1 = self.proto.echo(b"slow", timeout=3)
        d2 = self.proto.echo(b"next", timeout=30)
        self.clock.advance(3)
        self.failureResultOf(d1, EchoTimeout)
        self.assertTrue(self.transport.disconnecting)
        self.proto.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d2, EchoConnectionLost)

    def test_cancel(self) -> None:
        """
        Cancelling an echo fails it with L{CancelledError} and aborts the
        connection.
        """
        d = self.proto.echo(b"abc", timeout=3)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.transport.disconnecting)

    def test_lost_midway(self) -> None:
        """
        A connection lost midway fails the echo with L{EchoConnectionLost}
        saying how much came back; later calls fail at once.
        """
        d = self.proto.echo(b"abcdef")
        self.proto.dataReceived(b"abc")
        self.proto.connectionLost(Failure(ConnectionDone()))
        f = self.failureResultOf(d, EchoConnectionLost)
        self.assertIn("3 of 6 bytes", str(f.value))
        self.failureResultOf(self.proto.echo(b"x"), EchoConnectionLost)

    def test_unexpected_bytes_discarded(self) -> None:
        """
        Bytes arriving while nothing is pending are discarded with a warning.
        """
        self.proto.dataReceived(b"junk")
        d = self.proto.echo(b"ok")
        self.proto.dataReceived(b"ok")
        self.assertEqual(self.successResultOf(d), b"ok")


class ClientServerTests(SynchronousTestCase):
    """
    The client against the server, joined in memory by L{iosim}.
    """

    def test_round_trip(self) -> None:
        """
        Many payloads, small and large, make a round trip through the server.
        """
        clock = Clock()
        server_factory = EchoServerFactory(clock=clock)
        client, server, pump = connectedServerAndClient(
            lambda: server_factory.buildProtocol(PEER),
            lambda: EchoClientProtocol(clock),
        )
        payloads = [b"a", bytes(range(256)), b"z" * 200000]
        ds = [client.echo(p, timeout=10) for p in payloads]
        pump.flush()
        self.assertEqual([self.successResultOf(d) for d in ds], payloads)
        client.transport.loseConnection()
        pump.flush()
        self.assertEqual(server_factory.connections, set())
        self.assertEqual(server_factory.stats.bytes_in, sum(map(len, payloads)))


class FakeEndpoint:
    """
    A client endpoint that connects to a StringTransport, or never answers.
    """

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.protocols: list[EchoClientProtocol] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        if self.hang:
            return Deferred()
        proto = factory.buildProtocol(PEER)
        proto.makeConnection(StringTransport())
        self.protocols.append(proto)
        return succeed(proto)


class FailingEndpoint(FakeEndpoint):
    """
    A client endpoint whose connection is refused.
    """

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        d.errback(ConnectionRefusedError("Connection refused"))
        return d


class ConnectEchoTests(SynchronousTestCase):
    """
    Tests for L{connect_echo} and L{echo}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_refused(self) -> None:
        """
        A refused connection fails with L{EchoConnectFailed} naming the
        reason.
        """
        d = connect_echo(FailingEndpoint(), reactor=self.clock, timeout=5)  # type: ignore[arg-type]
        f = self.failureResultOf(d, EchoConnectFailed)
        self.assertIn("refused", str(f.value))

    def test_connect_timeout(self) -> None:
        """
        A connection attempt that takes longer than the timeout fails with
        L{EchoTimeout}.
        """
        d = connect_echo(FakeEndpoint(hang=True), reactor=self.clock, timeout=5)  # type: ignore[arg-type]
        self.clock.advance(5)
        f = self.failureResultOf(d, EchoTimeout)
        self.assertIn("within 5", str(f.value))

    def test_echo_one_shot(self) -> None:
        """
        L{echo} connects, sends, returns the echoed bytes and disconnects.
        """
        endpoint = FakeEndpoint()
        d = echo(endpoint, b"hi", reactor=self.clock, timeout=5)  # type: ignore[arg-type]
        [proto] = endpoint.protocols
        self.assertEqual(proto.transport.value(), b"hi")  # type: ignore[attr-defined]
        proto.dataReceived(b"hi")
        self.assertEqual(self.successResultOf(d), b"hi")
        self.assertTrue(proto.transport.disconnecting)  # type: ignore[attr-defined]

    def test_endpoint_string(self) -> None:
        """
        A client endpoint string is parsed with the given reactor.
        """
        reactor = MemoryReactorClock()
        d = connect_echo("tcp:host=127.0.0.1:port=8007", reactor=reactor, timeout=5)
        [(host, port, factory, timeout, bind)] = reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 8007))
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)

    def test_tcp_connect_timeout(self) -> None:
        """
        A TCP connection attempt that outlasts the timeout fails with
        L{EchoTimeout}, not with the connector's cancellation error.
        """
        reactor = MemoryReactorClock()
        d = connect_echo("tcp:host=127.0.0.1:port=8007", reactor=reactor, timeout=5)
        reactor.advance(5)
        self.failureResultOf(d, EchoTimeout)


class EchoPackageTests(SynchronousTestCase):
    """
    Tests for the public surface of the L{txmsg.echo} package.
    """

    def test_public_names(self) -> None:
        """
        L{txmsg.echo} exports the server, UDP and client names, each one the
        object its private module defines.
        """
        public = [
            "EchoClientFactory",
            "EchoClientProtocol",
            "EchoConnectFailed",
            "EchoConnectionLost",
            "EchoDatagramProtocol",
            "EchoError",
            "EchoServerFactory",
            "EchoServerProtocol",
            "EchoStats",
            "EchoTimeout",
            "connect_echo",
            "echo",
        ]
        self.assertEqual(sorted(txmsg.echo.__all__), public)
        self.assertEqual(sorted(_server.__all__ + _udp.__all__ + _client.__all__), public)
        for module in (_server, _udp, _client):
            for name in module.__all__:
                self.assertIs(getattr(txmsg.echo, name), getattr(module, name))
