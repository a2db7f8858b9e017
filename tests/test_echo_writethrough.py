# -*- test-case-name: tests.test_echo_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The write-through transport on the real reactor and real sockets: large
echoes (partial sends, EAGAIN), backpressure, close with pending data, and
the standard-path fallback for TLS (a real C{ssl:} echo with a self-signed
certificate made here) and UNIX sockets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txmsg.echo import EchoServerFactory, connect_echo
from txmsg.net._writethrough import WriteThroughClient, WriteThroughServer
from txmsg.net.transport import client_reactor, server_endpoint

BIG = bytes(range(256)) * (16 * 1024)  # 4 MiB
HUGE = BIG * 8  # 32 MiB: more than loopback's kernel buffers can hold


class Collector(Protocol):
    """
    Collects bytes until the connection closes, then fires C{done}.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any) -> None:
        self.done.callback(bytes(self.data))


class WriteThenClose(Protocol):
    """
    Writes C{BIG} and closes at once: the close must wait for the data.
    """

    def connectionMade(self) -> None:
        self.transport.write(BIG)
        self.transport.loseConnection()


def self_signed_pem(directory: str) -> str:
    """
    Make a self-signed certificate for C{localhost} (with the subjectAltName
    that hostname verification needs); return the PEM path (key and
    certificate in one file).
    """
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    path = os.path.join(directory, "server.pem")
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
    return path


class WriteThroughIntegrationTests(TestCase):
    """
    Echo servers listening through L{server_endpoint}.
    """

    def listen(self, description: str, factory: Any) -> Deferred[Any]:
        d = server_endpoint(reactor, description).listen(factory)

        def listening(port: Any) -> Any:
            self.addCleanup(port.stopListening)
            return port

        return d.addCallback(listening)

    def close_all(self, factory: EchoServerFactory) -> None:
        self.addCleanup(factory.close_all)

    @inlineCallbacks
    def test_large_echo_and_backpressure(self) -> Any:
        """
        A 32 MiB echo comes back exact over a write-through connection (the
        kernel buffers fill: partial sends and EAGAIN), and a client that
        stops reading makes the server pause reading from it.
        """
        factory = EchoServerFactory(clock=reactor)
        self.close_all(factory)
        port = yield self.listen("tcp:0:interface=127.0.0.1", factory)
        client = yield connect_echo(f"tcp:host=127.0.0.1:port={port.getHost().port}")
        self.addCleanup(client.transport.loseConnection)
        (server,) = factory.connections
        self.assertIsInstance(server.transport, WriteThroughServer)
        client.transport.pauseProducing()  # stop reading the replies
        d = client.echo(HUGE, timeout=60)
        yield _later(1.0)
        self.assertGreater(factory.stats.pauses, 0)
        self.assertLess(server.bytes_in, len(HUGE))
        client.transport.resumeProducing()
        echoed = yield d
        self.assertEqual(echoed, HUGE)
        small = yield client.echo(b"ping", timeout=5)
        self.assertEqual(small, b"ping")

    @inlineCallbacks
    def test_close_with_pending_data(self) -> Any:
        """
        A server that writes 4 MiB and calls C{loseConnection} at once
        delivers all of it before the connection closes.
        """
        port = yield self.listen("tcp:0:interface=127.0.0.1", Factory.forProtocol(WriteThenClose))
        collector = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
            Collector(),
        )
        data = yield collector.done
        self.assertEqual(len(data), len(BIG))
        self.assertEqual(data, BIG)

    @inlineCallbacks
    def test_tls_falls_back(self) -> Any:
        """
        An C{ssl:} endpoint keeps Twisted's standard TLS transport and echoes
        correctly, large payload included.
        """
        factory = EchoServerFactory(clock=reactor)
        endpoint = yield self.tls_echo(factory, reactor)
        client = yield connect_echo(endpoint)
        self.addCleanup(client.transport.loseConnection)
        echoed = yield client.echo(b"over tls", timeout=10)
        self.assertEqual(echoed, b"over tls")
        (server,) = factory.connections
        self.assertNotIsInstance(server.transport, WriteThroughServer)
        echoed = yield client.echo(BIG[: 1 << 20], timeout=30)
        self.assertEqual(echoed, BIG[: 1 << 20])

    @inlineCallbacks
    def test_unix_falls_back(self) -> Any:
        """
        A C{unix:} endpoint keeps Twisted's standard UNIX transport.
        """
        directory = tempfile.mkdtemp(prefix="txmsg-wt-")  # AF_UNIX paths are short
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "echo.sock")
        factory = EchoServerFactory(clock=reactor)
        self.close_all(factory)
        yield self.listen("unix:" + path, factory)
        client = yield connect_echo(UNIXClientEndpoint(reactor, path))
        self.addCleanup(client.transport.loseConnection)
        echoed = yield client.echo(b"over unix", timeout=10)
        self.assertEqual(echoed, b"over unix")
        (server,) = factory.connections
        self.assertNotIsInstance(server.transport, WriteThroughServer)

    @inlineCallbacks
    def test_client_burst_and_large_writes(self) -> Any:
        """
        A write-through client connection (C{client_reactor}) that writes
        500 small requests, a 4 MiB one and 500 more in one reactor turn
        (one immediate send, the rest coalesced, partial sends for the big
        one) gets every reply back exact and in order; it has
        C{TCP_NODELAY}.
        """
        factory = EchoServerFactory(clock=reactor)
        self.close_all(factory)
        port = yield self.listen("tcp:0:interface=127.0.0.1", factory)
        client = yield connect_echo(
            TCP4ClientEndpoint(client_reactor(reactor), "127.0.0.1", port.getHost().port)
        )
        self.addCleanup(client.transport.loseConnection)
        self.assertIsInstance(client.transport, WriteThroughClient)
        self.assertTrue(client.transport.getTcpNoDelay())
        payloads = [b"req-%d;" % i for i in range(500)] + [BIG]
        payloads += [b"after-%d;" % i for i in range(500)]
        replies = yield gatherResults([client.echo(p, timeout=60) for p in payloads])
        self.assertEqual(replies, payloads)
        again = yield client.echo(b"one more", timeout=10)
        self.assertEqual(again, b"one more")

    @inlineCallbacks
    def test_client_under_tls(self) -> Any:
        """
        C{wrapClientTLS} around a write-through client endpoint keeps the
        write-through TCP connection under TLS, and a TLS echo of 1 MiB
        plus a burst of small ones comes back exact.
        """
        factory = EchoServerFactory(clock=reactor)
        endpoint = yield self.tls_echo(factory, client_reactor(reactor))
        client = yield connect_echo(endpoint)
        self.addCleanup(client.transport.loseConnection)
        # the protocol's transport is the TLS layer; under it, TCP
        self.assertIsInstance(client.transport.transport, WriteThroughClient)
        payloads = [BIG[: 1 << 20]] + [b"tls-%d;" % i for i in range(200)]
        replies = yield gatherResults([client.echo(p, timeout=60) for p in payloads])
        self.assertEqual(replies, payloads)

    @inlineCallbacks
    def tls_echo(self, factory: EchoServerFactory, client_side: Any) -> Any:
        """
        Serve C{factory} on an C{ssl:} endpoint with a fresh self-signed
        certificate; return a TLS client endpoint for it whose TCP
        connection is made on C{client_side} (a reactor or proxy).
        """
        pem = self_signed_pem(self.mktemp_dir())
        self.close_all(factory)
        port = yield self.listen(
            f"ssl:0:interface=127.0.0.1:privateKey={pem}:certKey={pem}", factory
        )
        with open(pem, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        return wrapClientTLS(
            optionsForClientTLS("localhost", trustRoot=trust),
            TCP4ClientEndpoint(client_side, "127.0.0.1", port.getHost().port),
        )

    def mktemp_dir(self) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path


def _later(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


_LEAN_CHILD = """
import sys
from txmsg.net import epollreactor
epollreactor.install()
from twisted.internet import reactor
from txmsg.echo import EchoServerFactory
from txmsg.net.transport import server_endpoint

