# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Server endpoints with txmsg's write-through TCP transport.

    endpoint = server_endpoint(reactor, "tcp:8007:interface=127.0.0.1")
    endpoint.listen(factory)

With C{write_through=True} (the default), C{tcp:} and C{tcp6:} endpoints
listen with L{WriteThroughPort}: a connection's C{write} sends at once when
nothing is buffered (one C{send()}, no C{epoll_ctl} pair, no extra reactor
iteration) and buffers only the remainder; producers, backpressure,
C{loseConnection}, half-close and C{writeSequence} behave as Twisted's.

Only the listeners built here are affected: every other protocol on the same
reactor keeps Twisted's standard transports.  The standard path is used,
unchanged, for:

  - C{ssl:} endpoints and connections that call C{startTLS} (TLS writes go
    through C{TLSMemoryBIOProtocol}'s own buffering);
  - C{unix:} and every other endpoint type (systemd, fd, ...);
  - reactors that are not Twisted's POSIX reactors (IOCP, or any reactor
    that overrides C{listenTCP}); the epoll, poll, select, kqueue and
    asyncio-selector reactors are supported;
  - a Twisted whose transport internals changed (L{write_through_applies} is
    then false and a warning is logged once).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from txmsg._writethrough import (
    WriteThroughPort,
    WriteThroughReactor,
    WriteThroughServer,
)
from txmsg._writethrough import (
    applies as write_through_applies,
)

__all__ = [
    "WriteThroughPort",
    "WriteThroughReactor",
    "WriteThroughServer",
    "server_endpoint",
    "write_through_applies",
]


def server_endpoint(
    reactor: Any, description: str, *, write_through: bool = True
) -> IStreamServerEndpoint:
    """
    Parse a server endpoint string, with write-through TCP connections when
    asked for and possible.

    @param reactor: the reactor.
    @param description: a server endpoint string (C{serverFromString}).
    @param write_through: use L{WriteThroughPort} for C{tcp:}/C{tcp6:}
        endpoints when L{write_through_applies} to C{reactor}.
    @return: the endpoint.
    """
    if write_through and write_through_applies(reactor):
        reactor = WriteThroughReactor(reactor)
    return serverFromString(reactor, description)  # type: ignore[no-any-return]
