# -*- test-case-name: txmsg.test.test_epollreactor -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.net.epollreactor} (and its old name, L{txmsg.epollreactor}).
"""

from __future__ import annotations

import errno
import importlib.util
import inspect
import os
import sys
from typing import Any

from twisted.application.reactors import IReactorInstaller
from twisted.internet.epollreactor import EPollReactor
from twisted.trial.unittest import SynchronousTestCase

import txmsg.epollreactor
from txmsg.net import epollreactor
from txmsg.net.epollreactor import LeanEPollReactor, lean_reactor_ok


class FakePoller:
    """
    Returns queued event lists from C{poll}, or raises queued errors.
    """

    def __init__(self, results: list[Any]) -> None:
        self.results = results

    def poll(self, timeout: float, maxevents: int) -> Any:
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


class LeanEPollReactorTests(SynchronousTestCase):
    """
    Tests for L{LeanEPollReactor}'s loop, on a reactor built without
    C{__init__} (no epoll object, no waker) and a fake poller.
    """

    def make(self, results: list[Any]) -> Any:
        reactor = LeanEPollReactor.__new__(LeanEPollReactor)
        reactor._poller = FakePoller(results)
        reactor._selectables = {3: "three", 4: "four"}
        reactor.dispatched = []

        def drdw(selectable: Any, fd: int, event: int) -> None:
            reactor.dispatched.append((selectable, fd, event))
            if selectable == "four":
                raise ZeroDivisionError()

        reactor._doReadOrWrite = drdw
        return reactor

    def test_dispatch(self) -> None:
        """
        Each event of a known descriptor goes to C{_doReadOrWrite}; unknown
        descriptors are skipped; an exception is logged and the loop goes on.
        """
        reactor = self.make([[(4, 1), (9, 1), (3, 4)]])
        reactor.doIteration(0)
        self.assertEqual(reactor.dispatched, [("four", 4, 1), ("three", 3, 4)])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_eintr(self) -> None:
        """
        An interrupted poll returns quietly; other poll errors propagate.
        """
        reactor = self.make(
            [InterruptedError(errno.EINTR, "interrupted"), OSError(errno.EBADF, "bad")]
        )
        reactor.doPoll(None)
        self.assertRaises(OSError, reactor.doPoll, 0)
        self.assertEqual(reactor.dispatched, [])

    def test_install(self) -> None:
        """
        C{txmsg.net.epollreactor.install} installs the lean reactor, or the
        stock C{EPollReactor} when this Twisted's loop changed.
        """

        class Lean:
            pass

        class Stock:
            pass

        installed: list[Any] = []
        self.patch(epollreactor, "installReactor", installed.append)
        self.patch(epollreactor, "LeanEPollReactor", Lean)
        self.patch(epollreactor, "lean_reactor_ok", lambda: True)
        self.patch(epollreactor, "_EPollReactor", Stock)
        epollreactor.install()
        self.patch(epollreactor, "lean_reactor_ok", lambda: False)
        epollreactor.install()
        self.assertEqual([type(r) for r in installed], [Lean, Stock])

    def test_install_unless_chosen(self) -> None:
        """
        C{install_unless_chosen} installs the lean reactor only when no
        reactor is installed yet and the lean loop applies.
        """
        installed: list[str] = []
        self.patch(epollreactor, "install", lambda: installed.append("lean"))
        cases = [(True, True), (False, False), (False, True)]  # (installed?, lean ok?)
        results = []
        for already, ok in cases:
            self.patch(epollreactor, "_reactor_installed", lambda already=already: already)
            self.patch(epollreactor, "lean_reactor_ok", lambda ok=ok: ok)
            results.append(epollreactor.install_unless_chosen())
        self.assertEqual(results, [False, False, True])
        self.assertEqual(installed, ["lean"])

    def test_reactor_installed(self) -> None:
        """
        Once a reactor is installed (importing it installs the default),
        C{install_unless_chosen} leaves it alone.
        """
        from twisted.internet import reactor  # importing it is what this test checks

        self.assertIs(reactor, sys.modules["twisted.internet.reactor"])

        self.assertTrue(epollreactor._reactor_installed())
        self.assertFalse(epollreactor.install_unless_chosen())

    def test_loop_shape(self) -> None:
        """
        On this (tested) Twisted the lean reactor applies, and
        C{EPollReactor} still has the internals the lean loop uses: it
        dispatches each event through C{log.callWithLogger} to
        C{_doReadOrWrite} after C{self._poller.poll(timeout, n)}.  Fails
        loudly after a Twisted upgrade that changed them.
        """
        self.assertTrue(lean_reactor_ok())
        source = inspect.getsource(EPollReactor.doPoll)
        self.assertIn("self._poller.poll(timeout, len(self._selectables))", source)
        self.assertIn("log.callWithLogger(selectable, _drdw, selectable, fd, event)", source)
        self.assertTrue(callable(EPollReactor._doReadOrWrite))

    def test_untested_twisted(self) -> None:
        """
        On a Twisted release outside the tested range the lean reactor does
        not apply, and C{install} installs the stock C{EPollReactor}.
        """

        class Stock:
            pass

        installed: list[Any] = []
        self.patch(epollreactor, "tested_twisted", lambda: False)
        self.patch(epollreactor, "installReactor", installed.append)
        self.patch(epollreactor, "_EPollReactor", Stock)
        self.assertFalse(lean_reactor_ok())
        epollreactor.install()
        self.assertEqual([type(r) for r in installed], [Stock])

    def test_old_name(self) -> None:
        """
        C{txmsg.epollreactor} still offers the lean reactor and its
        installers (a thin re-export of L{txmsg.net.epollreactor}).
        """
        for name in txmsg.epollreactor.__all__:
            self.assertIs(getattr(txmsg.epollreactor, name), getattr(epollreactor, name))
        self.assertEqual(LeanEPollReactor.__module__, "txmsg.net.epollreactor")

    def test_plugin_declared(self) -> None:
        """
        The twistd plugin file declares the C{txmsg-epoll} reactor.
        """
        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            "twisted",
            "plugins",
            "txmsg_plugins.py",
        )
        spec = importlib.util.spec_from_file_location("_txmsg_plugins_check", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.assertTrue(IReactorInstaller.providedBy(module.txmsg_epoll))
        self.assertEqual(
            (module.txmsg_epoll.shortName, module.txmsg_epoll.moduleName),
            ("txmsg-epoll", "txmsg.net.epollreactor"),
        )
