# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Echo server and client.

The server side is L{EchoServerFactory}: byte-exact echo, compatible with
L{twisted.protocols.wire.Echo}, with a connection cap, an idle timeout,
backpressure, connection events and running counters (L{EchoStats}); UDP is
L{EchoDatagramProtocol}.

The client side is L{EchoClientProtocol} (pipelined C{echo(payload)} calls on
one connection), L{connect_echo} and the one-shot L{echo}.

The code lives in three private modules, one per part: C{_server} (TCP
server protocol, factory and counters), C{_udp} (UDP) and C{_client} (client
protocol, factory, connecting, errors).
"""

from txmsg.echo._client import (
    EchoClientFactory,
    EchoClientProtocol,
    EchoConnectFailed,
    EchoConnectionLost,
    EchoError,
    EchoTimeout,
    connect_echo,
    echo,
)
from txmsg.echo._server import EchoServerFactory, EchoServerProtocol, EchoStats
from txmsg.echo._udp import EchoDatagramProtocol

__all__ = [
    "EchoClientFactory",
    "EchoClientProtocol",
    "EchoConnectFailed",
    "EchoConnectionLost",
    "EchoDatagramProtocol",
    "EchoError",
    "EchoServerFactory",
    "EchoServerProtocol",
    "EchoStats",
    "EchoTimeout",
    "connect_echo",
    "echo",
]
