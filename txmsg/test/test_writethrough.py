# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.net._writethrough} and L{txmsg.net.transport}: the write-through
transport on a fake socket and a L{MemoryReactor}, and the Twisted internals
it relies on.
"""

from __future__ import annotations

import errno
import inspect
import os
from typing import Any

import twisted
from twisted.internet import abstract, main, tcp
from twisted.internet.endpoints import TCP4ServerEndpoint, UNIXServerEndpoint
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import IPushProducer, IReactorTCP, IReactorTime
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

import txmsg.net.transport
import txmsg.transport
from txmsg.net import _writethrough
from txmsg.net._writethrough import (
    WriteThroughClient,
    WriteThroughConnector,
    WriteThroughPort,
    WriteThroughReactor,
    WriteThroughServer,
    applies,
    internals_ok,
)
from txmsg.net.transport import client_reactor, server_endpoint
from txmsg.redis.url import parse_redis_url
from txmsg.test._logs import captured_global_logs


class FakeSocket:
    """
    A non-blocking socket double: C{send} takes at most C{accept} bytes per
    call (all when L{None}), or raises the exceptions queued in C{errors}.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.accept: int | None = None
        self.errors: list[BaseException] = []
        self.incoming: list[Any] = []
        self.recv_sizes: list[int] = []

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return 42

    def send(self, data: Any) -> int:
        if self.errors:
            raise self.errors.pop(0)
        data = bytes(data)
        n = len(data) if self.accept is None else min(self.accept, len(data))
        self.sent.append(data[:n])
        return n

    def recv(self, size: int) -> bytes:
        self.recv_sizes.append(size)
        item = self.incoming.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def wire(self) -> bytes:
        return b"".join(self.sent)


class Recorder(Protocol):
    """
    Records what it receives.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


@implementer(IPushProducer)
class Producer:
    """
    Records pause/resume calls.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def make_transport(
    reactor: MemoryReactorClock | None = None,
) -> tuple[WriteThroughServer, FakeSocket, MemoryReactorClock]:
    """
    A connected L{WriteThroughServer} on a L{FakeSocket}.
    """
    reactor = reactor or MemoryReactorClock()
    sock = FakeSocket()
    proto = Recorder()
    transport = WriteThroughServer(
        sock,
        proto,
        ("127.0.0.1", 40000),
        None,
        7,
        reactor,
    )
    proto.makeConnection(transport)
    return transport, sock, reactor


