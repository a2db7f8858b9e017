# -*- test-case-name: txmsg.test.test_tap_listen_failure -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.tap._listen_failure} and the echo service's use of it.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txmsg.tap import echo as echo_tap
from txmsg.tap._listen_failure import CannotStart, describe_listen_error, exit_if_cannot_listen


def in_use(interface: str = "127.0.0.1", port: int = 6379) -> CannotListenError:
    return CannotListenError(
        interface, port, OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    )


def no_directory(path: str = "/nonexistent-dir/x.sock") -> OSError:
    # what twisted.python.lockfile raises for a UNIX port in a missing directory
    return FileNotFoundError(
        errno.ENOENT, os.strerror(errno.ENOENT), "1234", None, (path + ".lock").encode()
    )


class DescribeListenErrorTests(SynchronousTestCase):
    """
    Tests for L{describe_listen_error}.
    """

    def test_address_in_use(self) -> None:
        """
        An address in use is named with what to do about it.
        """
        self.assertEqual(
            describe_listen_error(in_use()),
            "cannot listen on 127.0.0.1:6379: the address is already in use; "
            "stop what listens there or choose another --listen port",
        )

    def test_ipv6(self) -> None:
        """
        An IPv6 interface is bracketed.
        """
        message = describe_listen_error(in_use("::1", 80))
        assert message is not None
        self.assertTrue(message.startswith("cannot listen on [::1]:80: "), message)

    def test_unix_missing_directory(self) -> None:
        """
        A UNIX socket in a missing directory names the socket's path, not
        the lock file's, and says to create the directory.
        """
        self.assertEqual(
            describe_listen_error(no_directory()),
            "cannot listen on /nonexistent-dir/x.sock: the directory does not exist; "
            "create it or choose another path",
        )

    def test_permission(self) -> None:
        """
        Permission denied is named as such.
        """
        error = CannotListenError("", 80, OSError(errno.EACCES, "Permission denied"))
        message = describe_listen_error(error)
        assert message is not None
        self.assertIn("cannot listen on 80: permission denied", message)

    def test_other_errno(self) -> None:
        """
        Another system error is described by its text.
        """
        error = CannotListenError("h", 1, OSError(errno.EMFILE, "Too many open files"))
        self.assertEqual(describe_listen_error(error), "cannot listen on h:1: Too many open files")

    def test_not_a_listen_error(self) -> None:
        """
        Anything else is not described.
        """
        self.assertIsNone(describe_listen_error(ValueError("x")))


class ExitIfCannotListenTests(SynchronousTestCase):
    """
    Tests for L{exit_if_cannot_listen} and L{CannotStart}.
    """

    def test_logs_once_and_exits(self) -> None:
        """
        A listen error is logged once, as critical, and becomes
        L{CannotStart}: an Exception (twistd cleans up) and a SystemExit
        with status 1 (no traceback).
        """
        log = Logger()
        with capturedLogs() as events:
            with self.assertRaises(CannotStart) as raised:
                with exit_if_cannot_listen(log):
                    raise in_use()
        e = raised.exception
        self.assertIsInstance(e, Exception)
        self.assertIsInstance(e, SystemExit)
        self.assertEqual(e.code, 1)
        self.assertTrue(str(e).startswith("cannot listen on 127.0.0.1:6379"))
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.critical)
        self.assertEqual(events[0]["reason"], str(e))

    def test_other_errors_pass(self) -> None:
        """
        Errors that are not about listening pass through unchanged.
        """
        with self.assertRaises(ZeroDivisionError):
            with exit_if_cannot_listen(Logger()):
                raise ZeroDivisionError()


class _BusyReactor(MemoryReactorClock):
    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        raise in_use(interface, port)


class EchoServiceListenFailureTests(SynchronousTestCase):
    """
    The echo service's start-up when a port cannot be opened.
    """

    def test_port_in_use(self) -> None:
        """
        C{privilegedStartService} raises L{CannotStart} naming the address.
        """
        options = echo_tap.Options()
        options.parseOptions(["--listen", "tcp:6379"])
        service = echo_tap.makeService(options, reactor=_BusyReactor())
        with capturedLogs():
            e = self.assertRaises(CannotStart, service.privilegedStartService)
        self.assertIn("127.0.0.1:6379: the address is already in use", str(e))
