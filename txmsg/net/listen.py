# -*- test-case-name: txmsg.test.test_net_listen -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A listening service in one call, on Twisted's public API.

    service = listening_service(reactor, "tcp:8007", factory, announce=announce)

It is C{twisted.application.strports.service} (as C{twistd portforward}
uses it: a listen failure at start-up raises, so twistd exits with the
error instead of running without its port), with two additions: TCP
listeners can get the write-through transport (L{txmsg.net.transport}), and
C{announce} is called with the bound address once the port listens (to log
it; with C{tcp:0} only the port knows its number).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IStreamServerEndpoint,
)
from zope.interface import implementer

from txmsg.net._writethrough import WriteThroughReactor, applies

__all__ = ["AnnouncingEndpoint", "listening_service"]


@implementer(IStreamServerEndpoint)
class AnnouncingEndpoint:
    """
    A server endpoint that calls C{announce(address)} once it listens.

    @ivar wrapped: the endpoint that listens.
    """

    def __init__(self, wrapped: IStreamServerEndpoint, announce: Callable[[IAddress], None]):
        """
        @param wrapped: the endpoint that listens.
        @param announce: called with the listening port's C{getHost()}.
        """
        self.wrapped = wrapped
        self._announce = announce

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen with the wrapped endpoint, then announce the address.
        """

        def listening(port: IListeningPort) -> IListeningPort:
            self._announce(port.getHost())
            return port

        return self.wrapped.listen(protocolFactory).addCallback(listening)


def listening_service(
    reactor: IReactorCore,
    description: str,
    factory: IProtocolFactory,
    *,
    announce: Callable[[IAddress], None] | None = None,
    write_through: bool = False,
) -> StreamServerEndpointService:
    """
    C{strports.service(description, factory, reactor)}: a service that
    listens on a server endpoint string and fails its start-up (raises) when
    it cannot listen.

    @param reactor: the reactor.
    @param description: a server endpoint string (C{serverFromString}).
    @param factory: the protocol factory.
    @param announce: called with the bound address once listening.
    @param write_through: give C{tcp:}/C{tcp6:} listeners the write-through
        transport when it applies to C{reactor}.
    @return: the service.
    """
    on: Any = reactor
    if write_through and applies(reactor):
        on = WriteThroughReactor(reactor)
    service = strports.service(description, factory, reactor=on)
    if announce is not None:
        service.endpoint = AnnouncingEndpoint(service.endpoint, announce)
    return service
