# -*- test-case-name: txmsg.test.test_tap_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.tap.echo}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet.address import IPv4Address
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.error import ConnectionDone
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.echo import EchoServerFactory
from txmsg.net import epollreactor
from txmsg.net.transport import WriteThroughReactor
from txmsg.tap import echo_plugin
from txmsg.tap.echo import DEFAULT_LISTEN, Options, loopback_by_default, makeService
from txmsg.test._logs import captured_global_logs


class UDPMemoryReactor(MemoryReactorClock):
    """
    A MemoryReactorClock that also records C{listenUDP} calls.
    """

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple[int, Any, str]] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        self.udpServers.append((port, protocol, interface))

        class Port:
            def stopListening(self) -> None:
                pass

        return Port()


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    """
    Tests for L{Options}.
    """

    def test_defaults(self) -> None:
        """
        Without options the server listens on TCP port 8007 on loopback, with
        the default limits and no UDP.
        """
        options = parse()
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertEqual(DEFAULT_LISTEN, "tcp:8007:interface=127.0.0.1")
        self.assertEqual(options["max-connections"], 1000)
        self.assertEqual(options["idle-timeout"], 300.0)
        self.assertIsNone(options["udp"])

    def test_write_through_flag(self) -> None:
        """
        Write-through is on by default; C{--no-write-through} turns it off.
        """
        self.assertFalse(parse()["no-write-through"])
        self.assertTrue(parse("--no-write-through")["no-write-through"])

    def test_several_listen(self) -> None:
        """
        C{--listen} may be given several times, of different kinds.
        """
        options = parse("--listen", "tcp:9000:interface=127.0.0.1", "-l", "unix:/tmp/echo.sock")
        self.assertEqual(options["listen"], ["tcp:9000:interface=127.0.0.1", "unix:/tmp/echo.sock"])

    def test_loopback_default(self) -> None:
        """
        TCP and SSL endpoints naming no interface are limited to loopback;
        an explicit interface and UNIX sockets are left alone.
        """
        self.assertEqual(loopback_by_default("tcp:9000"), "tcp:9000:interface=127.0.0.1")
        self.assertEqual(loopback_by_default("tcp6:9000"), r"tcp6:9000:interface=\:\:1")
        self.assertEqual(
            loopback_by_default("tcp:9000:interface=0.0.0.0"), "tcp:9000:interface=0.0.0.0"
        )
        self.assertEqual(loopback_by_default("unix:/tmp/s"), "unix:/tmp/s")
        self.assertEqual(parse("--listen", "tcp:9000")["listen"], ["tcp:9000:interface=127.0.0.1"])

    def test_bad_endpoint(self) -> None:
        """
        An endpoint string that cannot be parsed is a one-line usage error
        naming it.
        """
        for bad in ["foo:1", "tcp:notaport", "ssl:8443:privateKey=/nonexistent.pem"]:
            e = self.assertRaises(UsageError, parse, "--listen", bad)
            self.assertIn("invalid --listen endpoint", str(e))
            self.assertNotIn("\n", str(e))

    def test_bad_numbers(self) -> None:
        """
        Non-numeric or negative limits are usage errors.
        """
        for args in [
            ("--max-connections", "lots"),
            ("--max-connections", "-1"),
            ("--idle-timeout", "soon"),
            ("--idle-timeout", "-5"),
            ("--idle-timeout", "nan"),
            ("--udp", "127.0.0.1:port"),
        ]:
            self.assertRaises(UsageError, parse, *args)

    def test_udp(self) -> None:
        """
        C{--udp PORT} listens on loopback; C{--udp HOST:PORT} on HOST.
        """
        self.assertEqual(parse("--udp", "9999")["udp"], ("127.0.0.1", 9999))
        self.assertEqual(parse("--udp", "0.0.0.0:9999")["udp"], ("0.0.0.0", 9999))


