# -*- test-case-name: txmsg.test.test_epollreactor -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
An epoll reactor with a leaner event loop (Linux only).

C{twistd txmsg-echo} runs on it unless twistd is told which reactor to use
(L{install_unless_chosen}; C{twistd -r epoll txmsg-echo} for Twisted's stock
loop).  Elsewhere it is opt-in:

    twistd -r txmsg-epoll ...

or, in a program, before anything imports C{twisted.internet.reactor}:

    from txmsg.net import epollreactor
    epollreactor.install()

L{LeanEPollReactor} is Twisted's C{EPollReactor} with one change: its loop
calls C{_doReadOrWrite} for each I/O event directly instead of through
C{twisted.python.log.callWithLogger}, which builds a legacy log context
(C{system} = the transport's log prefix) around every event and costs more
than a microsecond per event; in the echo benchmark that context is most of
the remaining per-round-trip CPU gap to asyncio.  The only visible
difference: legacy C{twisted.python.log} calls made inside I/O handlers are
logged with system C{"-"} instead of the connection's log prefix.

It relies on C{EPollReactor._poller}, C{_selectables} and
C{_doReadOrWrite}, so it is used only on a Twisted release inside the tested
range (L{txmsg.net._versions}); on any other, C{install} installs the stock
C{EPollReactor} and logs a warning.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.internet.main import installReactor
from twisted.logger import Logger

from txmsg.net._versions import tested_range_text, tested_twisted, twisted_version

__all__ = ["LeanEPollReactor", "install", "install_unless_chosen", "lean_reactor_ok"]

_log = Logger()

_EPollReactor: Any
try:
    from twisted.internet.epollreactor import EPollReactor as _EPollReactor
except ImportError:  # pragma: no cover - no epoll on this platform
    _EPollReactor = None

# What the lean loop uses of EPollReactor besides its public methods.
_REACTOR_ATTRIBUTES = ("_doReadOrWrite", "doPoll")


def _lean_reactor_class(base: type) -> type:
    class LeanEPollReactor(base):
        """
        C{EPollReactor} whose loop dispatches I/O events without
        C{log.callWithLogger}.  The only visible difference: legacy
        C{twisted.python.log.msg}/C{err} calls made inside an I/O handler
        are logged with system C{"-"} instead of the transport's log prefix
        (C{twisted.logger.Logger} events are unaffected).  Exceptions
        escaping an event are logged and the loop goes on, as before.
        """

        def doPoll(self, timeout: float | None) -> None:
            """
            Poll for events and dispatch each to C{_doReadOrWrite}.
            """
            if timeout is None:
                timeout = -1
            try:
                events = self._poller.poll(timeout, len(self._selectables))
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            drdw = self._doReadOrWrite
            selectables = self._selectables
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                try:
                    drdw(selectable, fd, event)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    _log.failure(
                        "Unhandled error in I/O event handler of {selectable!r}",
                        selectable=selectable,
                    )

        doIteration = doPoll

    LeanEPollReactor.__module__ = __name__
    LeanEPollReactor.__qualname__ = "LeanEPollReactor"
    return LeanEPollReactor


LeanEPollReactor: Any = None if _EPollReactor is None else _lean_reactor_class(_EPollReactor)


def lean_reactor_ok() -> bool:
    """
    @return: whether L{LeanEPollReactor} may run here: epoll exists, this
        Twisted is a tested release (L{txmsg.net._versions}), and its
        C{EPollReactor} still has the internals the lean loop uses.
    """
    if LeanEPollReactor is None or not tested_twisted():
        return False
    return all(hasattr(_EPollReactor, name) for name in _REACTOR_ATTRIBUTES)


def install() -> None:
    """
    Install L{LeanEPollReactor} as the global reactor (or the stock
    C{EPollReactor} if this Twisted is not one it was tested on).
    """
    if lean_reactor_ok():
        installReactor(LeanEPollReactor())
        return
    _log.warn(
        "txmsg-epoll: Twisted {version} is not a release the lean loop was tested "
        "on ({tested}); using the stock EPollReactor",
        version=twisted_version(),
        tested=tested_range_text(),
    )
    installReactor(_EPollReactor())


def _reactor_installed() -> bool:
    return "twisted.internet.reactor" in sys.modules


def install_unless_chosen() -> bool:
    """
    Install L{LeanEPollReactor} if no reactor is installed yet and the lean
    loop applies to this platform and Twisted; otherwise change nothing.

    For twistd plugins: twistd installs the reactor named by C{-r} while
    parsing its options and the default one only when it starts running, so
    a plugin's C{makeService} that calls this gets the lean loop exactly
    when the user did not choose a reactor.

    @return: whether it installed the lean reactor.
    """
    if _reactor_installed() or not lean_reactor_ok():
        return False
    install()
    return True
