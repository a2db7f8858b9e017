# -*- test-case-name: txmsg.test.test_epollreactor -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
An epoll reactor with a leaner event loop (Linux only).

C{twistd txmsg-echo} runs on it unless twistd is told which reactor to use
(L{install_unless_chosen}; C{twistd -r epoll txmsg-echo} for Twisted's stock
loop).  Elsewhere it is opt-in:

    twistd -r txmsg-epoll ...

or, in a program, before anything imports C{twisted.internet.reactor}:

    from txmsg import epollreactor
    epollreactor.install()

It is Twisted's C{EPollReactor} minus the legacy log context that the stock
loop sets up around every I/O event (see L{txmsg._writethrough}); in the
echo benchmark that context is most of the remaining per-round-trip CPU gap
to asyncio.  The only visible difference: legacy C{twisted.python.log}
calls made inside I/O handlers are logged with system C{"-"} instead of the
connection's log prefix.  When this Twisted's C{EPollReactor} no longer has
the shape the lean loop replicates, C{install} installs the stock
C{EPollReactor} and logs a warning.
"""

from __future__ import annotations

import sys

from twisted.logger import Logger

from txmsg._writethrough import LeanEPollReactor, lean_reactor_ok

__all__ = ["LeanEPollReactor", "install", "install_unless_chosen"]

_log = Logger()


def install() -> None:
    """
    Install L{LeanEPollReactor} as the global reactor (or the stock
    C{EPollReactor} if this Twisted is not the one it was written for).
    """
    from twisted.internet.main import installReactor

    if lean_reactor_ok():
        installReactor(LeanEPollReactor())
        return
    from twisted.internet.epollreactor import EPollReactor

    _log.warn("txmsg-epoll: this Twisted's EPollReactor changed; using the stock loop")
    installReactor(EPollReactor())


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
