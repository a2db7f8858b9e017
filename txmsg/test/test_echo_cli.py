# -*- test-case-name: txmsg.test.test_echo_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.echo_cli} and L{txmsg.cli}.
"""

from __future__ import annotations

import importlib
import io
import sys
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

import txmsg
from txmsg import cli
from txmsg.echo_cli import Options, _main, client_endpoint


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class ClientEndpointTests(SynchronousTestCase):
    """
    Tests for L{client_endpoint}.
    """

    def test_shorthands(self) -> None:
        """
        C{PORT}, C{HOST:PORT} and C{[V6]:PORT} become TCP endpoint strings;
        endpoint strings are kept.
        """
        self.assertEqual(client_endpoint("8007"), "tcp:host=127.0.0.1:port=8007")
        self.assertEqual(client_endpoint("example.com:9"), "tcp:host=example.com:port=9")
        self.assertEqual(client_endpoint("[::1]:8007"), r"tcp:host=\:\:1:port=8007")
        for s in ["tcp:host=127.0.0.1:port=8007", "unix:path=/tmp/e.sock"]:
            self.assertEqual(client_endpoint(s), s)


class OptionsTests(SynchronousTestCase):
    """
    Tests for L{Options}.
    """

    def test_message_words_joined(self) -> None:
        """
        The message words are joined by spaces.
        """
        options = parse("8007", "hello", "world")
        self.assertEqual(options["message"], "hello world")
        self.assertEqual(options["timeout"], 10.0)

    def test_no_message(self) -> None:
        """
        Without a message, standard input is used.
        """
        self.assertIsNone(parse("8007")["message"])

    def test_endpoint_required(self) -> None:
        """
        The endpoint is required.
        """
        self.assertRaises(UsageError, parse)

    def test_bad_timeout(self) -> None:
        """
        The timeout must be a positive number.
        """
        self.assertRaises(UsageError, parse, "-t", "x", "8007")
        self.assertRaises(UsageError, parse, "-t", "0", "8007")


class MainTests(SynchronousTestCase):
    """
    Tests for the echo command's body, on a memory reactor.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.out = io.BytesIO()
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)

    def start(self, options: Options, lines: list[bytes] | None = None) -> Deferred[int]:
        pending = list(lines or [])

        def read_line() -> Deferred[bytes]:
            return succeed(pending.pop(0) if pending else b"")

        return Deferred.fromCoroutine(_main(self.reactor, options, read_line, self.out))

    def connect(self) -> tuple[Any, StringTransport]:
        [(host, port, factory, _, _)] = self.reactor.tcpClients
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_message(self) -> None:
        """
        The message is sent, the echo printed with a newline, exit status 0,
        and the connection closed.
        """
        d = self.start(parse("127.0.0.1:8007", "hello"))
        proto, transport = self.connect()
        self.assertEqual(transport.value(), b"hello")
        proto.dataReceived(b"hello")
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.out.getvalue(), b"hello\n")
        self.assertTrue(transport.disconnecting)

    def test_lines(self) -> None:
        """
        Without a message, each line read is echoed in turn.
        """
        d = self.start(parse("8007"), [b"one\n", b"two\n"])
        proto, transport = self.connect()
        proto.dataReceived(b"one\n")
        proto.dataReceived(b"two\n")
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.out.getvalue(), b"one\ntwo\n")
        self.assertEqual(transport.value(), b"one\ntwo\n")

    def test_refused(self) -> None:
        """
        A refused connection prints one line naming the endpoint and exits 1.
        """
        d = self.start(parse("127.0.0.1:8007", "hello"))
        [(_, _, factory, _, _)] = self.reactor.tcpClients
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(d), 1)
        message = self.err.getvalue()
        self.assertIn("could not connect to tcp:host=127.0.0.1:port=8007", message)
        self.assertEqual(message.count("\n"), 1)

    def test_echo_timeout(self) -> None:
        """
        A server that never answers gives a timeout line and exit status 1.
        """
        d = self.start(parse("-t", "2", "8007", "hello"))
        self.connect()
        self.reactor.advance(2)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertIn("within 2.0s", self.err.getvalue())

    def test_invalid_endpoint(self) -> None:
        """
        An unparseable endpoint string is reported with exit status 2.
        """
        d = self.start(parse("nosuchkind:x"))
        self.assertEqual(self.successResultOf(d), 2)
        self.assertIn("invalid endpoint", self.err.getvalue())


class ConsoleTests(SynchronousTestCase):
    """
    Tests for L{txmsg.cli.main}'s argument handling.
    """

    def setUp(self) -> None:
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)

    def test_no_command(self) -> None:
        """
        Without a command, one line says a command is required and points to
        C{--help}; the exit status is 2.
        """
        e = self.assertRaises(SystemExit, cli.main, [])
        self.assertEqual(e.code, 2)
        self.assertEqual(
            self.err.getvalue(),
            "txmsg: error: a command is required; see 'txmsg --help'\n",
        )

    def test_subcommand_usage_error(self) -> None:
        """
        A subcommand usage error prints one line, the error first, naming the
        subcommand's C{--help} (not its whole help text), and exits 2.
        """
        e = self.assertRaises(SystemExit, cli.main, ["echo"])
        self.assertEqual(e.code, 2)
        self.assertEqual(
            self.err.getvalue(),
            "txmsg echo: error: Wrong number of arguments; see 'txmsg echo --help'\n",
        )

    def test_bad_option_value(self) -> None:
        """
        A value its coercer rejects is reported in one line naming the
        option and what it accepts.
        """
        e = self.assertRaises(SystemExit, cli.main, ["send", "add", "--count", "x"])
        self.assertEqual(e.code, 2)
        self.assertEqual(
            self.err.getvalue(),
            "txmsg send: error: --count must be a whole number at least 1, not 'x'; "
            "see 'txmsg send --help'\n",
        )

    def test_subcommand_version(self) -> None:
        """
        C{txmsg echo --version} prints txmsg's version, not Twisted's.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        e = self.assertRaises(SystemExit, cli.main, ["echo", "--version"])
        self.assertEqual(e.code, 0)
        self.assertEqual(out.getvalue(), "txmsg {}\n".format(txmsg.__version__))

    def test_subcommands_import(self) -> None:
        """
        Every listed subcommand module provides C{Options} and C{run}.
        """
        for name, module, doc in cli.SUBCOMMANDS:
            mod = importlib.import_module(module)
            self.assertTrue(callable(mod.run), name)
            self.assertTrue(doc)
            mod.Options()
