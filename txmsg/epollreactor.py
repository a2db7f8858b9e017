# -*- test-case-name: txmsg.test.test_epollreactor -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
An opt-in epoll reactor with a leaner event loop (Linux only).

    twistd -r txmsg-epoll txmsg-echo ...

or, before anything imports C{twisted.internet.reactor}:

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

from twisted.logger import Logger

from txmsg._writethrough import LeanEPollReactor, lean_reactor_ok

__all__ = ["LeanEPollReactor", "install"]

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