class MakeServiceTests(SynchronousTestCase):
    """
    Tests for L{makeService}.
    """

    def test_listens_everywhere_asked(self) -> None:
        """
        Starting the service listens on every C{--listen} endpoint with one
        shared echo factory configured from the options.
        """
        reactor = UDPMemoryReactor()
        options = parse(
            "--listen",
            "tcp:9000",
            "--listen",
            "unix:/tmp/txmsg-echo-test.sock",
            "--max-connections",
            "5",
            "--idle-timeout",
            "7",
            "--udp",
            "9001",
        )
        service = makeService(options, reactor=reactor)
        service.privilegedStartService()
        service.startService()
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (9000, "127.0.0.1"))
        self.assertIsInstance(factory, EchoServerFactory)
        self.assertEqual((factory.max_connections, factory.idle_timeout), (5, 7.0))  # type: ignore[attr-defined]
        [(path, unix_factory, *_)] = reactor.unixServers
        self.assertEqual(path, "/tmp/txmsg-echo-test.sock")
        self.assertIs(unix_factory, factory)
        [(udp_port, _, udp_interface)] = reactor.udpServers
        self.assertEqual((udp_port, udp_interface), (9001, "127.0.0.1"))
        self.assertIsNotNone(service.getServiceNamed("listen:tcp:9000:interface=127.0.0.1"))
        self.successResultOf(service.stopService())

    def test_stop_closes_connections(self) -> None:
        """
        Stopping the service stops listening and closes open connections.
        """
        reactor = UDPMemoryReactor()
        service = makeService(parse(), reactor=reactor)
        service.startService()
        factory = service.factory
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        proto.makeConnection(transport)
        d = service.stopService()
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(d)

        proto.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)

    def test_plugin_declared(self) -> None:
        """
        The twistd plugin C{txmsg-echo} names this module.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("txmsg-echo", makers)
        self.assertEqual(makers["txmsg-echo"].module, "txmsg.tap.echo_plugin")  # type: ignore[attr-defined]

    def test_plugin_entry_point(self) -> None:
        """
        The plugin's C{makeService} asks for the lean reactor (which, with a
        reactor already installed, changes nothing) and builds the same
        service as L{makeService} on the running reactor, saying which
        reactor it runs on.
        """
        from twisted.internet import reactor  # the running reactor this test is about

        asked: list[bool] = []
        real = epollreactor.install_unless_chosen

        def spy() -> bool:
            asked.append(real())
            return asked[-1]

        self.patch(epollreactor, "install_unless_chosen", spy)
        self.assertIs(echo_plugin.Options, Options)
        logged = captured_global_logs(self)
        service = echo_plugin.makeService(parse("--listen", "tcp:0"))
        self.assertEqual(asked, [False])
        self.assertIs(service.factory.clock, reactor)
        names = [
            e.get("name")
            for e in logged
            if e.get("log_format", "").startswith("txmsg-echo reactor")
        ]
        self.assertEqual(names, [type(reactor).__module__ + "." + type(reactor).__qualname__])


class WriteThroughServiceTests(SynchronousTestCase):
    """
    Tests for the write path L{makeService} picks.
    """

    def endpoints(self, reactor: Any, *args: str) -> list[Any]:
        service = makeService(parse(*args), reactor=reactor)
        return [child.endpoint.wrapped for child in service]

    def test_posix_reactor(self) -> None:
        """
        On a POSIX reactor, TCP listeners get the write-through reactor
        proxy unless C{--no-write-through} is given.
        """
        reactor = PosixReactorBase.__new__(EPollReactor)
        (endpoint,) = self.endpoints(reactor)
        self.assertIsInstance(endpoint._reactor, WriteThroughReactor)
        (endpoint,) = self.endpoints(reactor, "--no-write-through")
        self.assertIs(endpoint._reactor, reactor)

    def test_other_reactor(self) -> None:
        """
        On a reactor where write-through does not apply (here a memory
        reactor), the listener is the plain endpoint on that reactor.
        """
        reactor = MemoryReactorClock()
        (endpoint,) = self.endpoints(reactor)
        self.assertIs(endpoint._reactor, reactor)