def buffered(transport: WriteThroughServer) -> int:
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class WriteThroughServerTests(SynchronousTestCase):
    """
    Tests for L{WriteThroughServer}'s write and read paths.
    """

    def test_sends_at_once(self) -> None:
        """
        With nothing buffered, C{write} sends the whole chunk in one C{send}
        and does not ask the reactor for a writability event.
        """
        transport, sock, reactor = make_transport()
        transport.write(b"hello")
        self.assertEqual(sock.sent, [b"hello"])
        self.assertNotIn(transport, reactor.getWriters())
        self.assertEqual(buffered(transport), 0)

    def test_partial_send(self) -> None:
        """
        When the kernel takes part of the chunk, only the rest is buffered,
        the transport waits for writability, and C{doWrite} sends the rest.
        """
        transport, sock, reactor = make_transport()
        sock.accept = 3
        transport.write(b"abcdefgh")
        self.assertEqual(sock.sent, [b"abc"])
        self.assertEqual(buffered(transport), 5)
        self.assertIn(transport, reactor.getWriters())
        sock.accept = None
        self.assertIsNone(transport.doWrite())
        self.assertEqual(sock.wire(), b"abcdefgh")
        self.assertNotIn(transport, reactor.getWriters())

    def test_eagain(self) -> None:
        """
        On C{EAGAIN} everything is buffered, and later writes queue behind it
        without a C{send}, so the order is kept.
        """
        transport, sock, reactor = make_transport()
        sock.errors.append(BlockingIOError(errno.EAGAIN, "again"))
        transport.write(b"first")
        transport.write(b"second")
        self.assertEqual(sock.sent, [])
        self.assertEqual(buffered(transport), 11)
        self.assertIn(transport, reactor.getWriters())
        transport.doWrite()
        self.assertEqual(sock.wire(), b"firstsecond")

    def test_send_error_reported_by_do_write(self) -> None:
        """
        A socket error in the immediate send buffers the data; the reactor's
        next C{doWrite} reports the lost connection, as Twisted would.
        """
        transport, sock, reactor = make_transport()
        sock.errors.append(ConnectionResetError(errno.ECONNRESET, "reset"))
        transport.write(b"data")
        self.assertIn(transport, reactor.getWriters())
        sock.errors.append(BrokenPipeError(errno.EPIPE, "broken pipe"))
        self.assertIs(transport.doWrite(), main.CONNECTION_LOST)

    def test_producer_pause_resume(self) -> None:
        """
        A partial send leaving more than C{bufferSize} buffered pauses a
        streaming producer; while paused nothing is sent at once; when the
        buffer drains the producer is resumed and writes go through again.
        """
        transport, sock, reactor = make_transport()
        producer = Producer()
        transport.registerProducer(producer, True)
        sock.accept = 10
        transport.write(b"x" * (transport.bufferSize + 100))
        self.assertEqual(producer.calls, ["pause"])
        self.assertTrue(transport.producerPaused)
        transport.write(b"y")
        self.assertEqual(len(sock.sent), 1)
        # Twisted's write asks the producer to pause again while full
        self.assertEqual(producer.calls, ["pause", "pause"])
        sock.accept = None
        transport.doWrite()
        self.assertEqual(producer.calls, ["pause", "pause", "resume"])
        self.assertEqual(sock.wire(), b"x" * (transport.bufferSize + 100) + b"y")
        transport.write(b"z")
        self.assertEqual(sock.sent[-1], b"z")

    def test_paused_flag_alone_buffers(self) -> None:
        """
        While the transport holds its producer paused, a write is buffered
        even if the buffer happens to be empty.
        """
        transport, sock, reactor = make_transport()
        transport.registerProducer(Producer(), True)
        transport.producerPaused = True
        transport.write(b"held")
        self.assertEqual(sock.sent, [])
        self.assertEqual(buffered(transport), 4)

    def test_close_with_pending_data(self) -> None:
        """
        C{loseConnection} with data pending closes only once it is written;
        a write after C{loseConnection} takes Twisted's path (buffered).
        """
        transport, sock, reactor = make_transport()
        sock.accept = 2
        transport.write(b"abcdef")
        transport.loseConnection()
        self.assertTrue(transport.disconnecting)
        sock.accept = None
        self.assertIs(transport.doWrite(), main.CONNECTION_DONE)
        self.assertEqual(sock.wire(), b"abcdef")

        transport, sock, reactor = make_transport()
        transport.loseConnection()
        transport.write(b"late")
        self.assertEqual(sock.sent, [])
        self.assertIs(transport.doWrite(), main.CONNECTION_DONE)
        self.assertEqual(sock.wire(), b"late")

    def test_abort(self) -> None:
        """
        After C{abortConnection}, a write is never sent, as with Twisted.
        """
        transport, sock, reactor = make_transport()
        transport.abortConnection()
        transport.write(b"too late")
        reactor.advance(0)
        self.assertEqual(sock.sent, [])
        self.assertFalse(transport.connected)

    def test_half_close(self) -> None:
        """
        After C{loseWriteConnection} writes take Twisted's path, and once the
        write side is shut down they are dropped.
        """
        transport, sock, reactor = make_transport()
        transport.loseWriteConnection()
        transport.write(b"before shutdown")
        self.assertEqual(sock.sent, [])
        transport.doWrite()
        self.assertEqual(sock.wire(), b"before shutdown")
        self.assertTrue(transport._writeDisconnected)
        transport.write(b"dropped")
        self.assertEqual(sock.wire(), b"before shutdown")
        self.assertEqual(buffered(transport), 0)

    def test_write_sequence(self) -> None:
        """
        C{writeSequence} with nothing buffered sends the joined chunks in one
        C{send}; with data buffered it queues behind it.
        """
        transport, sock, reactor = make_transport()
        transport.writeSequence([b"a", b"b", b"c"])
        self.assertEqual(sock.sent, [b"abc"])
        sock.incoming.append(b"reply")
        transport.doRead()
        sock.accept = 1
        transport.write(b"de")
        transport.writeSequence([b"f", b"g"])
        self.assertEqual(sock.sent, [b"abc", b"d"])
        sock.accept = None
        transport.doWrite()
        self.assertEqual(sock.wire(), b"abcdefg")

    def test_one_immediate_send_per_read(self) -> None:
        """
        After an immediate send, further writes are buffered (and coalesced
        into one C{send} by C{doWrite}) until data is read or the buffer
        has been flushed.
        """
        transport, sock, reactor = make_transport()
        transport.write(b"a")
        transport.write(b"b")
        transport.write(b"c")
        self.assertEqual((sock.sent, buffered(transport)), ([b"a"], 2))
        self.assertIn(transport, reactor.getWriters())
        transport.doWrite()
        self.assertEqual(sock.sent, [b"a", b"bc"])
        self.assertNotIn(transport, reactor.getWriters())
        transport.write(b"d")  # flushed: immediate again
        transport.write(b"e")
        self.assertEqual((sock.sent[-1], buffered(transport)), (b"d", 1))
        transport.doWrite()
        sock.incoming.append(b"request")
        transport.doRead()
        transport.write(b"f")  # a read came in: immediate again
        self.assertEqual((sock.wire(), buffered(transport)), (b"abcdef", 0))

    def test_tls_takes_standard_path(self) -> None:
        """
        Once TLS is on, C{write} goes to the TLS layer, never to the socket.
        """
        transport, sock, reactor = make_transport()
        written: list[bytes] = []

        class FakeTLS:
            def write(self, data: bytes) -> None:
                written.append(data)

            def writeSequence(self, iovec: list[bytes]) -> None:
                written.extend(iovec)

        transport.protocol = FakeTLS()  # type: ignore[assignment]
        transport.TLS = True
        transport.write(b"secret")
        transport.writeSequence([b"more"])
        self.assertEqual(written, [b"secret", b"more"])
        self.assertEqual(sock.sent, [])

    def test_type_errors_as_twisted(self) -> None:
        """
        Text is refused with C{TypeError}, like Twisted's transports;
        empty writes send nothing.
        """
        transport, sock, reactor = make_transport()
        self.assertRaises(TypeError, transport.write, "text")
        self.assertRaises(TypeError, transport.writeSequence, ["text"])
        transport.write(b"")
        transport.writeSequence([])
        self.assertEqual(sock.sent, [])
        self.assertNotIn(transport, reactor.getWriters())

    def test_not_connected(self) -> None:
        """
        After the connection is lost, writes are dropped silently.
        """
        transport, sock, reactor = make_transport()
        transport.connected = 0
        transport.write(b"gone")
        self.assertEqual(sock.sent, [])
        self.assertEqual(buffered(transport), 0)

    def test_do_read(self) -> None:
        """
        C{doRead} reads up to C{readSize} bytes and hands them to the
        protocol; C{EAGAIN} is ignored, an error or EOF ends the connection.
        """
        transport, sock, reactor = make_transport()
        sock.incoming = [
            b"chunk",
            BlockingIOError(errno.EAGAIN, "again"),
            ConnectionResetError(errno.ECONNRESET, "reset"),
            b"",
        ]
        self.assertIsNone(transport.doRead())
        self.assertEqual(transport.protocol.received, [b"chunk"])  # type: ignore[attr-defined]
        self.assertEqual(sock.recv_sizes, [WriteThroughServer.readSize])
        self.assertIsNone(transport.doRead())
        self.assertIs(transport.doRead(), main.CONNECTION_LOST)
        self.assertIs(transport.doRead(), main.CONNECTION_DONE)
        self.assertEqual(transport.bufferSize, tcp.Server.bufferSize)


