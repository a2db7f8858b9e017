# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Endpoints with txmsg's write-through TCP transport.

    endpoint = server_endpoint(reactor, "tcp:8007:interface=127.0.0.1")
    endpoint.listen(factory)

    endpoint = HostnameEndpoint(client_reactor(reactor), "redis.local", 6379)

txmsg's own Redis and AMQP connections use L{client_reactor}; set
C{TXMSG_WRITE_THROUGH=0} in the environment to give them Twisted's standard
transports.

With C{write_through=True} (the default), C{tcp:} and C{tcp6:} endpoints
listen with L{WriteThroughPort}: a connection's C{write} sends at once when
nothing is buffered (one C{send()}, no C{epoll_ctl} pair, no extra reactor
iteration) and buffers only the remainder; producers, backpressure,
C{loseConnection}, half-close and C{writeSequence} behave as Twisted's.

Only the listeners built here are affected: every other protocol on the same
reactor keeps Twisted's standard transports.  The standard path is used,
unchanged, for:

  - C{ssl:} server endpoints, C{connectSSL}, and connections that call
    C{startTLS} (TLS writes go through C{TLSMemoryBIOProtocol}'s own
    buffering); C{wrapClientTLS} around a TCP client endpoint keeps the
    write-through TCP connection underneath its TLS layer;
  - C{unix:} and every other endpoint type (systemd, fd, ...);
  - reactors that are not Twisted's POSIX reactors (IOCP, or any reactor
    that overrides C{listenTCP}); the epoll, poll, select, kqueue and
    asyncio-selector reactors are supported;
  - a Twisted release outside the range this transport was tested on
    (L{txmsg.net._versions}), or whose transport internals changed
    (L{write_through_applies} is then false and a warning is logged once).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from txmsg.net._writethrough import (
    WriteThroughClient,
    WriteThroughConnector,
    WriteThroughPort,
    WriteThroughReactor,
    WriteThroughServer,
)
from txmsg.net._writethrough import (
    applies as write_through_applies,
)

__all__ = [
    "WriteThroughClient",
    "WriteThroughConnector",
    "WriteThroughPort",
    "WriteThroughReactor",
    "WriteThroughServer",
    "client_reactor",
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
    return serverFromString(reactor, description)


def client_reactor(reactor: Any, *, write_through: bool | None = None) -> Any:
    """
    The reactor to build TCP client endpoints on (C{HostnameEndpoint},
    C{TCP4ClientEndpoint}, ...): a L{WriteThroughReactor} around C{reactor}
    when write-through is wanted and applies, else C{reactor} itself.

    @param reactor: the reactor.
    @param write_through: C{None} (the default) follows the environment:
        on unless C{TXMSG_WRITE_THROUGH} is C{0}.
    @return: the reactor to connect with.
    """
    if write_through is None:
        write_through = os.environ.get("TXMSG_WRITE_THROUGH", "1").strip() != "0"
    if write_through and write_through_applies(reactor):
        return WriteThroughReactor(reactor)
    return reactor