def listening(port):
    print("LISTENING", port.getHost().port, type(reactor).__name__, flush=True)

server_endpoint(reactor, "tcp:0:interface=127.0.0.1").listen(
    EchoServerFactory(idle_timeout=300, clock=reactor)
).addCallback(listening)
reactor.run()
"""


class LeanReactorIntegrationTests(SynchronousTestCase):
    """
    txmsg's echo server on L{txmsg.net.epollreactor}, in a child process.
    """

    def test_echo_on_lean_reactor(self) -> None:
        """
        The lean reactor installs (it is the C{LeanEPollReactor}, not the
        fallback) and serves many exact echoes, small and large, over
        concurrent connections.
        """
        import socket
        import subprocess
        import sys

        from tests.test_echo_twistd import round_trip

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        child = subprocess.Popen(
            [sys.executable, "-c", _LEAN_CHILD],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=root),
        )
        self.addCleanup(child.wait, 10)
        self.addCleanup(child.kill)
        assert child.stdout is not None
        line = child.stdout.readline().split()
        self.assertEqual((line[0], line[2]), ("LISTENING", "LeanEPollReactor"), line)
        port = int(line[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(5)]
        for s in socks:
            self.addCleanup(s.close)
        for i in range(200):
            s = socks[i % len(socks)]
            payload = str(i).encode() * 10
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += s.recv(4096)
            self.assertEqual(got, payload)
        self.assertEqual(round_trip(socks[0], BIG), BIG)