class WriteThroughReactorTests(SynchronousTestCase):
    """
    Tests for L{WriteThroughReactor}, L{applies} and
    L{txmsg.net.transport.server_endpoint}.
    """

    def test_proxy(self) -> None:
        """
        The proxy provides the wrapped reactor's interfaces and passes
        everything but C{listenTCP} through.
        """
        reactor = MemoryReactorClock()
        proxy = WriteThroughReactor(reactor)
        self.assertTrue(IReactorTCP.providedBy(proxy))
        self.assertTrue(IReactorTime.providedBy(proxy))
        proxy.listenUNIX("/tmp/x.sock", Factory())
        self.assertEqual(len(reactor.unixServers), 1)
        self.assertEqual(proxy.seconds(), reactor.seconds())

    def test_applies(self) -> None:
        """
        Write-through applies to Twisted's POSIX reactors only: not to a
        test double, nor to a reactor overriding C{listenTCP}.
        """

        class CustomTCP(SelectReactor):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError()

        self.assertTrue(applies(PosixReactorBase.__new__(EPollReactor)))
        self.assertTrue(applies(PosixReactorBase.__new__(SelectReactor)))
        self.assertFalse(applies(PosixReactorBase.__new__(CustomTCP)))
        self.assertFalse(applies(MemoryReactor()))
        self.assertFalse(applies(object()))

    def test_server_endpoint_degrades(self) -> None:
        """
        On a reactor where write-through does not apply, C{server_endpoint}
        is C{serverFromString}: the endpoint listens on the reactor itself.
        """
        reactor = MemoryReactor()
        endpoint = server_endpoint(reactor, "tcp:8007:interface=127.0.0.1")
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)
        endpoint.listen(Factory())
        self.assertEqual(reactor.tcpServers[0][:1], (8007,))
        unix = server_endpoint(reactor, "unix:/tmp/echo.sock")
        self.assertIsInstance(unix, UNIXServerEndpoint)

    def test_server_endpoint_wraps(self) -> None:
        """
        On a POSIX reactor, C{server_endpoint} hands C{serverFromString} a
        L{WriteThroughReactor}, unless C{write_through=False}.
        """
        reactor = PosixReactorBase.__new__(EPollReactor)
        endpoint = server_endpoint(reactor, "tcp:8007")
        self.assertIsInstance(endpoint._reactor, WriteThroughReactor)  # type: ignore[attr-defined]
        plain = server_endpoint(reactor, "tcp:8007", write_through=False)
        self.assertIs(plain._reactor, reactor)  # type: ignore[attr-defined]

    def test_port_builds_write_through(self) -> None:
        """
        L{WriteThroughPort} is a C{tcp.Port} whose connections are
        L{WriteThroughServer}s.
        """
        self.assertTrue(issubclass(WriteThroughPort, tcp.Port))
        self.assertIs(WriteThroughPort.transport, WriteThroughServer)

    def test_exports(self) -> None:
        """
        L{txmsg.net.transport} exports exactly its public names, and its
        old name C{txmsg.transport} the same objects.
        """
        self.assertEqual(sorted(txmsg.transport.__all__), sorted(txmsg.net.transport.__all__))
        for name in txmsg.transport.__all__:
            self.assertIs(getattr(txmsg.transport, name), getattr(txmsg.net.transport, name))
        self.assertEqual(
            sorted(txmsg.net.transport.__all__),
            [
                "WriteThroughClient",
                "WriteThroughConnector",
                "WriteThroughPort",
                "WriteThroughReactor",
                "WriteThroughServer",
                "client_reactor",
                "server_endpoint",
                "write_through_applies",
            ],
        )
        for name in txmsg.net.transport.__all__:
            self.assertTrue(hasattr(txmsg.net.transport, name), name)


class WriteThroughClientTests(SynchronousTestCase):
    """
    Tests for the client side: L{WriteThroughReactor.connectTCP},
    L{WriteThroughConnector}, L{WriteThroughClient} and
    L{txmsg.net.transport.client_reactor}.
    """

    def test_connect_tcp(self) -> None:
        """
        The proxy's C{connectTCP} starts a L{WriteThroughConnector} on the
        wrapped reactor, whose transport is a L{WriteThroughClient}; nothing
        is sent before the connection is made.
        """
        reactor = MemoryReactorClock()
        connector = WriteThroughReactor(reactor).connectTCP(
            "127.0.0.1", 6379, ClientFactory.forProtocol(Protocol), 5, None
        )
        self.assertIsInstance(connector, WriteThroughConnector)
        self.assertIs(connector.reactor, reactor)
        self.assertEqual(
            (connector.host, connector.port, connector.timeout), ("127.0.0.1", 6379, 5)
        )
        transport = connector.transport
        self.assertIsInstance(transport, WriteThroughClient)
        self.assertFalse(transport.connected)
        transport.write(b"too early")
        self.assertEqual(transport._tempDataLen, 0)
        connector.stopConnecting()

    def test_client_writes_through(self) -> None:
        """
        Once connected, a L{WriteThroughClient} sends at once and buffers
        only what the kernel did not take, like the server side.
        """
        reactor = MemoryReactorClock()
        connector = WriteThroughConnector(
            "127.0.0.1",
            6379,
            ClientFactory.forProtocol(Protocol),  # type: ignore[arg-type]
            5,
            None,
            reactor,
        )
        transport = connector._makeTransport()
        self.addCleanup(transport.socket.close)
        sock = FakeSocket()
        transport.socket, transport.connected = sock, 1
        transport.write(b"PING\r\n")
        self.assertEqual((sock.wire(), transport._tempDataLen), (b"PING\r\n", 0))
        transport.protocol = Protocol()
        sock.incoming.append(b"+PONG\r\n")
        transport.doRead()
        sock.accept = 2
        transport.write(b"abcdef")
        self.assertEqual((sock.wire(), transport._tempDataLen), (b"PING\r\nab", 4))
        self.assertIn(transport, reactor.getWriters())

    def test_client_reactor(self) -> None:
        """
        C{client_reactor} wraps a POSIX reactor unless told not to, by
        argument or by C{TXMSG_WRITE_THROUGH=0}; a test double is returned
        as it is.
        """
        reactor = PosixReactorBase.__new__(EPollReactor)
        self.patch(os, "environ", {})
        self.assertIsInstance(client_reactor(reactor), WriteThroughReactor)
        self.assertIs(client_reactor(reactor, write_through=False), reactor)
        memory = MemoryReactorClock()
        self.assertIs(client_reactor(memory), memory)
        self.patch(os, "environ", {"TXMSG_WRITE_THROUGH": "0"})
        self.assertIs(client_reactor(reactor), reactor)
        self.assertIsInstance(client_reactor(reactor, write_through=True), WriteThroughReactor)

    def test_redis_endpoint(self) -> None:
        """
        Redis connections over TCP use the write-through reactor.
        """
        reactor = PosixReactorBase.__new__(EPollReactor)
        endpoint = parse_redis_url("redis://127.0.0.1:6379/0").endpoint(reactor)
        self.assertIsInstance(endpoint._reactor, WriteThroughReactor)  # type: ignore[attr-defined]

    def test_applies_needs_stock_connect(self) -> None:
        """
        A reactor overriding C{connectTCP} does not get the proxy.
        """

        class CustomConnect(SelectReactor):
            def connectTCP(self, *args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError()

        self.assertFalse(applies(PosixReactorBase.__new__(CustomConnect)))

    def test_untested_twisted(self) -> None:
        """
        On a Twisted release outside the tested range the write-through
        path does not apply (even with its internals intact), and one
        warning names the release.
        """
        events = captured_global_logs(self)
        self.patch(_writethrough, "_checked", [])
        self.patch(_writethrough, "tested_twisted", lambda: False)
        reactor = PosixReactorBase.__new__(EPollReactor)
        self.assertFalse(applies(reactor))
        self.assertFalse(applies(reactor))
        self.assertIs(client_reactor(reactor, write_through=True), reactor)
        warnings = [e for e in events if "tested on" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["version"], twisted.__version__)

    def test_tested_twisted(self) -> None:
        """
        On a tested Twisted release whose internals pass the probe, the
        write-through path applies.
        """
        self.patch(_writethrough, "_checked", [])
        self.patch(_writethrough, "tested_twisted", lambda: True)
        self.assertTrue(applies(PosixReactorBase.__new__(EPollReactor)))


class TwistedInternalsTests(SynchronousTestCase):
    """
    The Twisted internals L{txmsg.net._writethrough} relies on.  If one of these
    fails after a Twisted upgrade, the write-through path must be updated
    (until then it disables itself: L{applies} is false).
    """

    def test_internals_ok(self) -> None:
        """
        The module's own check passes on this Twisted.
        """
        self.assertTrue(internals_ok())

    def test_transport_attributes(self) -> None:
        """
        C{tcp.Server} has every attribute the fast path reads.
        """
        for name in _writethrough._TRANSPORT_ATTRIBUTES:
            self.assertTrue(hasattr(tcp.Server, name), name)

    def test_file_descriptor_write_buffers(self) -> None:
        """
        C{FileDescriptor.write} queues into C{_tempDataBuffer} and
        C{_tempDataLen}, and C{doWrite} moves it into C{dataBuffer}/C{offset}.
        """
        transport, sock, reactor = make_transport()
        sock.accept = 0
        abstract.FileDescriptor.write(transport, b"abc")
        self.assertEqual(transport._tempDataBuffer, [b"abc"])
        self.assertEqual(transport._tempDataLen, 3)
        sock.accept = 1
        transport.doWrite()
        self.assertEqual((transport.dataBuffer, transport.offset), (b"abc", 1))
        self.assertEqual(transport._tempDataLen, 0)
        sock.accept = 2
        transport.doWrite()
        # all sent: dataBuffer is empty again (the fast path tests that)
        self.assertEqual((transport.dataBuffer, transport.offset), (b"", 0))

    def test_connection_read_path(self) -> None:
        """
        C{tcp.Connection.doRead} hands data to C{_dataReceived}, which
        reports an empty read as C{CONNECTION_DONE} and otherwise calls the
        protocol: what L{WriteThroughServer.doRead} replicates.
        """
        self.assertIn("return self._dataReceived(data)", inspect.getsource(tcp.Connection.doRead))
        transport, sock, reactor = make_transport()
        got: list[bytes] = []
        transport.protocol.dataReceived = got.append  # type: ignore[method-assign,assignment]
        self.assertIs(tcp.Connection._dataReceived(transport, b""), main.CONNECTION_DONE)
        self.assertIsNone(tcp.Connection._dataReceived(transport, b"x"))
        self.assertEqual(got, [b"x"])

    def test_port_transport_hook(self) -> None:
        """
        C{tcp.Port} builds its connections from its C{transport} class
        attribute, and C{PosixReactorBase.listenTCP} builds a C{tcp.Port}.
        """
        self.assertIs(tcp.Port.transport, tcp.Server)
        self.assertIn("self.transport(", inspect.getsource(tcp.Port.doRead))
        self.assertIn("tcp.Port(", inspect.getsource(PosixReactorBase.listenTCP))

    def test_connector_transport_hook(self) -> None:
        """
        C{tcp.Connector} builds its connection in C{_makeTransport}, and
        C{PosixReactorBase.connectTCP} builds and starts a C{tcp.Connector}.
        """
        self.assertIn(
            "return Client(self.host, self.port, self.bindAddress, self, self.reactor)",
            inspect.getsource(tcp.Connector._makeTransport),
        )
        source = inspect.getsource(PosixReactorBase.connectTCP)
        self.assertIn("tcp.Connector(host, port, factory, timeout, bindAddress, self)", source)
        self.assertIn("c.connect()", source)
